import 'reflect-metadata';
import { readFileSync } from 'node:fs';
import { INestApplication } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { NestExpressApplication } from '@nestjs/platform-express';
import { OpenAPIObject, SwaggerModule } from '@nestjs/swagger';
import type { Logger } from 'pino';
import { MicroserviceOptions, Transport } from '@nestjs/microservices';
import { SERVER_QUEUE } from '@cgfence/proto';
import { AppModule } from './app.module';
import { natsAuth } from './nats/nats.service';
import { TokensService } from './auth/tokens.service';
import { PinoNestLogger } from '@cgfence/nest-pino';
import { createLogger } from './common/logger';
import { buildOpenApiDocument, RouteTable } from './common/openapi';
import { CorrelationMiddleware } from './common/correlation.middleware';
import type { CgfenceRequest } from './common/request-context';
import type { NextFunction, Response } from 'express';
import { ServerConfig } from './config/config';
import { serveDashboard } from './dashboard/dashboard';

export interface StartedServer {
  app: INestApplication;
  url: string;
  logger: Logger;
  /** The bootstrap admin secret, when this start created it. */
  bootstrapSecret?: string;
  close(): Promise<void>;
}

/**
 * Builds the NestJS application: migrations run as the database connects,
 * then the API, its OpenAPI document (/openapi.json), interactive docs
 * (/docs) and the dashboard (/, see dashboard/dashboard.ts) are served.
 */
export async function createServer(config: ServerConfig, opts: { listen?: boolean } = {}): Promise<StartedServer> {
  const logger = createLogger(config.logLevel);
  const app = await NestFactory.create<NestExpressApplication>(AppModule.forRoot(config, logger), {
    logger: new PinoNestLogger(logger),
    bodyParser: false,
    // HTTPS when CGFENCE_TLS_CERT/KEY are set (enrollment hands out credentials: never over plain HTTP across a network).
    ...(config.tls ? { httpsOptions: { cert: readFileSync(config.tls.certFile), key: readFileSync(config.tls.keyFile) } } : {}),
  });
  // First of all, so even a request Express cannot route (a path that does
  // not percent-decode) is answered with a real correlation id.
  const correlation = new CorrelationMiddleware();
  app.use((req: CgfenceRequest, res: Response, next: NextFunction) => correlation.use(req, res, next));
  // No body parser here: the edge (common/edge.interceptor.ts) reads a body
  // after the token is checked, with the route's own size limit.
  app.enableShutdownHooks();
  // No ETags: Express would hash every answer on the event loop (a 1,000,000-entry
  // version is ~40 MB of JSON), and no client of this API revalidates.
  app.set('etag', false);

  let document: OpenAPIObject | undefined;
  const getDocument = (): OpenAPIObject => (document ??= buildOpenApiDocument(app));
  SwaggerModule.setup('docs', app, getDocument, { jsonDocumentUrl: 'openapi.json' });
  serveDashboard(app, config.dashboardDir);

  if (config.natsUrl) {
    // The agents' requests (register, sync, bundle chunks, reports) arrive
    // through NestJS's NATS transport, in one queue group across replicas.
    app.connectMicroservice<MicroserviceOptions>(
      {
        transport: Transport.NATS,
        options: {
          servers: config.natsUrl,
          queue: SERVER_QUEUE,
          name: `cgfence-policy-server-rpc-${process.pid}`,
          maxReconnectAttempts: -1,
          reconnectTimeWait: 500,
          ...natsAuth(config),
        },
      },
      { inheritAppConfig: true },
    );
    await app.startAllMicroservices();
  }
  await app.init();
  // Built now, so a route without a contract stops the boot; the 405 answers use its paths.
  (app.getHttpAdapter().getInstance() as { locals: Record<string, unknown> }).locals.routes = new RouteTable(getDocument());
  const bootstrapSecret = config.bootstrapAdmin ? await app.get(TokensService).bootstrapAdmin(config.stateDir) : undefined;
  let url = '';
  if (opts.listen !== false) {
    await app.listen(config.httpPort, config.httpHost);
    const addr = app.getHttpServer().address();
    const port = typeof addr === 'object' && addr ? addr.port : config.httpPort;
    url = `${config.tls ? 'https' : 'http'}://${config.httpHost.includes(':') ? `[${config.httpHost}]` : config.httpHost}:${port}`;
  }
  return { app, url, logger, bootstrapSecret, close: () => app.close() };
}
