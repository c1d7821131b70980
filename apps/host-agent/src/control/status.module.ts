import { Module } from '@nestjs/common';
import { DataPlaneModule } from '../data-plane/data-plane.module';
import { DnsModule } from '../dns/dns.module';
import { PolicyModule } from '../policy/policy.module';
import { RunsModule } from '../runs/runs.module';
import { AgentStatusService } from './agent-status.service';

/** The agent's status and health (control socket `status`, fleet reports, /readyz). */
@Module({ imports: [DataPlaneModule, DnsModule, PolicyModule, RunsModule], providers: [AgentStatusService], exports: [AgentStatusService] })
export class StatusModule {}
