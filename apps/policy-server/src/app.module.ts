import { DynamicModule, MiddlewareConsumer, Module, NestModule } from '@nestjs/common';
import { APP_FILTER } from '@nestjs/core';
import { TypeOrmModule } from '@nestjs/typeorm';
import type { Logger } from 'pino';
import type { DataSourceOptions } from 'typeorm';
import { migrations } from '@cgfence/migrations';
import { AuditModule } from './audit/audit.module';
import { AuthModule } from './auth/auth.module';
import { BlocklistsModule } from './blocklists/blocklists.module';
import { CorrelationMiddleware } from './common/correlation.middleware';
import { HttpErrorFilter } from './common/http-error.filter';
import { LOGGER } from './common/logger';
import { SERVER_CONFIG, ServerConfig } from './config/config';
import { EventStoreModule } from './event-store/event-store.module';
import { EventsModule } from './events/events.module';
import { FleetModule } from './fleet/fleet.module';
import { HealthController } from './health/health.controller';
import { MetricsModule } from './metrics/metrics.module';
import { FindingsModule } from './findings/findings.module';
import { NotificationsModule } from './notifications/notifications.module';

/** TypeORM options shared by the server and the `migrate` command. */
export function dataSourceOptions(config: ServerConfig): DataSourceOptions {
  return {
    type: 'postgres',
    url: config.databaseUrl,
    migrations,
    migrationsTableName: 'schema_migrations',
    migrationsTransactionMode: 'each',
    entities: [],
    synchronize: false,
    logging: false,
    extra: { max: 20, application_name: 'cgfence-policy-server' },
  };
}

@Module({})
export class AppModule implements NestModule {
  static forRoot(config: ServerConfig, logger: Logger): DynamicModule {
    return {
      module: AppModule,
      global: true,
      imports: [
        TypeOrmModule.forRoot({ ...dataSourceOptions(config), migrationsRun: true }),
        MetricsModule,
        EventStoreModule,
        AuthModule,
        BlocklistsModule,
        AuditModule,
        FleetModule,
        EventsModule,
        FindingsModule,
        NotificationsModule,
      ],
      controllers: [HealthController],
      providers: [
        { provide: SERVER_CONFIG, useValue: config },
        { provide: LOGGER, useValue: logger },
        { provide: APP_FILTER, useClass: HttpErrorFilter },
      ],
      exports: [SERVER_CONFIG, LOGGER],
    };
  }

  configure(consumer: MiddlewareConsumer): void {
    consumer.apply(CorrelationMiddleware).forRoutes('*path');
  }
}
