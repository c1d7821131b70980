import { Inject, Injectable, OnApplicationShutdown, OnModuleInit } from '@nestjs/common';
import { readFileSync } from 'node:fs';
import { AckPolicy, Consumer, DeliverPolicy, jetstream, jetstreamManager, JetStreamClient, RetentionPolicy, StorageType } from '@nats-io/jetstream';
import { connect, NatsConnection, nkeyAuthenticator, type Authenticator } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { EVENTS_STREAM, FLEET_STREAM } from '@cgfence/proto';
import { LOGGER } from '../common/logger';
import { SERVER_CONFIG, ServerConfig } from '../config/config';

/** Credentials of the server's NATS connections (the Nest transport's and this one). */
export function natsAuth(config: ServerConfig): { authenticator?: Authenticator } {
  if (!config.natsSeedFile) return {};
  const seed = readFileSync(config.natsSeedFile, 'utf8').trim();
  return { authenticator: nkeyAuthenticator(new TextEncoder().encode(seed)) };
}

/** The one durable pull consumer all replicas share: each message is ingested by one of them. */
export const INGEST_CONSUMER = 'cgfence-ingest';
const SECOND_NS = 1_000_000_000;

/**
 * The server's own NATS connection, for JetStream: the outbox relay publishes
 * through it. Connects in the background and keeps reconnecting, so a NATS
 * outage never stops the API; /ready and the relay say when it is down.
 */
@Injectable()
export class NatsService implements OnModuleInit, OnApplicationShutdown {
  private nc: NatsConnection | undefined;
  private js: JetStreamClient | undefined;
  private streamReady = false;
  private closed = false;

  constructor(
    @Inject(SERVER_CONFIG) private readonly config: ServerConfig,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  get enabled(): boolean {
    return this.config.natsUrl !== undefined;
  }

  get connected(): boolean {
    return this.nc !== undefined && !this.nc.isClosed() && this.streamReady;
  }

  onModuleInit(): void {
    if (!this.config.natsUrl) return;
    void this.connectLoop();
  }

  private async connectLoop(): Promise<void> {
    const servers = this.config.natsUrl!;
    while (!this.closed && !this.nc) {
      try {
        this.nc = await connect({
          servers,
          name: `cgfence-policy-server-${process.pid}`,
          maxReconnectAttempts: -1,
          reconnectTimeWait: 500,
          ...natsAuth(this.config),
        });
      } catch (err) {
        this.logger.warn({ err: (err as Error).message, servers }, 'NATS not reachable yet; retrying');
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
    if (!this.nc || this.closed) return;
    this.js = jetstream(this.nc);
    void this.watchStatus(this.nc);
    await this.ensureStream();
  }

  private async watchStatus(nc: NatsConnection): Promise<void> {
    for await (const s of nc.status()) {
      if (s.type === 'disconnect') this.logger.warn('NATS disconnected');
      if (s.type === 'reconnect') {
        this.logger.info('NATS reconnected');
        // A restarted server without its JetStream data needs the stream again.
        void this.ensureStream();
      }
    }
  }

  /** The fleet stream: the broadcast kept with its message ids (duplicates dropped for 10 minutes). */
  private async ensureStream(): Promise<void> {
    for (let attempt = 0; !this.closed && this.nc; attempt++) {
      try {
        const jsm = await jetstreamManager(this.nc);
        const config = {
          subjects: [...FLEET_STREAM.subjects],
          max_msgs_per_subject: 16,
          duplicate_window: 600_000_000_000,
          max_age: 7 * 24 * 3600 * 1_000_000_000,
        };
        try {
          await jsm.streams.info(FLEET_STREAM.name);
          await jsm.streams.update(FLEET_STREAM.name, config);
        } catch {
          await jsm.streams.add({ name: FLEET_STREAM.name, ...config });
        }
        // Block events and run summaries: kept on disk until ingested (and a
        // few days more, PostgreSQL is the history); message ids are event
        // ids, so an agent's retried publish is dropped for 10 minutes.
        const events = {
          subjects: [...EVENTS_STREAM.subjects],
          retention: RetentionPolicy.Limits,
          storage: StorageType.File,
          duplicate_window: 600 * SECOND_NS,
          max_age: 3 * 24 * 3600 * SECOND_NS,
        };
        try {
          await jsm.streams.info(EVENTS_STREAM.name);
          const { storage: _storage, ...mutable } = events;
          await jsm.streams.update(EVENTS_STREAM.name, mutable);
        } catch {
          await jsm.streams.add({ name: EVENTS_STREAM.name, ...events });
        }
        const consumer = {
          durable_name: INGEST_CONSUMER,
          ack_policy: AckPolicy.Explicit,
          deliver_policy: DeliverPolicy.All,
          ack_wait: 30 * SECOND_NS,
          max_ack_pending: 50_000,
          max_deliver: -1,
          // No filter_subject: the stream holds nothing else, and a filtered
          // consumer costs nats-server about 1.3 µs more per message.
        };
        try {
          await jsm.consumers.info(EVENTS_STREAM.name, INGEST_CONSUMER);
        } catch {
          await jsm.consumers.add(EVENTS_STREAM.name, consumer);
        }
        this.streamReady = true;
        return;
      } catch (err) {
        this.streamReady = false;
        if (attempt % 10 === 0) this.logger.warn({ err: (err as Error).message }, 'cannot set up the JetStream fleet stream yet; retrying');
        await new Promise((r) => setTimeout(r, 500));
      }
    }
  }

  /** Publishes through JetStream with a message id; resolves once the stream stored it (or dropped it as a duplicate). */
  async publish(subject: string, payload: Uint8Array, msgId: string): Promise<{ duplicate: boolean }> {
    if (!this.js || !this.connected) throw new Error('NATS is not connected');
    const ack = await this.js.publish(subject, payload, { msgID: msgId, timeout: 5000 });
    return { duplicate: ack.duplicate };
  }

  /** The shared ingest consumer of CGF_EVENTS, once the connection and the stream are up. */
  async eventsConsumer(): Promise<Consumer> {
    if (!this.js || !this.connected) throw new Error('NATS is not connected');
    return this.js.consumers.get(EVENTS_STREAM.name, INGEST_CONSUMER);
  }

  async onApplicationShutdown(): Promise<void> {
    this.closed = true;
    await this.nc?.close().catch(() => undefined);
  }
}
