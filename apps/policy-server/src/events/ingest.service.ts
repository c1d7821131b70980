import { setTimeout as sleep } from 'node:timers/promises';
import { BeforeApplicationShutdown, Inject, Injectable, OnApplicationBootstrap } from '@nestjs/common';
import type { ConsumerMessages, JsMsg } from '@nats-io/jetstream';
import type { Logger } from 'pino';
import { LOGGER } from '../common/logger';
import { SERVER_CONFIG, ServerConfig } from '../config/config';
import { Metrics } from '../metrics/metrics.service';
import { NatsService } from '../nats/nats.service';
import { EventsWriter, WritePath } from './events-writer';
import { PartitionMaintainer } from './partition-maintainer.service';
import { BatchDecoder, DecodedBatch } from './batch-decoder';
import { FindingsFeeder } from '../findings/findings-feeder.service';

/** A batch is written when it has this many messages, or this long after its first one arrived. */
export const BATCH_MAX = 5000;
export const BATCH_MS = 200;
/**
 * Batches written at the same time: while one waits for its commit to reach
 * the disk (fsync), the others are copying. 2 → 4 took a durable PostgreSQL
 * from about 50,000 to 60,000 events/s in the ingest benchmark.
 */
export const WRITERS = 4;
/** A batch whose write failed comes back this much later (nak with delay). */
const RETRY_MS = 2000;

/**
 * Pulls CGF_EVENTS through the one durable consumer every replica shares and
 * writes each batch in one transaction; the messages are acked only after the
 * commit. A crash before the ack means a redelivery, which the (time, id) key
 * turns into nothing. Malformed and forged messages are logged, counted and
 * acked: a poison message must not block the stream.
 */
@Injectable()
export class IngestService implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private stopped = false;
  private loop: Promise<void> | undefined;
  private messages: ConsumerMessages | undefined;
  /** The batch being filled. */
  private open: Pending | undefined;
  /** Full batches waiting for a writer. */
  private readonly queue: Pending[] = [];
  private timer: NodeJS.Timeout | undefined;
  private readonly writing = new Set<Promise<void>>();
  private readonly decoder = new BatchDecoder();
  readonly path: WritePath;

  constructor(
    private readonly nats: NatsService,
    private readonly writer: EventsWriter,
    private readonly partitions: PartitionMaintainer,
    private readonly metrics: Metrics,
    private readonly findings: FindingsFeeder,
    @Inject(SERVER_CONFIG) private readonly config: ServerConfig,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {
    this.path = process.env['CGFENCE_EVENTS_WRITE_PATH'] === 'insert' ? 'insert' : 'copy';
  }

  onApplicationBootstrap(): void {
    if (!this.nats.enabled || !this.config.eventsIngest) return;
    this.loop = this.run();
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      if (!this.nats.connected) {
        await sleep(250);
        continue;
      }
      try {
        const consumer = await this.nats.eventsConsumer();
        // A callback, not the async iterator: one message costs a function
        // call instead of a promise, which halves the CPU the consumer takes
        // here and in nats-server (the client pulls in bigger batches). How
        // much is held in memory is bounded by the consumer's max_ack_pending.
        const messages = await consumer.consume({ max_messages: BATCH_MAX * 2, expires: 5000, callback: (m) => this.take(m) });
        this.messages = messages;
        if (this.stopped) messages.stop();
        const ended = await messages.closed();
        if (ended instanceof Error && !this.stopped) throw ended;
      } catch (err) {
        if (!this.stopped) this.logger.warn({ err: (err as Error).message }, 'block event consumer stopped; restarting');
      }
      this.flush();
      await this.drained();
      if (!this.stopped) await sleep(500);
    }
  }

  private take(m: JsMsg): void {
    let b = this.open;
    if (!b) {
      b = this.open = { messages: [] };
      this.timer = setTimeout(() => this.flush(), BATCH_MS);
    }
    b.messages.push(m);
    if (b.messages.length >= BATCH_MAX) this.flush();
  }

  /** Queues the open batch and starts writers for it. */
  private flush(): void {
    clearTimeout(this.timer);
    if (this.open) this.queue.push(this.open);
    this.open = undefined;
    this.pump();
  }

  /**
   * Up to WRITERS batches are written at once (one decoding while others
   * are written or wait for their commit). Rollup rows are updated in key order, so
   * concurrent batches wait for each other there instead of deadlocking.
   */
  private pump(): void {
    while (this.writing.size < WRITERS && this.queue.length > 0) {
      const w: Promise<void> = this.writeBatch(this.queue.shift()!).finally(() => {
        this.writing.delete(w);
        this.pump();
      });
      this.writing.add(w);
    }
  }

  /** Every batch handed over so far is written (or nak'ed). */
  private async drained(): Promise<void> {
    while (this.writing.size > 0 || this.queue.length > 0) await Promise.all(this.writing);
  }

  private async writeBatch({ messages }: Pending): Promise<void> {
    let decoded: DecodedBatch;
    try {
      decoded = await this.decoder.decode(messages, this.path === 'insert', this.config.findings ? this.config.findingsOwnerLabel : null);
    } catch (err) {
      this.logger.warn({ err: (err as Error).message, messages: messages.length }, 'decoding a batch of block events failed; it will be redelivered');
      for (const m of messages) m.nak(RETRY_MS);
      return;
    }
    const { events, runs, rejected } = decoded;
    for (const r of rejected) {
      const m = messages[r.index]!;
      this.metrics.eventsIngested.inc({ kind: m.subject.split('.')[3] ?? 'unknown', outcome: r.kind });
      this.logger.warn({ subject: m.subject, seq: m.seq, reason: r.reason }, `${r.kind} message on the events stream; dropped`);
    }
    // No de-duplication here: the (time, id) key does it in the database, for
    // repeats inside a batch as well as across batches and replicas.
    const blocks = events.size;
    const t0 = process.hrtime.bigint();
    try {
      await this.partitions.ensureDays(events.counts.map((c) => c.key[0]));
      const inserted = await this.writer.write(events, runs, this.path);
      this.metrics.eventsBatchSeconds.observe(Number(process.hrtime.bigint() - t0) / 1e9);
      this.metrics.eventsIngested.inc({ kind: 'block', outcome: 'stored' }, inserted);
      if (blocks > inserted) this.metrics.eventsIngested.inc({ kind: 'block', outcome: 'duplicate' }, blocks - inserted);
      if (runs.length > 0) this.metrics.eventsIngested.inc({ kind: 'run', outcome: 'stored' }, runs.length);
    } catch (err) {
      this.logger.warn({ err: (err as Error).message, messages: messages.length }, 'writing a batch of block events failed; it will be redelivered');
      for (const m of messages) m.nak(RETRY_MS);
      return;
    }
    for (const m of messages) m.ack();
    // The batch's finding occurrences are committed with it; the feeder turns them into finding events now.
    if (events.findings.length > 0) this.findings.wake();
  }

  async beforeApplicationShutdown(): Promise<void> {
    this.stopped = true;
    this.messages?.stop();
    await this.loop;
    this.flush();
    await this.drained();
    await this.decoder.close();
  }
}

/** A batch: its messages, decoded together and acked together after the commit. */
interface Pending {
  messages: JsMsg[];
}

