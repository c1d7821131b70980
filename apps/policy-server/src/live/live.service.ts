import { Inject, Injectable, OnApplicationShutdown } from '@nestjs/common';
import type { Logger } from 'pino';
import { Observable, Subscriber } from 'rxjs';
import { DomainError } from '../common/errors';
import { LOGGER } from '../common/logger';
import { SERVER_CONFIG, ServerConfig } from '../config/config';
import { EventsDb } from '../events/events-db';

/** What changed: the dashboard refetches the pages that show it. */
export type LiveTopic = 'fleet' | 'hosts' | 'blocks';
export interface LiveChange {
  topics: LiveTopic[];
  at: string;
}
/**
 * ready: the watcher's marks now include everything committed before it was
 * sent; a client that refetches on it misses nothing (a change after it comes
 * as a change). Sent once per stream, after the first look that follows its
 * opening.
 */
export type LiveMessage = { type: 'ready' } | ({ type: 'change' } & LiveChange);

/** Open streams at most, across all clients of this replica (each costs a socket and a little memory). */
export const MAX_LIVE_STREAMS = 200;
/** How often the shared watcher looks for changes while at least one stream is open. */
export const LIVE_POLL_MS = 1000;

interface Marks {
  fleet: string;
  hosts: string;
  blocks: string;
}

/**
 * Change notices for the dashboard's Server-Sent Events stream. One watcher
 * per replica, running only while a stream is open, reads three marks in one
 * query each second: the event store's last position (blocklists, baseline,
 * audit switches, rollout progress, tokens), a digest of the hosts' state
 * columns (not their heartbeat time) with the count of stale hosts, and the
 * newest block event's time. It reads the database, not this replica's own
 * traffic, so a change made through another replica or by the ingester of
 * another replica shows too.
 */
@Injectable()
export class LiveService implements OnApplicationShutdown {
  private readonly streams = new Set<Subscriber<LiveMessage>>();
  /** Streams opened since the last look: they get "ready" after the next one. */
  private readonly fresh = new Set<Subscriber<LiveMessage>>();
  private timer: NodeJS.Timeout | undefined;
  private last: Marks | undefined;
  private busy = false;

  constructor(
    private readonly db: EventsDb,
    @Inject(SERVER_CONFIG) private readonly config: ServerConfig,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  get openStreams(): number {
    return this.streams.size;
  }

  /** A stream of changes; refused with live.too_many_streams (503) past MAX_LIVE_STREAMS. */
  changes(): Observable<LiveMessage> {
    if (this.streams.size >= MAX_LIVE_STREAMS) {
      throw new DomainError('live.too_many_streams', `this server already serves ${MAX_LIVE_STREAMS} live streams; try again later`);
    }
    return new Observable<LiveMessage>((sub) => {
      this.streams.add(sub);
      this.fresh.add(sub);
      if (!this.timer) {
        this.timer = setInterval(() => void this.poll(), LIVE_POLL_MS);
        void this.poll();
      }
      return () => {
        this.streams.delete(sub);
        this.fresh.delete(sub);
        if (this.streams.size === 0) this.stop();
      };
    });
  }

  private stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.last = undefined;
  }

  async poll(): Promise<void> {
    if (this.busy) return; // a slow database: skip a turn rather than pile up queries
    this.busy = true;
    const waiting = [...this.fresh];
    try {
      const [row] = await this.db.query<Marks>(
        `select (select coalesce(max(global_position), 0) from events)::text as fleet,
                (select coalesce(sum(hashtext(concat_ws('|', host_id, cohort, mode, fail_mode, seen_revision, applied::text, last_error::text, drift::text, labels::text, agent_version))::bigint), 0)::text
                        || ':' || count(*) filter (where last_seen is null or last_seen < now() - make_interval(secs => $1))::text
                   from rm_hosts) as hosts,
                (select coalesce(max(time)::text, '') from block_events) as blocks`,
        [this.config.hostStaleMs / 1000],
      );
      const prev = this.last;
      this.last = row;
      if (prev && row) {
        const topics = (['fleet', 'hosts', 'blocks'] as const).filter((t) => prev[t] !== row[t]);
        if (topics.length > 0) {
          const change: LiveMessage = { type: 'change', topics, at: new Date().toISOString() };
          for (const s of this.streams) if (!waiting.includes(s)) s.next(change);
        }
      }
      // Marks taken after these streams opened: what they fetch from now on is covered.
      for (const s of waiting) {
        this.fresh.delete(s);
        if (this.streams.has(s)) s.next({ type: 'ready' });
      }
    } catch (err) {
      this.logger.warn({ err: (err as Error).message }, 'live: change watcher query failed; retrying');
    } finally {
      this.busy = false;
    }
  }

  onApplicationShutdown(): void {
    for (const s of this.streams) s.complete();
    this.streams.clear();
    this.fresh.clear();
    this.stop();
  }
}
