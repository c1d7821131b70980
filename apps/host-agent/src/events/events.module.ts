import { Module } from '@nestjs/common';
import { StatusModule } from '../control/status.module';
import { DnsModule } from '../dns/dns.module';
import { FleetModule } from '../fleet/fleet.module';
import { JournalModule } from '../journal/journal.module';
import { PolicyModule } from '../policy/policy.module';
import { RunsModule } from '../runs/runs.module';
import { EventShippingService } from './event-shipping.service';

/** Event shipping (fleet mode): journal records and run summaries to JetStream, through the disk spool. */
@Module({ imports: [JournalModule, RunsModule, DnsModule, FleetModule, PolicyModule, StatusModule], providers: [EventShippingService], exports: [EventShippingService] })
export class EventsModule {}
