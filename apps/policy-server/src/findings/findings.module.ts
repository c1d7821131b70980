import { Module } from '@nestjs/common';
import { EventStoreModule } from '../event-store/event-store.module';
import { MetricsModule } from '../metrics/metrics.module';
import { FindingsController } from './findings.controller';
import { FindingsFeeder } from './findings-feeder.service';
import { FindingsService } from './findings.service';

/** Findings: fed from ingestion, driven by teams through the API. */
@Module({
  imports: [EventStoreModule, MetricsModule],
  controllers: [FindingsController],
  providers: [FindingsService, FindingsFeeder],
  exports: [FindingsService, FindingsFeeder],
})
export class FindingsModule {}
