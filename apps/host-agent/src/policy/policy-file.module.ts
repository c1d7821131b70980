import { Module } from '@nestjs/common';
import { PolicySource } from './policy-source';
import { PolicyFileSource } from './policy-file.source';
import { PolicyModule } from './policy.module';

/** Standalone mode: the policy comes from a file. */
@Module({
  imports: [PolicyModule],
  providers: [PolicyFileSource, { provide: PolicySource, useExisting: PolicyFileSource }],
  exports: [PolicySource],
})
export class PolicyFileModule {}
