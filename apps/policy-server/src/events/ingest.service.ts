import { BeforeApplicationShutdown, Inject, Injectable, OnApplicationBootstrap } from '@nestjs/common';
import type { ConsumerMessages, JsMsg } from '@nats-io/jetstream';
import type { Logger } from 'pino';
import type { RunSummary } from '@cgfence/proto';
import { LOGGER } from '../common/logger';
import { SERVER_CONFIG, ServerConfig } from '../config/config';
import { Metrics } from '../metrics/metrics.service';
import { NatsService } from '../nats/nats.service';
import { EventsWriter, WritePath } from './events-writer';
import { PartitionMaintainer } from './partition-maintainer.service';
import { decodeMessage, EventRow } from './rows';

/** A batch is written when it has this many messages, or this long after its first one arrived. */
export const BATCH_MAX = 2000;
export const BATCH_MS = 200;
/** Batches written at the same time. */
export const WRITERS = 2;
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
  private buffer: JsMsg[] = [];
  private timer: NodeJS.Timeout | undefined;
  private readonly writing = new Set<Promise<void>>();
  readonly path: WritePath;

  constructor(
    private readonly nats: NatsService,
    private readonly writer: EventsWriter,
    private readonly partitions: PartitionMaintainer,
    private readonly metrics: Metrics,
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
        const messages = await consumer.consume({ max_messages: BATCH_MAX * 2, expires: 5000 });
        this.messages = messages;
        if (this.stopped) messages.stop();
        for await (const m of messages) {
          this.buffer.push(m);
          if (this.buffer.length === 1) this.timer = setTimeout(() => void this.flush(), BATCH_MS);
          // Waiting here is the back-pressure: no more messages are pulled while a full batch is written.
          if (this.buffer.length >= BATCH_MAX) await this.flush();
        }
      } catch (err) {
        if (!this.stopped) this.logger.warn({ err: (err as Error).message }, 'block event consumer stopped; restarting');
      }
      await this.flush();
      await this.drained();
      if (!this.stopped) await sleep(500);
    }
  }

  /**
   * Hands what is buffered to a writer. Up to WRITERS batches are written at
   * once (decoding one batch while Postgres writes another); beyond that the
   * caller waits, which stops the pull. Rollup rows are updated in key order,
   * so concurrent batches wait for each other there instead of deadlocking.
   */
  private async flush(): Promise<void> {
    clearTimeout(this.timer);
    const batch = this.buffer;
    this.buffer = [];
    if (batch.length > 0) {
      while (this.writing.size >= WRITERS) await Promise.race(this.writing);
      const w: Promise<void> = this.writeBatch(batch).finally(() => this.writing.delete(w));
      this.writing.add(w);
    }
  }

  /** Every batch handed over so far is written (or nak'ed). */
  private async drained(): Promise<void> {
    while (this.writing.size > 0) await Promise.all(this.writing);
  }

  private async writeBatch(batch: JsMsg[]): Promise<void> {
    const rows = new Map<string, EventRow>();
    const times: number[] = [];
    const runs: RunSummary[] = [];
    let blocks = 0;
    for (const m of batch) {
      const d = decodeMessage(m.subject, m.data);
      if (d.kind === 'block') {
        blocks++;
        const key = `${d.row[0]}|${d.row[1]}`;
        if (!rows.has(key)) {
          rows.set(key, d.row);
          times.push(Date.parse(d.row[0] as string));
        }
      } else if (d.kind === 'run') {
        runs.push(d.run);
      } else {
        this.metrics.eventsIngested.inc({ kind: m.subject.split('.')[3] ?? 'unknown', outcome: d.kind });
        this.logger.warn({ subject: m.subject, seq: m.seq, reason: d.reason }, `${d.kind} message on the events stream; dropped`);
      }
    }
    const t0 = process.hrtime.bigint();
    try {
      await this.partitions.ensureDays(times);
      const inserted = await this.writer.write([...rows.values()], runs, this.path);
      this.metrics.eventsBatchSeconds.observe(Number(process.hrtime.bigint() - t0) / 1e9);
      this.metrics.eventsIngested.inc({ kind: 'block', outcome: 'stored' }, inserted);
      if (blocks > inserted) this.metrics.eventsIngested.inc({ kind: 'block', outcome: 'duplicate' }, blocks - inserted);
      if (runs.length > 0) this.metrics.eventsIngested.inc({ kind: 'run', outcome: 'stored' }, runs.length);
    } catch (err) {
      this.logger.warn({ err: (err as Error).message, messages: batch.length }, 'writing a batch of block events failed; it will be redelivered');
      for (const m of batch) m.nak(RETRY_MS);
      return;
    }
    for (const m of batch) m.ack();
  }

  async beforeApplicationShutdown(): Promise<void> {
    this.stopped = true;
    this.messages?.stop();
    await this.loop;
    await this.flush();
    await this.drained();
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
