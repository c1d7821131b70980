// Ships the agent's events to the central history (issue 6): every journal
// record to cgf.events.<host>.block and every run summary to
// cgf.events.<host>.run, as JetStream publishes with the message id the
// contract names (event id, run-<runId>), each waiting for its ack. Whatever
// is not acked yet lives in the disk spool; the spool is shipped in order,
// oldest first, whenever NATS is reachable, also after an agent restart.
// A publish whose ack was lost is sent again: JetStream (within its duplicate
// window) and the server's table (keyed by id) keep one copy.
import type { Logger } from 'pino';
import { EVENT_SUBJECTS, type RunSummary } from '@cgfence/proto';
import type { JournalRecord } from '../journal/journal-record';
import { DiskSpool, type SpoolEntry, type SpoolOptions, type SpoolStats } from './spool';

/** What a publish returns once JetStream acked it. */
export interface PublishAck {
  readonly stream: string;
  readonly seq: number;
  readonly duplicate: boolean;
}

/** A JetStream publisher (JetStreamTransport over the fleet connection; tests use doubles). */
export interface EventTransport {
  /** False while there is no connection to publish on: the shipper waits instead of failing. */
  connected(): boolean;
  /** Publishes and resolves with the ack; rejects on timeout or a JetStream error. */
  publish(subject: string, data: Uint8Array, msgId: string, timeoutMs: number): Promise<PublishAck>;
}

export interface EventShipperOptions {
  /** The fleet host id: the subjects are cgf.events.<hostId>.*. */
  readonly hostId: string;
  readonly transport: EventTransport;
  /** The spool (dir: <state-dir>/spool, maxBytes: --spool-max-bytes). */
  readonly spool: Omit<SpoolOptions, 'logger'>;
  readonly logger: Logger;
  /** Ack deadline of each publish. Default 5 s. */
  readonly ackTimeoutMs?: number;
  /** Publishes in flight at once (sent in order on one connection). Default 32. */
  readonly window?: number;
  /** Pause after a failed publish, doubled up to retryMaxMs. Default 500 ms … 10 s. */
  readonly retryMs?: number;
  readonly retryMaxMs?: number;
  /** Journals an alert (spool drops); called outside append(), never re-entrantly. */
  readonly alert?: (message: string) => void;
  /** Minimum time between two drop alerts (drops in between are summed). Default 30 s. */
  readonly alertIntervalMs?: number;
}

/** The `spool` section of `cgfence agent status`. */
export interface ShipperStatus extends SpoolStats {
  /** Entries acked by JetStream since the agent started. */
  readonly shipped: number;
  readonly lastShippedAt: string | null;
  readonly lastError: { readonly at: string; readonly message: string } | null;
}

const NOT_CONNECTED = 'not connected to NATS';

export class EventShipper {
  readonly spool: DiskSpool;
  private readonly log: Logger;
  private readonly ackTimeoutMs: number;
  private readonly window: number;
  private readonly retryMs: number;
  private readonly retryMaxMs: number;
  private readonly alertIntervalMs: number;
  private stopped = true;
  private loop: Promise<void> | undefined;
  private wakeUp: (() => void) | undefined;
  private shipped = 0;
  private lastShippedAt: string | null = null;
  private lastError: ShipperStatus['lastError'] = null;
  private unalerted = 0;
  private lastAlertAt = 0;
  private alertTimer: NodeJS.Timeout | undefined;
  private readonly idleWaiters: (() => void)[] = [];

  constructor(private readonly opts: EventShipperOptions) {
    this.log = opts.logger.child({ component: 'events' });
    this.spool = new DiskSpool({ ...opts.spool, logger: this.log });
    this.ackTimeoutMs = opts.ackTimeoutMs ?? 5000;
    this.window = Math.max(1, opts.window ?? 32);
    this.retryMs = opts.retryMs ?? 500;
    this.retryMaxMs = opts.retryMaxMs ?? 10_000;
    this.alertIntervalMs = opts.alertIntervalMs ?? 30_000;
    const s = this.spool.stats();
    if (s.pending > 0) this.log.info({ pending: s.pending, bytes: s.bytes }, 'event spool: events from before the restart are shipped first');
  }

  /** A journal record (blocked, audited, alert) for cgf.events.<host>.block. */
  event(record: JournalRecord): void {
    this.enqueue('block', record.id, record);
  }

  /** A run's summary for cgf.events.<host>.run (message id run-<runId>). */
  runSummary(summary: RunSummary): void {
    this.enqueue('run', `run-${summary.runId}`, summary);
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.loop = this.shipLoop();
  }

  /** Something changed (connected again): try now instead of at the end of the pause. */
  wake(): void {
    this.wakeUp?.();
  }

  /** Stops shipping (in-flight publishes are awaited) and closes the spool; what is pending stays on disk. */
  async close(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.alertTimer);
    this.wake();
    await this.loop;
    this.spool.close();
  }

  status(): ShipperStatus {
    return { ...this.spool.stats(), shipped: this.shipped, lastShippedAt: this.lastShippedAt, lastError: this.lastError };
  }

  /** Resolves once nothing is pending (tests). */
  idle(): Promise<void> {
    if (this.spool.stats().pending === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private enqueue(kind: 'block' | 'run', msgId: string, body: unknown): void {
    let dropped: number;
    try {
      dropped = this.spool.append(kind, msgId, body).dropped;
    } catch (err) {
      // The journal has the event; only its shipping is lost.
      this.lastError = { at: new Date().toISOString(), message: `cannot spool: ${(err as Error).message}` };
      this.log.error({ err: (err as Error).message, msgId }, 'cannot write an event to the spool; it will not be shipped');
      return;
    }
    if (dropped > 0) this.dropped(dropped);
    this.wake();
  }

  private dropped(n: number): void {
    this.unalerted += n;
    if (this.alertTimer || !this.opts.alert) return;
    const wait = Math.max(0, this.lastAlertAt + this.alertIntervalMs - Date.now());
    this.alertTimer = setTimeout(() => {
      this.alertTimer = undefined;
      const lost = this.unalerted;
      this.unalerted = 0;
      this.lastAlertAt = Date.now();
      const s = this.spool.stats();
      this.opts.alert?.(
        `event spool full (${s.maxBytes} bytes): dropped the ${lost} oldest events not yet shipped to the policy server ` +
          `(${s.dropped} dropped in all; ${s.pending} pending; last error: ${this.lastError?.message ?? 'none'})`,
      );
    }, wait);
    this.alertTimer.unref();
  }

  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(t);
        if (this.wakeUp === done) this.wakeUp = undefined;
        resolve();
      };
      const t = setTimeout(done, ms);
      this.wakeUp = done;
    });
  }

  private async shipLoop(): Promise<void> {
    let backoff = this.retryMs;
    while (!this.stopped) {
      if (!this.opts.transport.connected()) {
        if (this.spool.stats().pending > 0 && this.lastError?.message !== NOT_CONNECTED) this.lastError = { at: new Date().toISOString(), message: NOT_CONNECTED };
        await this.pause(this.retryMaxMs);
        continue;
      }
      const batch = this.spool.read(this.spool.ackedSeq, this.window);
      if (batch.length === 0) {
        for (const w of this.idleWaiters.splice(0)) w();
        await this.pause(5_000);
        continue;
      }
      const failed = await this.ship(batch);
      if (failed === undefined) {
        backoff = this.retryMs;
        continue;
      }
      const repeat = this.lastError?.message === failed;
      this.lastError = { at: new Date().toISOString(), message: failed };
      // The same error again and again (a long outage) is logged once at warn.
      this.log[repeat ? 'debug' : 'warn']({ err: failed, pending: this.spool.stats().pending, retryInMs: backoff }, 'shipping events failed; they stay spooled');
      await this.pause(backoff);
      backoff = Math.min(backoff * 2, this.retryMaxMs);
    }
  }

  /**
   * Publishes a batch (all requests go out in order at once) and acks the
   * longest prefix JetStream acknowledged. Returns the first error, if any:
   * that entry and everything after it are sent again next time.
   */
  private async ship(batch: SpoolEntry[]): Promise<string | undefined> {
    // An async wrapper turns a synchronous throw into a rejection; the requests still go out in order.
    const results = await Promise.allSettled(batch.map(async (e) => this.publish(e)));
    for (const [i, r] of results.entries()) {
      if (r.status === 'rejected') return (r.reason as Error)?.message ?? String(r.reason);
      this.spool.ack(batch[i]!.seq);
      this.shipped++;
      this.lastShippedAt = new Date().toISOString();
      if (r.value.duplicate) this.log.debug({ msgId: batch[i]!.msgId }, 'event was already in the stream (sent again after a lost ack)');
    }
    return undefined;
  }

  private publish(e: SpoolEntry): Promise<PublishAck> {
    const subject = e.kind === 'run' ? EVENT_SUBJECTS.run(this.opts.hostId) : EVENT_SUBJECTS.block(this.opts.hostId);
    return this.opts.transport.publish(subject, Buffer.from(JSON.stringify(e.body), 'utf8'), e.msgId, this.ackTimeoutMs);
  }
}
