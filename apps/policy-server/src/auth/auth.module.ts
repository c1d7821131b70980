import { Module } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import { EventStoreModule } from '../event-store/event-store.module';
import { AuthGuard } from './auth.guard';
import { SessionController } from './session.controller';
import { TokensController } from './tokens.controller';
import { TokensService } from './tokens.service';

@Module({
  imports: [EventStoreModule],
  controllers: [TokensController, SessionController],
  providers: [TokensService, { provide: APP_GUARD, useClass: AuthGuard }],
  exports: [TokensService],
})
export class AuthModule {}
