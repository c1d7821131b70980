import { Module } from '@nestjs/common';
import { BlocklistsModule } from '../blocklists/blocklists.module';
import { FleetModule } from '../fleet/fleet.module';
import { FindingsModule } from '../findings/findings.module';
import { MetricsModule } from '../metrics/metrics.module';
import { EventsController } from './events.controller';
import { EventsDb } from './events-db';
import { EventsQueryService } from './events-query.service';
import { EventsWriter } from './events-writer';
import { IngestService } from './ingest.service';
import { PartitionMaintainer } from './partition-maintainer.service';

/** The block-event history: ingestion from JetStream, partitions, queries, runs and replay. */
@Module({
  imports: [BlocklistsModule, FleetModule, MetricsModule, FindingsModule],
  controllers: [EventsController],
  providers: [EventsDb, EventsWriter, PartitionMaintainer, IngestService, EventsQueryService],
  exports: [EventsQueryService, EventsWriter, PartitionMaintainer, EventsDb],
})
export class EventsModule {}
