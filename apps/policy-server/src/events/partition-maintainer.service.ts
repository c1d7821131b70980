import { Inject, Injectable, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import type { Logger } from 'pino';
import { LOGGER } from '../common/logger';
import { SERVER_CONFIG, ServerConfig } from '../config/config';
import { EventsDb } from './events-db';
import { dayOf, dayOfPartition, dayStart, firstKeptDay, partitionName } from './partitions';

/** Partitions made ahead of today; a later day is created when its first event arrives or when its time comes. */
export const DAYS_AHEAD = 3;
/** Events this far in the future get their own partition on demand; beyond it they wait in the default partition. */
const ON_DEMAND_AHEAD = 7;
const LOCK = 'select pg_advisory_xact_lock(hashtext(\'cgfence.block_events.partitions\'))';

/**
 * Creates the daily partitions of block_events ahead of time (at start and
 * every hour), on demand for a batch with events of a day that has none, and
 * drops those older than CGFENCE_EVENTS_RETENTION_DAYS. Rows that landed in
 * the default partition (a day without a partition yet) move into the day's
 * partition when it is created, in the same transaction. Replicas serialise
 * on an advisory lock.
 */
@Injectable()
export class PartitionMaintainer implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly known = new Set<number>();
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly db: EventsDb,
    @Inject(SERVER_CONFIG) private readonly config: ServerConfig,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    await this.maintain().catch((err: Error) => this.logger.error({ err: err.message }, 'block_events partition maintenance failed'));
    this.timer = setInterval(() => {
      this.running = this.maintain().catch((err: Error) => this.logger.error({ err: err.message }, 'block_events partition maintenance failed'));
    }, 3_600_000);
    this.timer.unref();
  }

  async onApplicationShutdown(): Promise<void> {
    clearInterval(this.timer);
    await this.running;
  }

  /** Today … today+DAYS_AHEAD exist; partitions past the retention are gone. Returns what it did. */
  async maintain(now = Date.now()): Promise<{ created: string[]; dropped: string[] }> {
    const today = dayOf(now);
    const created: string[] = [];
    for (let d = today; d <= today + DAYS_AHEAD; d++) if (await this.ensure(d)) created.push(partitionName(d));
    const dropped = await this.dropOld(today);
    if (created.length + dropped.length > 0) this.logger.info({ created, dropped }, 'block_events partitions maintained');
    return { created, dropped };
  }

  /** Makes partitions for the days of a batch that lack one (within the retention and a week ahead). */
  async ensureDays(times: Iterable<number>, now = Date.now()): Promise<void> {
    const today = dayOf(now);
    const first = firstKeptDay(today, this.config.eventsRetentionDays);
    const days = new Set<number>();
    for (const t of times) {
      const d = dayOf(t);
      if (!this.known.has(d) && d >= first && d <= today + ON_DEMAND_AHEAD) days.add(d);
    }
    for (const d of [...days].sort((a, b) => a - b)) await this.ensure(d);
  }

  async partitions(): Promise<{ name: string; day: number | undefined }[]> {
    const rows = await this.db.query<{ name: string }>(
      `select c.relname as name from pg_inherits i join pg_class c on c.oid = i.inhrelid where i.inhparent = 'block_events'::regclass order by 1`,
    );
    return rows.map((r) => ({ name: r.name, day: dayOfPartition(r.name) }));
  }

  private async ensure(day: number): Promise<boolean> {
    if (this.known.has(day)) return false;
    const name = partitionName(day);
    const made = await this.db.tx(async (c) => {
      await c.query(LOCK);
      const exists = await c.query(`select to_regclass($1) is not null as e`, [name]);
      if ((exists.rows[0] as { e: boolean }).e) return false;
      const [from, to] = [dayStart(day), dayStart(day + 1)];
      // Rows of this day waiting in the default partition move into the new one.
      await c.query(`create temp table block_events_moving (like block_events) on commit drop`);
      await c.query(`with d as (delete from block_events_default where time >= $1 and time < $2 returning *) insert into block_events_moving select * from d`, [from, to]);
      await c.query(`create table ${name} partition of block_events for values from ('${from}') to ('${to}')`);
      await c.query(`insert into block_events select * from block_events_moving`);
      return true;
    });
    this.known.add(day);
    return made;
  }

  private async dropOld(today: number): Promise<string[]> {
    const first = firstKeptDay(today, this.config.eventsRetentionDays);
    const dropped: string[] = [];
    for (const p of await this.partitions()) {
      if (p.day === undefined || p.day >= first) continue;
      await this.db.tx(async (c) => {
        await c.query(LOCK);
        await c.query(`drop table if exists ${p.name}`);
      });
      this.known.delete(p.day);
      dropped.push(p.name);
    }
    await this.db.query(`delete from block_events_default where time < $1`, [dayStart(first)]);
    await this.db.query(`delete from block_event_counts where hour < $1`, [dayStart(first)]);
    await this.db.query(`delete from runs where started_at < $1`, [dayStart(first)]);
    return dropped;
  }
}
