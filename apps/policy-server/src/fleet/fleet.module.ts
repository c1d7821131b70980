import { Module } from '@nestjs/common';
import { BlocklistsModule } from '../blocklists/blocklists.module';
import { SERVER_CONFIG, ServerConfig } from '../config/config';
import { EventStoreModule } from '../event-store/event-store.module';
import { HostsService } from '../hosts/hosts.service';
import { MetricsModule } from '../metrics/metrics.module';
import { NatsService } from '../nats/nats.service';
import { OutboxRelay } from '../outbox/outbox-relay.service';
import { OutboxRepository } from '../outbox/outbox.repository';
import { NatsAuthority } from '../enrollment/nats-authority';
import { DesiredStateService } from './desired-state.service';
import { FleetController } from './fleet.controller';
import { FleetGateway } from './fleet.gateway';
import { FleetService } from './fleet.service';
import { HostCredentialsService } from './host-credentials.service';
import { RolloutPreviewController } from '../rollouts/rollout-preview.controller';
import { RolloutsController } from '../rollouts/rollouts.controller';
import { RolloutsService } from '../rollouts/rollouts.service';
import { SIGNING_KEY } from './fleet.tokens';
import { loadOrCreateSigningKey } from './signing-key';

/** Hosts, the fleet's desired state and staged rollouts, signing, the outbox and the agents' NATS handlers. */
@Module({
  imports: [EventStoreModule, MetricsModule, BlocklistsModule],
  controllers: [FleetController, FleetGateway, RolloutPreviewController, RolloutsController],
  providers: [
    { provide: SIGNING_KEY, useFactory: (config: ServerConfig) => loadOrCreateSigningKey(config.signingKeyFile), inject: [SERVER_CONFIG] },
    DesiredStateService,
    FleetService,
    HostsService,
    HostCredentialsService,
    NatsAuthority,
    NatsService,
    OutboxRepository,
    OutboxRelay,
    RolloutsService,
  ],
  exports: [FleetService, HostsService, NatsAuthority, NatsService, OutboxRepository, SIGNING_KEY],
})
export class FleetModule {}
