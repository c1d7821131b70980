import { Inject, Injectable } from '@nestjs/common';
import type { Logger } from 'pino';
import type { HostInfo, HostReport, HostsQuery, HostStateName, HostView } from '@cgfence/proto';
import { Clock } from '../common/clock';
import { DomainError } from '../common/errors';
import { LOGGER } from '../common/logger';
import { SERVER_CONFIG, ServerConfig } from '../config/config';
import { CommandHandler } from '../event-store/command-handler.service';
import type { FleetRow } from '../read-models/fleet/fleet.read-model';
import { FleetReadModel } from '../read-models/fleet/fleet.read-model';
import { HostRow, HostRowFilter, HostsReadModel } from '../read-models/hosts/hosts.read-model';
import { RolloutRow, RolloutsReadModel } from '../read-models/rollouts/rollouts.read-model';
import { stageIndexer } from '../rollouts/stages';
import { decideHost, hostDecider, HostState, hostStreamOf, RecordReport } from './host';
import { randomUUID } from 'node:crypto';
import { DataSource } from 'typeorm';
import { EventStore } from '../event-store/event-store.service';
import { ReadModels } from '../read-models/read-models.service';

const REPORT_BATCH = 500;
const REPORT_LINGER_MS = 5;
/** Rows read per round when a page of hosts is filtered on the views (desired version, state). */
const HOSTS_CHUNK = 500;

/** Where a host stands, worst first; no baseline and no rollout counts as in sync (the Fleet page's rule). */
export function hostStateOf(h: Pick<HostView, 'stale' | 'drift' | 'lastError' | 'desired' | 'inSync'>): HostStateName {
  if (h.stale) return 'stale';
  if (h.drift?.drifted) return 'drifted';
  if (h.lastError) return 'rejected';
  if (h.desired === null) return 'in-sync';
  return h.inSync ? 'in-sync' : 'converging';
}

function recordReport(r: HostReport, now: Date): RecordReport {
  const applied = r.applied
    ? { revision: r.applied.revision, blocklist: r.applied.name, version: r.applied.version, contentHash: r.applied.hash, appliedAt: r.applied.appliedAt }
    : null;
  return { type: 'RecordReport', hostId: r.hostId, applied, rejection: r.lastError, drift: r.drift, labels: r.labels, now };
}

interface QueuedReport {
  report: HostReport;
  correlationId: string;
  resolve: (known: boolean) => void;
  reject: (err: unknown) => void;
}

/** Registration and reports from agents, and the hosts view operators query. */
@Injectable()
export class HostsService {
  private readonly queue: QueuedReport[] = [];
  private flushTimer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> = Promise.resolve();

  constructor(
    private readonly db: DataSource,
    private readonly store: EventStore,
    private readonly readModels: ReadModels,
    private readonly commands: CommandHandler,
    private readonly hosts: HostsReadModel,
    private readonly fleet: FleetReadModel,
    private readonly rollouts: RolloutsReadModel,
    private readonly clock: Clock,
    @Inject(SERVER_CONFIG) private readonly config: ServerConfig,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  async register(info: HostInfo, correlationId: string): Promise<void> {
    const now = this.clock.now();
    const { hostId, ...facts } = info;
    await this.commands.handle(hostStreamOf(hostId), hostDecider, { type: 'RegisterHost', hostId, facts, now }, { actor: `host:${hostId}`, correlationId });
    await this.hosts.seen(hostId, now);
  }

  /**
   * Records a report. Reports are gathered for a few milliseconds and written
   * in one transaction per batch (a fleet converging sends thousands at once);
   * resolves false for a host that never registered.
   */
  report(r: HostReport, correlationId: string): Promise<boolean> {
    return new Promise((resolve, reject) => {
      this.queue.push({ report: r, correlationId, resolve, reject });
      if (this.queue.length >= REPORT_BATCH) this.flushSoon(0);
      else this.flushSoon(REPORT_LINGER_MS);
    });
  }

  private flushSoon(ms: number): void {
    if (this.flushTimer && ms > 0) return;
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = setTimeout(() => {
      this.flushTimer = undefined;
      this.flushing = this.flushing.then(() => this.flush());
    }, ms);
  }

  private async flush(): Promise<void> {
    const batch = this.queue.splice(0, REPORT_BATCH);
    if (batch.length === 0) return;
    if (this.queue.length > 0) this.flushSoon(0);
    try {
      const known = await this.recordBatch(batch.map((b) => b.report));
      for (const b of batch) b.resolve(known.has(b.report.hostId));
    } catch (err) {
      // A conflict with a concurrent writer (another replica, a registration):
      // fall back to one transaction per report, each retried on its own.
      if (!(err instanceof DomainError && err.code === 'stream.conflict')) this.logger.warn({ err: (err as Error).message }, 'report batch failed; recording one by one');
      for (const b of batch) await this.reportOne(b.report, b.correlationId).then(b.resolve, b.reject);
    }
  }

  private async recordBatch(reports: readonly HostReport[]): Promise<Set<string>> {
    const now = this.clock.now();
    // The last report of a host in the batch says where it stands.
    const latest = new Map(reports.map((r) => [r.hostId, r]));
    return this.db.transaction(async (m) => {
      const rows: Pick<HostRow, 'host_id' | 'labels' | 'applied' | 'last_error' | 'conditions'>[] = await m.query(
        `select host_id, labels, applied, last_error, conditions from rm_hosts where host_id = any($1) order by host_id for update`,
        [[...latest.keys()]],
      );
      const known = new Set(rows.map((r) => r.host_id));
      for (const id of latest.keys()) if (!known.has(id)) this.logger.warn({ hostId: id }, 'report from a host that has not registered; dropped');
      const versions = await this.store.streamVersions(rows.map((r) => hostStreamOf(r.host_id)), m);
      const appends = rows.map((row) => {
        const r = latest.get(row.host_id)!;
        const state: HostState = {
          registered: true,
          facts: { hostname: '', labels: row.labels, kernel: '', agentVersion: '', capabilities: [] },
          applied: row.applied ? { revision: row.applied.revision, blocklist: row.applied.blocklist, version: row.applied.version, contentHash: row.applied.contentHash } : null,
          lastRejection: row.last_error ? { revision: row.last_error.revision, reason: row.last_error.reason, at: row.last_error.at } : null,
          // Reports decide nothing about enrollment: the keys play no part here.
          natsKeys: [],
          revokedKeys: [],
          conditions: { rejected: row.conditions.includes('rejected'), drifted: row.conditions.includes('drifted') },
        };
        const streamId = hostStreamOf(row.host_id);
        return {
          streamId,
          expectedVersion: versions.get(streamId) ?? 0,
          events: decideHost(recordReport(r, now), state),
          metadata: { actor: `host:${row.host_id}`, correlationId: randomUUID(), time: now.toISOString() },
        };
      });
      const stored = await this.store.appendMany(appends, m);
      await this.readModels.apply(stored, m);
      const knownReports = [...latest.values()].filter((r) => known.has(r.hostId));
      await this.hosts.touchMany(knownReports, now, m);
      await this.hosts.sampleBlocks(knownReports, now, m);
      return known;
    });
  }

  private async reportOne(r: HostReport, correlationId: string): Promise<boolean> {
    const now = this.clock.now();
    const known = await this.hosts.get(r.hostId);
    if (!known) {
      this.logger.warn({ hostId: r.hostId }, 'report from a host that has not registered; dropped (it registers on its next connect)');
      return false;
    }
    await this.commands.handle(hostStreamOf(r.hostId), hostDecider, recordReport(r, now), { actor: `host:${r.hostId}`, correlationId });
    await this.hosts.touch(r, now);
    await this.hosts.sampleBlocks([r], now);
    return true;
  }

  async seen(hostId: string): Promise<void> {
    await this.hosts.seen(hostId, this.clock.now());
  }

  /**
   * Hosts matching every filter given, in host id order. SQL narrows by
   * cohort, labels, agent and applied version, staleness and what the state
   * implies of drift and errors; the desired version and the state (which
   * depend on the baseline and the active rollouts) are checked on the
   * views. With `limit`, one keyset page after `after`: rows are read in
   * chunks of HOSTS_CHUNK until the page is full or the table ends.
   */
  async list(q: HostsQuery = {}): Promise<HostView[]> {
    const fleet = await this.fleet.get();
    const rollouts = this.indexed(await this.rollouts.list({ active: true }));
    const sql: HostRowFilter = { cohort: q.cohort, labels: q.label, agentVersion: q.agentVersion, applied: q.applied, after: q.after };
    const staleBefore = new Date(this.clock.now().getTime() - this.config.hostStaleMs);
    // stale=… and state=… together: both must hold (stale=false with state=stale matches nothing).
    const stale = q.state === undefined ? q.stale : q.state === 'stale' ? true : false;
    if (q.stale !== undefined && stale !== q.stale) return [];
    if (stale !== undefined) Object.assign(sql, { stale, staleBefore });
    if (q.state === 'drifted') sql.drifted = true;
    if (q.state === 'rejected') Object.assign(sql, { drifted: false, rejected: true });
    if (q.state === 'in-sync' || q.state === 'converging') Object.assign(sql, { drifted: false, rejected: false });
    const keep = (h: HostView): boolean =>
      (q.state === undefined || h.state === q.state) &&
      (q.stale === undefined || h.stale === q.stale) &&
      (q.desired === undefined || (h.desired !== null && h.desired.blocklist === q.desired.blocklist && (q.desired.version === undefined || h.desired.version === q.desired.version)));
    const out: HostView[] = [];
    for (;;) {
      const rows = await this.hosts.list({ ...sql, limit: q.limit === undefined ? undefined : Math.max(q.limit, HOSTS_CHUNK) });
      for (const r of rows) {
        const v = this.view(r, fleet, rollouts);
        if (!keep(v)) continue;
        out.push(v);
        if (q.limit !== undefined && out.length === q.limit) return out;
      }
      if (q.limit === undefined || rows.length < Math.max(q.limit, HOSTS_CHUNK)) return out;
      sql.after = rows[rows.length - 1]!.host_id;
    }
  }

  async get(hostId: string): Promise<HostView> {
    const row = await this.hosts.get(hostId);
    if (!row) throw new DomainError('host.not_found', `no host ${hostId} has registered`);
    return this.view(row, await this.fleet.get(), this.indexed(await this.rollouts.list({ active: true })));
  }

  /** Each active rollout with its stage lookup, built once for all hosts of a view. */
  private indexed(rollouts: readonly RolloutRow[]): { row: RolloutRow; stageOf: ReturnType<typeof stageIndexer> }[] {
    return rollouts.map((row) => ({ row, stageOf: stageIndexer(row) }));
  }

  private view(r: HostRow, fleet: FleetRow | undefined, rollouts: ReturnType<HostsService['indexed']> = []): HostView {
    const now = this.clock.now().getTime();
    const host = { hostId: r.host_id, cohort: r.cohort ?? undefined, labels: r.labels };
    const cohortAudit = fleet?.auditFleet === true || (r.cohort !== null && (fleet?.auditCohorts.includes(r.cohort) ?? false));
    // A rollout stage that takes this host wins over the baseline (the same choice the agent makes).
    let desired: HostView['desired'] = null;
    for (const { row: ro, stageOf } of rollouts) {
      const stage = stageOf(host);
      if (stage === undefined) continue;
      const mode = cohortAudit || ro.plan.stages[stage]!.mode === 'audit' ? ('audit' as const) : ('enforce' as const);
      desired = { blocklist: ro.blocklist, version: ro.version, hash: ro.content_hash, revision: fleet?.revision ?? 0, mode };
      break;
    }
    if (!desired && fleet?.baseline) {
      desired = {
        blocklist: fleet.baseline.blocklist,
        version: fleet.baseline.version,
        hash: fleet.baseline.contentHash,
        revision: fleet.revision,
        mode: cohortAudit ? ('audit' as const) : ('enforce' as const),
      };
    }
    const applied = r.applied
      ? { blocklist: r.applied.blocklist, version: r.applied.version, hash: r.applied.contentHash, revision: r.applied.revision, appliedAt: r.applied.appliedAt }
      : null;
    const view: Omit<HostView, 'state'> = {
      hostId: r.host_id,
      hostname: r.hostname,
      labels: r.labels,
      cohort: r.cohort,
      kernel: r.kernel,
      agentVersion: r.agent_version,
      capabilities: r.capabilities,
      registeredAt: r.registered_at.toISOString(),
      lastSeen: r.last_seen?.toISOString() ?? null,
      stale: r.last_seen === null || now - r.last_seen.getTime() > this.config.hostStaleMs,
      desired,
      applied,
      inSync: desired !== null && applied !== null && desired.hash === applied.hash,
      seenRevision: r.seen_revision,
      lastError: r.last_error,
      mode: r.mode,
      failMode: r.fail_mode,
      health: r.health,
      drift: r.drift,
    };
    return { ...view, state: hostStateOf(view) };
  }
}
