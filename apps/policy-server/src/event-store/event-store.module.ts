import { Module } from '@nestjs/common';
import { Clock } from '../common/clock';
import { BlocklistsReadModel } from '../read-models/blocklists/blocklists.read-model';
import { ReadModels } from '../read-models/read-models.service';
import { TokensReadModel } from '../read-models/tokens/tokens.read-model';
import { FleetReadModel } from '../read-models/fleet/fleet.read-model';
import { HostsReadModel } from '../read-models/hosts/hosts.read-model';
import { RolloutsReadModel } from '../read-models/rollouts/rollouts.read-model';
import { EnrollTokensReadModel } from '../enrollment/enroll-tokens.read-model';
import { CommandHandler } from './command-handler.service';
import { FindingsReadModel } from '../findings/findings.read-model';
import { OwnersReadModel } from '../owners/owners.read-model';
import { DeliveriesRepository } from '../notifications/deliveries.repository';
import { NotificationsReactor } from '../notifications/notifications.reactor';
import { EventStore } from './event-store.service';

/** The event store, the command handler on top of it, and the read models it feeds. */
@Module({
  providers: [Clock, EventStore, CommandHandler, ReadModels, BlocklistsReadModel, TokensReadModel, FleetReadModel, HostsReadModel, RolloutsReadModel, EnrollTokensReadModel, FindingsReadModel, OwnersReadModel, DeliveriesRepository, NotificationsReactor],
  exports: [Clock, EventStore, CommandHandler, ReadModels, BlocklistsReadModel, TokensReadModel, FleetReadModel, HostsReadModel, RolloutsReadModel, EnrollTokensReadModel, FindingsReadModel, OwnersReadModel, DeliveriesRepository, NotificationsReactor],
})
export class EventStoreModule {}
