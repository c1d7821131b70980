import { Inject, Injectable, OnApplicationShutdown, OnModuleInit } from '@nestjs/common';
import {
  AckPolicy,
  Consumer,
  DeliverPolicy,
  jetstream,
  JetStreamApiCodes,
  JetStreamApiError,
  jetstreamManager,
  JetStreamClient,
  JetStreamManager,
  RetentionPolicy,
  StorageType,
  type StreamInfo,
} from '@nats-io/jetstream';
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
 * 1 otherwise. An existing stream is updated to it on every start and
 * reconnect (scaled up or down; nats-server moves the data).
 *
 * With "auto", an existing stream (`existing` replicas) is never scaled
 * down: INFO lists the nodes the connected one has routes to, so while a node
 * is down (or just restarted, without its routes yet) a three-node cluster
 * looks like two or one. Scaling down on that view (issue 17: a reconnect
 * during a node loss took R3 streams to R2, and the node, back, held no
 * replica) would leave the streams without a quorum at the next loss. Only
 * an explicit CGFENCE_JETSTREAM_REPLICAS scales down.
 */
export function streamReplicas(configured: number | 'auto', info: ServerInfo | undefined, existing?: number): number {
  if (configured !== 'auto') return configured;
  let seen: number;
  if (info?.cluster === undefined || info.cluster === '') seen = 1;
  else {
    const known = info.connect_urls?.length;
    seen = known === undefined ? 3 : Math.max(1, Math.min(3, known));
  }
  return existing === undefined ? seen : Math.max(existing, seen);
}

/** A stream's info, or undefined when it does not exist. Any other failure (a timeout while the cluster elects a leader) throws: that is no reason to create it. */
async function existingStream(jsm: JetStreamManager, name: string): Promise<StreamInfo | undefined> {
  try {
    return await jsm.streams.info(name);
  } catch (err) {
    if (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamNotFound) return undefined;
    throw err;
  }
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
  /** The streams were set up once on this connection: a failed re-check after a reconnect does not stop the relay and the ingest. */
  private setUp = false;
  /** One setup at a time (each reconnect asks for one). */
  private ensuring: Promise<void> | undefined;
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

  private ensureStream(): Promise<void> {
    this.ensuring ??= this.setUpStreams().finally(() => (this.ensuring = undefined));
    return this.ensuring;
  }

  /** The fleet stream: the broadcast kept with its message ids (duplicates dropped for 10 minutes). */
  private async setUpStreams(): Promise<void> {
    for (let attempt = 0; !this.closed && this.nc; attempt++) {
      try {
        const jsm = await jetstreamManager(this.nc);
        const fleet = await existingStream(jsm, FLEET_STREAM.name);
        const config = {
          num_replicas: streamReplicas(this.config.jetstreamReplicas, this.nc.info, fleet?.config.num_replicas),
          subjects: [...FLEET_STREAM.subjects],
          max_msgs_per_subject: 16,
          duplicate_window: 600_000_000_000,
          max_age: 7 * 24 * 3600 * 1_000_000_000,
        };
        if (fleet) await jsm.streams.update(FLEET_STREAM.name, config);
        else await jsm.streams.add({ name: FLEET_STREAM.name, ...config });
        // Block events and run summaries: kept on disk until ingested (and a
        // few days more, PostgreSQL is the history); message ids are event
        // ids, so an agent's retried publish is dropped for 10 minutes.
        const existingEvents = await existingStream(jsm, EVENTS_STREAM.name);
        const events = {
          subjects: [...EVENTS_STREAM.subjects],
          retention: RetentionPolicy.Limits,
          storage: StorageType.File,
          num_replicas: streamReplicas(this.config.jetstreamReplicas, this.nc.info, existingEvents?.config.num_replicas),
          duplicate_window: 600 * SECOND_NS,
          max_age: 3 * 24 * 3600 * SECOND_NS,
        };
        if (existingEvents) {
          const { storage: _storage, ...mutable } = events;
          await jsm.streams.update(EVENTS_STREAM.name, mutable);
        } else {
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
        } catch (err) {
          if (!(err instanceof JetStreamApiError && err.code === JetStreamApiCodes.ConsumerNotFound)) throw err;
          await jsm.consumers.add(EVENTS_STREAM.name, consumer);
        }
        this.streamReady = true;
        this.setUp = true;
        return;
      } catch (err) {
        // Before the first setup nothing may publish; after it, a re-check that fails (the cluster electing a
        // leader after a node loss) must not hold the outbox and the ingest back: their own calls fail and retry.
        if (!this.setUp) this.streamReady = false;
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
