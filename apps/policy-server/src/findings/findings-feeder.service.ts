import { setTimeout as sleep } from 'node:timers/promises';
import { Inject, Injectable, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import type { Logger } from 'pino';
import { DataSource } from 'typeorm';
import { Clock } from '../common/clock';
import { DomainError } from '../common/errors';
import { LOGGER } from '../common/logger';
import { Metrics } from '../metrics/metrics.service';
import type { Actor } from '../common/request-context';
import { SERVER_CONFIG, ServerConfig } from '../config/config';
import { CommandHandler } from '../event-store/command-handler.service';
import { randomUUID } from 'node:crypto';
import { EventStore } from '../event-store/event-store.service';
import { ReadModels } from '../read-models/read-models.service';
import { findingStreamOf, initialState, Observation } from './finding';
import { findingDecider } from './finding.decider';
import { FindingsReadModel } from './findings.read-model';
import { mergeExamples } from './occurrences';

/** Occurrence rows taken per transaction (each finding among them gets one update). */
export const FEED_BATCH = 500;
/** Findings ticked per pass. */
const TICK_BATCH = 500;
const SYSTEM: Actor = { actor: 'cgfence', correlationId: 'findings' };

interface OccurrenceRow {
  id: string;
  finding_id: string;
  owner_key: string;
  owner: string;
  entry: string;
  first_seen: Date;
  last_seen: Date;
  blocked: number;
  audited: number;
  names: string[];
  hosts: string[];
  cohorts: string[];
  runs: string[];
  commands: string[];
  versions: string[];
}

const EXAMPLES = ['names', 'hosts', 'cohorts', 'runs', 'commands', 'versions'] as const;

/** Several batches' occurrences of one finding as one observation. */
export function mergeOccurrences(rows: readonly OccurrenceRow[]): Observation {
  const o: Observation = { firstSeen: '', lastSeen: '', blocked: 0, audited: 0, names: [], hosts: [], cohorts: [], runs: [], commands: [], versions: [] };
  let first = Infinity;
  let last = -Infinity;
  for (const r of rows) {
    first = Math.min(first, new Date(r.first_seen).getTime());
    last = Math.max(last, new Date(r.last_seen).getTime());
    o.blocked += r.blocked;
    o.audited += r.audited;
    for (const k of EXAMPLES) o[k] = mergeExamples(o[k], r[k]);
  }
  o.firstSeen = new Date(first).toISOString();
  o.lastSeen = new Date(last).toISOString();
  return o;
}

/**
 * Feeds findings from ingestion, after each batch's commit: takes queued
 * occurrences (SKIP LOCKED, so replicas share them), records one
 * occurrence per finding in the finding's stream, and deletes the rows, in
 * one transaction. Also ticks findings whose quiet period ended or whose
 * acceptance expired.
 */
@Injectable()
export class FindingsFeeder implements OnApplicationBootstrap, OnApplicationShutdown {
  private stopped = false;
  private loop: Promise<void> | undefined;
  private wakeUp: (() => void) | undefined;
  private woken = false;
  private ticking: Promise<number> | undefined;
  private tickTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly db: DataSource,
    private readonly commands: CommandHandler,
    private readonly store: EventStore,
    private readonly readModels: ReadModels,
    private readonly findings: FindingsReadModel,
    private readonly clock: Clock,
    private readonly metrics: Metrics,
    @Inject(SERVER_CONFIG) private readonly config: ServerConfig,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  onApplicationBootstrap(): void {
    if (!this.config.findings) return;
    this.loop = this.run();
    this.tickTimer = setInterval(() => void this.tick().catch((err: Error) => this.logger.warn({ err: err.message }, 'findings tick failed')), this.config.findingsTickMs);
  }

  /** Ingestion committed occurrences: look now rather than at the next poll. */
  wake(): void {
    this.woken = true;
    this.wakeUp?.();
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      let n = 0;
      try {
        n = await this.drain();
        if (n > 0) this.metrics.findingOccurrences.inc(n);
      } catch (err) {
        const conflict = err instanceof DomainError && err.code === 'stream.conflict';
        if (!conflict) this.logger.warn({ err: (err as Error).message }, 'feeding findings failed; retrying');
        await sleep(conflict ? 50 : 1000);
        continue;
      }
      if (n === FEED_BATCH) continue;
      if (n > 0) {
        // Let the next batches' occurrences gather: a busy finding gets one update per interval, not one per batch.
        this.woken = false;
        await sleep(this.config.findingsFeedMs);
        continue;
      }
      if (this.woken) {
        this.woken = false;
        continue;
      }
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 1000);
        this.wakeUp = () => {
          clearTimeout(t);
          resolve();
        };
      });
      this.wakeUp = undefined;
    }
  }

  /** One pass: returns how many occurrence rows it turned into finding events. */
  async drain(): Promise<number> {
    return this.db.transaction(async (m) => {
      const rows: OccurrenceRow[] = await m.query(`select * from finding_occurrences order by id limit $1 for update skip locked`, [FEED_BATCH]);
      if (rows.length === 0) return 0;
      const byFinding = new Map<string, OccurrenceRow[]>();
      for (const r of rows) {
        const list = byFinding.get(r.finding_id);
        if (list) list.push(r);
        else byFinding.set(r.finding_id, [r]);
      }
      const now = this.clock.now();
      // One decision per finding on its current state, read from its row (which
      // every append updates in the same transaction, so it is the stream's
      // state) instead of the stream itself, which grows with every pass; then
      // one append for all of them, each at the version it was decided on.
      const ids = [...byFinding.keys()].sort();
      const states = await this.findings.statesForUpdate(ids, m);
      const versions = await this.store.streamVersions(ids.map(findingStreamOf), m);
      const metadata = { ...SYSTEM, correlationId: `findings-${randomUUID()}`, time: now.toISOString() };
      const appends = ids.map((id) => {
        const list = byFinding.get(id)!;
        const r = list[0]!;
        const events = findingDecider.decide(
          { type: 'RecordOccurrence', id, ownerKey: r.owner_key, owner: r.owner, entry: r.entry, observation: mergeOccurrences(list), now },
          states.get(id) ?? initialState,
        );
        return { streamId: findingStreamOf(id), expectedVersion: versions.get(findingStreamOf(id)) ?? 0, events, metadata };
      });
      const stored = await this.store.appendMany(appends, m);
      await this.readModels.apply(stored, m);
      await m.query(`delete from finding_occurrences where id = any($1::bigint[])`, [rows.map((r) => r.id)]);
      return rows.length;
    });
  }

  /** Resolves quiet findings, warns of acceptances about to expire and reopens expired ones; returns how many changed. */
  tick(): Promise<number> {
    this.ticking ??= this.tickOnce().finally(() => (this.ticking = undefined));
    return this.ticking;
  }

  private async tickOnce(): Promise<number> {
    const now = this.clock.now();
    const { findingsQuietMs: quietMs, findingsFixQuietMs: fixQuietMs, findingsExpiryWarningMs: expiryWarningMs } = this.config;
    let changed = 0;
    for (const id of await this.findings.due(now, quietMs, fixQuietMs, TICK_BATCH, undefined, expiryWarningMs)) {
      try {
        const h = await this.commands.handle(findingStreamOf(id), findingDecider, { type: 'TickFinding', quietMs, fixQuietMs, now, expiryWarningMs }, SYSTEM);
        if (h.events.length > 0) changed++;
      } catch (err) {
        // Another replica or an operator got there first: the next tick sees the new state.
        if (!(err instanceof DomainError && err.code === 'stream.conflict')) throw err;
      }
    }
    return changed;
  }

  async onApplicationShutdown(): Promise<void> {
    this.stopped = true;
    clearInterval(this.tickTimer);
    this.wakeUp?.();
    await this.loop;
    await this.ticking?.catch(() => undefined);
  }
}
