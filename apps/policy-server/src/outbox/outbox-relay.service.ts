import { Inject, Injectable, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import { Client } from 'pg';
import type { Logger } from 'pino';
import { LOGGER } from '../common/logger';
import { SERVER_CONFIG, ServerConfig } from '../config/config';
import { Metrics } from '../metrics/metrics.service';
import { NatsService } from '../nats/nats.service';
import { OutboxRepository, PendingMessage } from './outbox.repository';

const BATCH = 100;
/** Even without a NOTIFY (a lost LISTEN connection, a replica that missed it), look this often. */
const POLL_MS = 1000;

/**
 * Publishes the outbox to NATS. Each replica runs one; rows are claimed with
 * SKIP LOCKED and published with their message id, so a crash between commit
 * and publish only delays a message, and a publish repeated after a crash is
 * dropped by JetStream's duplicate window (and ignored by agents, which act
 * on revisions).
 */
@Injectable()
export class OutboxRelay implements OnApplicationBootstrap, OnApplicationShutdown {
  private listener: Client | undefined;
  private wake: (() => void) | undefined;
  private stopped = false;
  private loop: Promise<void> | undefined;

  constructor(
    private readonly outbox: OutboxRepository,
    private readonly nats: NatsService,
    private readonly metrics: Metrics,
    @Inject(SERVER_CONFIG) private readonly config: ServerConfig,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  onApplicationBootstrap(): void {
    if (!this.nats.enabled) {
      this.logger.warn('CGFENCE_NATS_URL is not set: fleet changes are recorded but not published');
      return;
    }
    void this.listen();
    this.loop = this.run();
  }

  private async listen(): Promise<void> {
    while (!this.stopped) {
      const client = new Client({ connectionString: this.config.databaseUrl, application_name: 'cgfence-outbox-listener' });
      try {
        await client.connect();
        client.on('notification', () => this.wake?.());
        await client.query('listen cgf_outbox');
        this.listener = client;
        await new Promise<void>((resolve) => {
          client.once('error', () => resolve());
          client.once('end', () => resolve());
        });
      } catch (err) {
        if (!this.stopped) this.logger.warn({ err: (err as Error).message }, 'outbox LISTEN connection failed; polling until it is back');
      }
      await client.end().catch(() => undefined);
      this.listener = undefined;
      if (!this.stopped) await new Promise((r) => setTimeout(r, POLL_MS));
    }
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      let published = 0;
      try {
        if (this.nats.connected) published = await this.outbox.drain(BATCH, (batch) => this.publish(batch));
      } catch (err) {
        this.logger.warn({ err: (err as Error).message }, 'outbox drain failed; retrying');
      }
      if (published === BATCH) continue;
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, POLL_MS);
        this.wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
      this.wake = undefined;
    }
  }

  /** In id order; stops at the first failure so messages are never published out of order by one relay. */
  private async publish(batch: PendingMessage[]): Promise<{ published: string[]; failed: { id: string; error: string }[] }> {
    const published: string[] = [];
    for (const msg of batch) {
      try {
        const { duplicate } = await this.nats.publish(msg.subject, msg.payload, msg.msgId);
        published.push(msg.id);
        this.metrics.outboxPublished.inc({ duplicate: String(duplicate) });
      } catch (err) {
        this.logger.warn({ err: (err as Error).message, msgId: msg.msgId }, 'outbox publish failed; will retry');
        return { published, failed: [{ id: msg.id, error: (err as Error).message }] };
      }
    }
    return { published, failed: [] };
  }

  async onApplicationShutdown(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    await this.listener?.end().catch(() => undefined);
    await this.loop;
  }
}
