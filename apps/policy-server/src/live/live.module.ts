import { Module } from '@nestjs/common';
import { EventsModule } from '../events/events.module';
import { LiveController } from './live.controller';
import { LiveService } from './live.service';

/** Change notices for the dashboard (Server-Sent Events at GET /live). */
@Module({
  imports: [EventsModule],
  controllers: [LiveController],
  providers: [LiveService],
  exports: [LiveService],
})
export class LiveModule {}
