import { INestApplication } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { DocumentBuilder, OpenAPIObject, SwaggerModule } from '@nestjs/swagger';
import { AppModule } from './app.module';
import { createLogger } from './common/logger';
import { ServerConfig } from './config/config';

/** The OpenAPI document of the REST API, built from the controllers' decorators. */
export function openApiDocument(app: INestApplication): OpenAPIObject {
  const doc = new DocumentBuilder()
    .setTitle('cgfence policy server')
    .setDescription('Versioned blocklists for deploy cgroups, rolled out to host cohorts.')
    .setVersion('0.1.0')
    .addBearerAuth()
    .build();
  return SwaggerModule.createDocument(app, doc);
}

/**
 * The same document without a database, NATS or a listening socket: Nest's
 * preview mode reads the modules and controllers but instantiates nothing.
 * The dashboard's build generates its API client from this (see
 * apps/dashboard/scripts/gen-api.mjs), so a contract change it does not
 * follow fails its type check.
 */
export async function offlineOpenApiDocument(config: ServerConfig): Promise<OpenAPIObject> {
  const app = await NestFactory.create(AppModule.forRoot(config, createLogger('error')), { preview: true, logger: false, abortOnError: false });
  try {
    return openApiDocument(app);
  } finally {
    await app.close();
  }
}
