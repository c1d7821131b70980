import { Module } from '@nestjs/common';
import { EventStoreModule } from '../event-store/event-store.module';
import { BlocklistsController } from './blocklists.controller';
import { BlocklistsService } from './blocklists.service';
import { ContentsPool } from './contents.pool';

@Module({
  imports: [EventStoreModule],
  controllers: [BlocklistsController],
  providers: [BlocklistsService, ContentsPool],
  exports: [BlocklistsService, ContentsPool],
})
export class BlocklistsModule {}
