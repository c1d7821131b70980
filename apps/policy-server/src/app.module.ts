import { DynamicModule, Module } from '@nestjs/common';
import { APP_FILTER, APP_INTERCEPTOR } from '@nestjs/core';
import { TypeOrmModule } from '@nestjs/typeorm';
import type { Logger } from 'pino';
import type { DataSourceOptions } from 'typeorm';
import { migrations } from '@cgfence/migrations';
import { AuditModule } from './audit/audit.module';
import { AuthModule } from './auth/auth.module';
import { BlocklistsModule } from './blocklists/blocklists.module';
import { EdgeInterceptor } from './common/edge.interceptor';
import { HttpErrorFilter } from './common/http-error.filter';
import { LOGGER } from './common/logger';
import { SERVER_CONFIG, ServerConfig } from './config/config';
import { EventStoreModule } from './event-store/event-store.module';
import { EventsModule } from './events/events.module';
import { FleetModule } from './fleet/fleet.module';
import { EnrollmentModule } from './enrollment/enrollment.module';
import { HealthController } from './health/health.controller';
import { LiveModule } from './live/live.module';
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
export class AppModule {
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
        EnrollmentModule,
        EventsModule,
        LiveModule,
        FindingsModule,
        NotificationsModule,
      ],
      controllers: [HealthController],
      providers: [
        { provide: SERVER_CONFIG, useValue: config },
        { provide: LOGGER, useValue: logger },
        { provide: APP_FILTER, useClass: HttpErrorFilter },
        { provide: APP_INTERCEPTOR, useClass: EdgeInterceptor },
      ],
      exports: [SERVER_CONFIG, LOGGER],
    };
  }
}
