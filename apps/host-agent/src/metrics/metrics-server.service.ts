import { BeforeApplicationShutdown, Inject, Injectable, OnApplicationBootstrap } from '@nestjs/common';
import { createServer, IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { AgentConfig } from '../agent/agent-config';
import { AGENT_CONFIG, AGENT_LOGGER } from '../app/tokens';
import { AgentStatusService } from '../control/agent-status.service';
import { MetricsService } from './metrics.service';

/** Requests handled at once; beyond it, 503 (a busy scraper cannot pile up work). */
const MAX_CONCURRENT = 8;

/**
 * The agent's HTTP listener (--metrics-listen, loopback by default): GET
 * /metrics (Prometheus text), /healthz (the process answers) and /readyz
 * (enforcing: programs attached, proxy heartbeat fresh). Nothing else; no
 * request body is read. A port already taken is logged and the agent goes on
 * enforcing without it: metrics never stand in the way of enforcement.
 */
@Injectable()
export class MetricsServer implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private server: Server | undefined;
  private active = 0;
  private stopping = false;
  /** Where it listens (port 0 in the config: the port the kernel picked). */
  address: { host: string; port: number } | undefined;

  constructor(
    @Inject(AGENT_CONFIG) private readonly config: AgentConfig,
    @Inject(AGENT_LOGGER) private readonly logger: Logger,
    private readonly metrics: MetricsService,
    private readonly status: AgentStatusService,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    const listen = this.config.metricsListen;
    if (!listen) return;
    const server = createServer((req, res) => void this.serve(req, res));
    server.headersTimeout = 5_000;
    server.requestTimeout = 10_000;
    server.maxHeadersCount = 50;
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(listen.port, listen.host, () => resolve());
      });
    } catch (err) {
      this.logger.error({ err: (err as Error).message, listen }, `metrics endpoint not started (--metrics-listen ${listen.host}:${listen.port}): enforcing without it`);
      return;
    }
    this.server = server;
    const a = server.address() as AddressInfo;
    this.address = { host: a.address, port: a.port };
    this.logger.info({ metrics: `http://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}/metrics` }, 'metrics endpoint listening');
  }

  async beforeApplicationShutdown(): Promise<void> {
    this.stopping = true;
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  }

  private async serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (this.active >= MAX_CONCURRENT) return this.reply(res, 503, 'text/plain', 'busy\n');
    this.active++;
    try {
      if (req.method !== 'GET' && req.method !== 'HEAD') return this.reply(res, 405, 'text/plain', 'only GET\n', { allow: 'GET, HEAD' });
      const path = (req.url ?? '/').split('?')[0];
      switch (path) {
        case '/metrics':
          return this.reply(res, 200, this.metrics.contentType, await this.metrics.scrape());
        case '/healthz':
          return this.stopping ? this.reply(res, 503, 'text/plain', 'stopping\n') : this.reply(res, 200, 'text/plain', 'ok\n');
        case '/readyz': {
          const h = this.status.health();
          const ready = !this.stopping && h.kernel && h.proxy;
          return this.reply(res, ready ? 200 : 503, 'application/json', `${JSON.stringify({ ready, ...h, ...(this.stopping ? { detail: 'stopping' } : {}) })}\n`);
        }
        default:
          return this.reply(res, 404, 'text/plain', 'not found: /metrics, /healthz, /readyz\n');
      }
    } catch (err) {
      this.logger.warn({ err: (err as Error).message }, 'metrics request failed');
      this.reply(res, 503, 'text/plain', `unavailable: ${(err as Error).message}\n`);
    } finally {
      this.active--;
    }
  }

  private reply(res: ServerResponse, code: number, type: string, body: string, headers: Record<string, string> = {}): void {
    if (res.headersSent) return;
    res.writeHead(code, { 'content-type': type, 'cache-control': 'no-store', ...headers });
    res.end(res.req.method === 'HEAD' ? undefined : body);
  }
}
