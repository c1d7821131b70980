import { Inject, Injectable, OnApplicationShutdown, OnModuleInit } from '@nestjs/common';
import { AckPolicy, Consumer, DeliverPolicy, jetstream, jetstreamManager, JetStreamClient, RetentionPolicy, StorageType } from '@nats-io/jetstream';
import { connect, NatsConnection, type ConnectionOptions, type ServerInfo } from '@nats-io/transport-node';
import { natsConnectOptions, natsTlsOptions } from '@cgfence/nats-auth';
import type { Logger } from 'pino';
import { EVENTS_STREAM, FLEET_STREAM } from '@cgfence/proto';
import { LOGGER } from '../common/logger';
import { SERVER_CONFIG, ServerConfig } from '../config/config';

/**
 * Credentials and TLS of the server's NATS connections (the Nest transport's
 * and this one): an nkey seed or a JWT creds file, and the CA to verify the
 * NATS servers against.
 */
export function natsAuth(config: ServerConfig): Pick<ConnectionOptions, 'authenticator' | 'tls'> {
  if (config.natsSeedFile === undefined && config.natsCredsFile === undefined) {
    return config.natsCaFile === undefined ? {} : { tls: natsTlsOptions(config.natsCaFile) };
  }
  const { authenticator, tls } = natsConnectOptions({ seedFile: config.natsSeedFile, credsFile: config.natsCredsFile, caFile: config.natsCaFile });
  return tls === undefined ? { authenticator } : { authenticator, tls };
}

/**
 * Replicas of the JetStream streams: the configured number, or with "auto"
 * 3 when the server is part of a cluster (of 3 or more, as its INFO says) and
 * 1 otherwise. An existing stream is updated to it on every start (scaled up
 * or down; nats-server moves the data).
 */
export function streamReplicas(configured: number | 'auto', info: ServerInfo | undefined): number {
  if (configured !== 'auto') return configured;
  if (info?.cluster === undefined || info.cluster === '') return 1;
  const known = info.connect_urls?.length;
  return known === undefined ? 3 : Math.max(1, Math.min(3, known));
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
        const num_replicas = streamReplicas(this.config.jetstreamReplicas, this.nc.info);
        const config = {
          num_replicas,
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
          num_replicas,
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
