import { Module } from '@nestjs/common';
import { JournalModule } from '../journal/journal.module';
import { PolicyService } from './policy.service';

/** Policy: what is in force, and applying a new one (kernel first, then the proxy). */
@Module({ imports: [JournalModule], providers: [PolicyService], exports: [PolicyService] })
export class PolicyModule {}
