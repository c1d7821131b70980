import { Module } from '@nestjs/common';
import { PolicyModule } from '../policy/policy.module';
import { RunsModule } from '../runs/runs.module';
import { ControlService } from './control.service';
import { StatusModule } from './status.module';

/** Control socket: what `cgfence agent status|reload` and `cgfence run` talk to. */
@Module({ imports: [StatusModule, RunsModule, PolicyModule], providers: [ControlService], exports: [ControlService] })
export class ControlModule {}
