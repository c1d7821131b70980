import { Module } from '@nestjs/common';
import { EventStoreModule } from '../event-store/event-store.module';
import { MetricsModule } from '../metrics/metrics.module';
import { OwnersController } from '../owners/owners.controller';
import { OwnersService } from '../owners/owners.service';
import { NotificationsController } from './notifications.controller';
import { WebhookDispatcher } from './webhook-dispatcher.service';

/** Owners and their targets, and the webhook dispatcher (the reactor and the delivery outbox live with the event store). */
@Module({
  imports: [EventStoreModule, MetricsModule],
  controllers: [OwnersController, NotificationsController],
  providers: [OwnersService, WebhookDispatcher],
  exports: [WebhookDispatcher],
})
export class NotificationsModule {}
