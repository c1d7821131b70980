import { Module } from '@nestjs/common';
import { StatusModule } from '../control/status.module';
import { DataPlaneModule } from '../data-plane/data-plane.module';
import { DnsModule } from '../dns/dns.module';
import { JournalModule } from '../journal/journal.module';
import { PolicyModule } from '../policy/policy.module';
import { RunsModule } from '../runs/runs.module';
import { MetricsServer } from './metrics-server.service';
import { MetricsService } from './metrics.service';

/** Metrics: Prometheus metrics, /healthz and /readyz on --metrics-listen (loopback by default). */
@Module({
  imports: [StatusModule, DataPlaneModule, DnsModule, JournalModule, PolicyModule, RunsModule],
  providers: [MetricsService, MetricsServer],
  exports: [MetricsService, MetricsServer],
})
export class MetricsModule {}
