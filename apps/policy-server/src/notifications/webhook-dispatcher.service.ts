import { Inject, Injectable, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import type { Logger } from 'pino';
import { LOGGER } from '../common/logger';
import { Metrics } from '../metrics/metrics.service';
import { SERVER_CONFIG, ServerConfig } from '../config/config';
import { DeliveriesRepository, DueDelivery } from './deliveries.repository';
import { noticeOf, renderDigest } from './payload';
import { HEADERS, signDelivery } from './signature';

/** Deliveries claimed (and posted at once) per pass. */
export const DISPATCH_BATCH = 20;
/** Backoff never waits longer than this between attempts. */
const BACKOFF_MAX_MS = 3_600_000;
/** Bytes of a failing receiver's answer kept as the error. */
const ERROR_BODY_MAX = 200;

/** base · 2^(attempts-1), at most an hour. */
export function backoffMs(base: number, attempts: number): number {
  return Math.min(BACKOFF_MAX_MS, base * 2 ** Math.min(30, Math.max(0, attempts - 1)));
}

/**
 * Posts due webhook deliveries, each signed with its target's secret, and
 * records the outcome: delivered (a 2xx), retried later with backoff, or
 * dead after the last attempt. Deliveries are claimed in a transaction
 * (SKIP LOCKED), so replicas share them and one killed mid-way leaves them
 * pending: delivery is at-least-once, and the delivery id lets a receiver
 * drop a repeat.
 */
@Injectable()
export class WebhookDispatcher implements OnApplicationBootstrap, OnApplicationShutdown {
  private stopped = false;
  private loop: Promise<void> | undefined;
  private wakeUp: (() => void) | undefined;
  private readonly aborts = new AbortController();

  constructor(
    private readonly deliveries: DeliveriesRepository,
    private readonly metrics: Metrics,
    @Inject(SERVER_CONFIG) private readonly config: ServerConfig,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  onApplicationBootstrap(): void {
    this.loop = this.run();
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      let n = 0;
      try {
        await this.digest();
        n = await this.dispatch();
      } catch (err) {
        if (!this.stopped) this.logger.warn({ err: (err as Error).message }, 'webhook dispatch failed; retrying');
      }
      if (n === DISPATCH_BATCH) continue;
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, this.config.webhookPollMs);
        this.wakeUp = () => {
          clearTimeout(t);
          resolve();
        };
      });
      this.wakeUp = undefined;
    }
  }

  /** One pass over due deliveries; returns how many were attempted. */
  dispatch(): Promise<number> {
    return this.deliveries.drain(
      DISPATCH_BATCH,
      async (due) => new Map(await Promise.all(due.map(async (d) => [d.id, await this.post(d)] as const))),
      (attempts) => backoffMs(this.config.webhookBackoffMs, attempts),
      this.config.webhookMaxAttempts,
      (outcome) => this.metrics.webhookDeliveries.inc({ outcome }),
    );
  }

  /** Makes the digests that are due (they are then sent like any delivery). */
  digest(): Promise<number> {
    return this.deliveries.digest((t, id, held) =>
      renderDigest(t.format, id, t.owner === '' ? `(no ${t.owner_key} label)` : `${t.owner_key}=${t.owner}`, t.digest, held.map((d) => noticeOf(d.body))),
    );
  }

  /** null when delivered, else what went wrong. */
  private async post(d: DueDelivery): Promise<string | null> {
    if (d.url === null) return 'the target was removed';
    if (d.secret === null) return 'the target has no secret';
    const timestamp = Math.floor(Date.now() / 1000);
    try {
      const res = await fetch(d.url, {
        method: 'POST',
        redirect: 'manual',
        signal: AbortSignal.any([AbortSignal.timeout(this.config.webhookTimeoutMs), this.aborts.signal]),
        headers: {
          'content-type': 'application/json',
          'user-agent': 'cgfence-webhook/1',
          [HEADERS.delivery]: d.id,
          [HEADERS.timestamp]: String(timestamp),
          [HEADERS.signature]: signDelivery(d.secret, d.id, timestamp, d.body),
          [HEADERS.trigger]: d.trigger,
        },
        body: d.body,
      });
      const text = await res.text().catch(() => '');
      if (res.status >= 200 && res.status < 300) return null;
      return `HTTP ${res.status}${text ? `: ${text.slice(0, ERROR_BODY_MAX)}` : ''}`;
    } catch (err) {
      const cause = (err as { cause?: { code?: string } }).cause;
      return cause?.code ?? (err as Error).message;
    }
  }

  async onApplicationShutdown(): Promise<void> {
    this.stopped = true;
    this.aborts.abort();
    this.wakeUp?.();
    await this.loop;
  }
}
