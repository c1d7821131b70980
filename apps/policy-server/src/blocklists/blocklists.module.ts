import { Module } from '@nestjs/common';
import { EventStoreModule } from '../event-store/event-store.module';
import { BlocklistsController } from './blocklists.controller';
import { BlocklistsService } from './blocklists.service';
import { ContentsPool } from './contents.pool';
import { ContentsRepository } from './contents.repository';

@Module({
  imports: [EventStoreModule],
  controllers: [BlocklistsController],
  providers: [BlocklistsService, ContentsRepository, ContentsPool],
  exports: [BlocklistsService],
})
export class BlocklistsModule {}
