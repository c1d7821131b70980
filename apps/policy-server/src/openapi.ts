import { NestFactory } from '@nestjs/core';
import type { OpenAPIObject } from '@nestjs/swagger';
import { AppModule } from './app.module';
import { createLogger } from './common/logger';
import { buildOpenApiDocument } from './common/openapi';
import { ServerConfig } from './config/config';

/**
 * The same document without a database, NATS or a listening socket: Nest's
 * preview mode reads the modules and controllers but instantiates nothing.
 * The dashboard's build generates its API client from this (see
 * apps/dashboard/scripts/build.mjs), so a contract change it does not
 * follow fails its type check.
 */
export async function offlineOpenApiDocument(config: ServerConfig): Promise<OpenAPIObject> {
  const app = await NestFactory.create(AppModule.forRoot(config, createLogger('error')), { preview: true, logger: false, abortOnError: false });
  try {
    return buildOpenApiDocument(app);
  } finally {
    await app.close();
  }
}
