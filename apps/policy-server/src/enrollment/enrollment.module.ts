import { Module } from '@nestjs/common';
import { EventStoreModule } from '../event-store/event-store.module';
import { FleetModule } from '../fleet/fleet.module';
import { EnrollmentController } from './enrollment.controller';
import { EnrollmentService } from './enrollment.service';

/** Join tokens, enrollment of new hosts (NATS user JWTs) and removal (revocation). */
@Module({
  imports: [EventStoreModule, FleetModule],
  controllers: [EnrollmentController],
  providers: [EnrollmentService],
})
export class EnrollmentModule {}
