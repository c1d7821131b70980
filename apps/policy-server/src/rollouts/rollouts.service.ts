import { Inject, Injectable, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { DataSource, EntityManager } from 'typeorm';
import {
  durationMs,
  GateState,
  HostIdentity,
  RolloutActionRequest,
  RolloutHistoryEntry,
  RolloutPlanSchema,
  RolloutView,
  StagePhase,
  StageView,
} from '@cgfence/proto';
import { Clock } from '../common/clock';
import { DomainError } from '../common/errors';
import { LOGGER } from '../common/logger';
import type { Actor } from '../common/request-context';
import { CommandHandler } from '../event-store/command-handler.service';
import type { StoredEvent } from '../event-store/event-store';
import { EventStore } from '../event-store/event-store.service';
import { FleetService } from '../fleet/fleet.service';
import { BlocklistsReadModel } from '../read-models/blocklists/blocklists.read-model';
import { FleetReadModel, FleetRow } from '../read-models/fleet/fleet.read-model';
import { HostRow, HostsReadModel } from '../read-models/hosts/hosts.read-model';
import { RolloutRow, RolloutsReadModel } from '../read-models/rollouts/rollouts.read-model';
import { RolloutCommand, rolloutDecider, rolloutStreamOf, StageObservation } from './rollout';
import type { PlanPreview } from './plan-preview';
import { hostsPerStage, stageHosts, stageIndexer } from './stages';

const TICK_MS = Number(process.env.CGFENCE_ROLLOUT_TICK_MS ?? 1000);
/** Events after which hosts get something else: the fleet needs a new revision. */
const CHANGES_HOSTS = new Set(['StageStarted', 'RolloutAborted', 'RolloutRolledBack', 'RolloutCompleted']);

const identity = (h: HostRow): HostIdentity => ({ hostId: h.host_id, cohort: h.cohort ?? undefined, labels: h.labels });

interface StageCounts {
  selected: number;
  confirmed: number;
  failed: number;
}

/**
 * Staged rollouts: starting one from a plan (validated against the fleet as it
 * is), operators' commands, and the engine that observes each active
 * rollout's current stage every second and lets the decider move it.
 * Every replica runs the engine; two replicas deciding the same step collide
 * on the stream version and one of them simply loses.
 */
@Injectable()
export class RolloutsService implements OnApplicationBootstrap, OnApplicationShutdown {
  private timer: NodeJS.Timeout | undefined;
  private ticking = false;

  constructor(
    private readonly db: DataSource,
    private readonly commands: CommandHandler,
    private readonly store: EventStore,
    private readonly rollouts: RolloutsReadModel,
    private readonly hosts: HostsReadModel,
    private readonly fleetRm: FleetReadModel,
    private readonly blocklists: BlocklistsReadModel,
    private readonly fleet: FleetService,
    private readonly clock: Clock,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  onApplicationBootstrap(): void {
    this.timer = setInterval(() => void this.tickAll(), TICK_MS);
  }

  onApplicationShutdown(): void {
    if (this.timer) clearInterval(this.timer);
  }

  // ---- commands ----------------------------------------------------------

  /**
   * Every rule a plan must pass before it starts (schema, version, baseline,
   * no other active rollout, no empty stage); throws the first that fails.
   */
  private async checkPlan(input: unknown) {
    const parsed = RolloutPlanSchema.safeParse(input);
    if (!parsed.success) {
      const problems = parsed.error.issues.map((i) => ({ field: i.path.join('.') || '(plan)', reason: i.message }));
      throw new DomainError('rollout.invalid_plan', `invalid rollout plan: ${problems.map((p) => `${p.field}: ${p.reason}`).join('; ')}`, problems);
    }
    const plan = parsed.data;
    const version = await this.blocklists.version(plan.blocklist, plan.version);
    if (!version) {
      if (!(await this.blocklists.get(plan.blocklist))) throw new DomainError('blocklist.not_found', `blocklist ${plan.blocklist} does not exist`);
      throw new DomainError('version.not_found', `blocklist ${plan.blocklist} has no version ${plan.version}`);
    }
    const fleet = await this.fleetRm.get();
    const base = fleet?.baseline;
    if (!base || base.blocklist !== plan.blocklist) {
      throw new DomainError(
        'rollout.state_conflict',
        `a rollout moves the fleet from its baseline to a new version, and ${plan.blocklist} is not the baseline${base ? ` (${base.blocklist} is)` : ''}: assign a first version with cgfence blocklist assign ${plan.blocklist} --version N`,
      );
    }
    if (plan.version <= base.version) {
      throw new DomainError('rollout.invalid_plan', `version: the baseline is ${plan.blocklist} v${base.version}; a rollout goes to a newer version (to go back: cgfence blocklist assign --rollback)`);
    }
    const active = await this.rollouts.list({ blocklist: plan.blocklist, active: true });
    if (active.length > 0) throw new DomainError('rollout.active_exists', `rollout ${active[0]!.id} of ${plan.blocklist} is ${active[0]!.status}; finish or abort it first`);
    const hosts = (await this.hosts.list()).map(identity);
    const counts = hostsPerStage(plan, hosts);
    const empty = counts.map((n, i) => ({ n, i })).filter((x) => x.n === 0);
    if (empty.length > 0) {
      const problems = empty.map(({ i }) => {
        const st = plan.stages[i]!;
        return { field: `stages.${i}`, reason: `stage ${i + 1} (${st.name}) selects no host: ${JSON.stringify(st.select)}${st.select.percent !== undefined && i > 0 ? ' of the hosts earlier stages did not take' : ''}, among ${hosts.length} registered` };
      });
      throw new DomainError('rollout.invalid_plan', `invalid rollout plan: ${problems.map((p) => p.reason).join('; ')}`, problems);
    }
    return { plan, version, base, hosts, counts };
  }

  /**
   * What starting this plan would do, without starting it: the same checks
   * as start, and the hosts each stage selects (the dashboard's plan editor
   * asks this as the user types).
   */
  async preview(input: unknown): Promise<PlanPreview> {
    const parsed = RolloutPlanSchema.safeParse(input);
    const hosts = (await this.hosts.list()).map(identity);
    const stages = parsed.success ? stageHosts(parsed.data, hosts).map((ids, i) => ({ name: parsed.data.stages[i]!.name, hosts: ids })) : [];
    try {
      await this.checkPlan(input);
      return { valid: true, error: null, stages };
    } catch (err) {
      if (!(err instanceof DomainError)) throw err;
      return { valid: false, error: { code: err.code, message: err.message, details: err.details ?? null }, stages };
    }
  }

  async start(input: unknown, actor: Actor): Promise<RolloutView> {
    const { plan, version, base } = await this.checkPlan(input);
    const id = `r-${randomUUID().slice(0, 8)}`;
    const command: RolloutCommand = {
      type: 'StartRollout',
      id,
      blocklist: plan.blocklist,
      version: plan.version,
      contentHash: version.contentHash,
      previous: { version: base.version, contentHash: base.contentHash },
      plan,
      now: this.clock.now(),
    };
    try {
      await this.run(id, command, actor);
    } catch (err) {
      // Two starts at once: the partial unique index lets one in.
      if ((err as { code?: string }).code === '23505') throw new DomainError('rollout.active_exists', `another rollout of ${plan.blocklist} started at the same moment`);
      throw err;
    }
    return this.get(id);
  }

  async pause(id: string, req: RolloutActionRequest, actor: Actor): Promise<RolloutView> {
    await this.run(id, { type: 'PauseRollout', reason: req.reason ?? `paused by ${actor.actor}`, now: this.clock.now() }, actor);
    return this.get(id);
  }

  async resume(id: string, actor: Actor): Promise<RolloutView> {
    await this.run(id, { type: 'ResumeRollout', now: this.clock.now() }, actor);
    return this.get(id);
  }

  async promote(id: string, req: RolloutActionRequest, actor: Actor): Promise<RolloutView> {
    try {
      await this.run(id, { type: 'PromoteStage', ...(req.stage !== undefined ? { stage: req.stage } : {}), now: this.clock.now() }, actor);
    } catch (err) {
      // Two operators promoting at once: the loser's append collides; say what happened.
      if (err instanceof DomainError && err.code === 'stream.conflict') throw new DomainError('rollout.stage_moved', `rollout ${id} moved while promoting: someone promoted it already`);
      throw err;
    }
    return this.get(id);
  }

  async abort(id: string, req: RolloutActionRequest, actor: Actor): Promise<RolloutView> {
    await this.run(id, { type: 'AbortRollout', reason: req.reason ?? `aborted by ${actor.actor}`, now: this.clock.now() }, actor);
    return this.get(id);
  }

  private async run(id: string, command: RolloutCommand, actor: Actor): Promise<void> {
    if (command.type !== 'StartRollout' && !(await this.rollouts.get(id))) throw new DomainError('rollout.not_found', `no rollout ${id}`);
    await this.commands.handle(rolloutStreamOf(id), rolloutDecider, command, actor, undefined, (m, events) => this.afterRollout(m, id, events, actor));
  }

  /** A stage started or the rollout ended: a new fleet revision in the same transaction. */
  private async afterRollout(m: EntityManager, id: string, events: StoredEvent[], actor: Actor): Promise<void> {
    if (!events.some((e) => CHANGES_HOSTS.has(e.type))) return;
    const r = (await this.rollouts.get(id, m))!;
    await this.fleet.recordRollout(
      m,
      {
        rolloutId: id,
        blocklist: r.blocklist,
        status: r.status,
        stage: r.stage,
        ...(r.status === 'completed' ? { completed: { version: r.version, contentHash: r.content_hash } } : {}),
        ...(r.status === 'aborted' || r.status === 'rolled-back' ? { rollbackTo: r.previous.version } : {}),
        now: this.clock.now(),
      },
      actor,
    );
  }

  // ---- the engine ----------------------------------------------------------

  async tickAll(): Promise<void> {
    if (this.ticking) return;
    this.ticking = true;
    try {
      const active = await this.rollouts.list({ active: true });
      if (active.length === 0) return;
      const [hosts, fleet] = await Promise.all([this.hosts.list(), this.fleetRm.get()]);
      for (const r of active) {
        if (r.status !== 'running') continue;
        try {
          const observation = await this.observe(r, hosts, fleet);
          await this.run(r.id, { type: 'Tick', observation, now: this.clock.now() }, { actor: 'cgfence:rollout-engine', correlationId: randomUUID() });
        } catch (err) {
          if (!(err instanceof DomainError && err.code === 'stream.conflict')) this.logger.warn({ err: (err as Error).message, rollout: r.id }, 'rollout step failed; retrying');
        }
      }
    } catch (err) {
      this.logger.warn({ err: (err as Error).message }, 'rollout engine tick failed');
    } finally {
      this.ticking = false;
    }
  }

  private expectedMode(r: RolloutRow, stage: number, h: HostRow, fleet: FleetRow | undefined): 'audit' | 'enforce' {
    const audit = fleet?.auditFleet === true || (h.cohort !== null && (fleet?.auditCohorts.includes(h.cohort) ?? false)) || r.plan.stages[stage]!.mode === 'audit';
    return audit ? 'audit' : 'enforce';
  }

  /** Per stage (started ones): hosts it selects, confirmed, failed. */
  private count(r: RolloutRow, hosts: readonly HostRow[], fleet: FleetRow | undefined): StageCounts[] {
    const stageOf = stageIndexer(r);
    const counts: StageCounts[] = r.plan.stages.map(() => ({ selected: 0, confirmed: 0, failed: 0 }));
    for (const h of hosts) {
      const i = stageOf(identity(h));
      if (i === undefined) continue;
      const c = counts[i]!;
      c.selected++;
      const confirmed = h.applied?.contentHash === r.content_hash && h.mode === this.expectedMode(r, i, h, fleet);
      const since = r.stage_started[String(i)];
      if (confirmed) c.confirmed++;
      else if (h.last_error && since && Date.parse(h.last_error.at) >= Date.parse(since)) c.failed++;
    }
    return counts;
  }

  async observe(r: RolloutRow, hosts: readonly HostRow[], fleet: FleetRow | undefined): Promise<StageObservation> {
    const c = this.count(r, hosts, fleet)[r.stage]!;
    const stage = r.plan.stages[r.stage]!;
    let blockRate: StageObservation['blockRate'] = null;
    if (stage.gates.blockRateFactor !== undefined && r.phase === 'soaking') blockRate = await this.blockRate(r, hosts);
    return { ...c, blockRate };
  }

  /**
   * Blocks per host per minute of the current stage's hosts: since the stage
   * converged, and over a window as long as the soak (at least a minute)
   * before the stage started, under the previous version.
   */
  private async blockRate(r: RolloutRow, hosts: readonly HostRow[]): Promise<{ before: number; during: number } | null> {
    const stageOf = stageIndexer(r);
    const ids = hosts.filter((h) => stageOf(identity(h)) === r.stage).map((h) => h.host_id);
    const started = r.stage_started[String(r.stage)];
    const converged = r.converged_at[String(r.stage)];
    if (ids.length === 0 || !started || !converged) return null;
    const window = Math.max(durationMs(r.plan.stages[r.stage]!.soak), 60_000);
    const now = this.clock.now();
    const before = await this.rate(ids, new Date(Date.parse(started) - window), new Date(started));
    const during = await this.rate(ids, new Date(converged), now);
    return { before, during };
  }

  private async rate(hostIds: readonly string[], from: Date, to: Date): Promise<number> {
    const rows: { host_id: string; first: string; last: string; t0: Date; t1: Date }[] = await this.db.query(
      `select host_id, (array_agg(total order by at))[1] as first, (array_agg(total order by at desc))[1] as last, min(at) as t0, max(at) as t1
       from host_block_samples where host_id = any($1) and at between $2 and $3 group by host_id`,
      [hostIds, from, to],
    );
    const rates = rows
      .filter((x) => x.t1.getTime() > x.t0.getTime())
      .map((x) => {
        const first = Number(x.first);
        const last = Number(x.last);
        const blocks = last >= first ? last - first : last; // a restarted agent counts from zero
        return blocks / ((x.t1.getTime() - x.t0.getTime()) / 60_000);
      });
    return rates.length === 0 ? 0 : rates.reduce((a, b) => a + b, 0) / rates.length;
  }

  // ---- views ------------------------------------------------------------

  async list(filter: { blocklist?: string; active?: boolean } = {}): Promise<RolloutView[]> {
    const [rows, hosts, fleet] = await Promise.all([this.rollouts.list(filter), this.hosts.list(), this.fleetRm.get()]);
    return rows.map((r) => this.view(r, hosts, fleet, null));
  }

  async get(id: string): Promise<RolloutView> {
    const r = await this.rollouts.get(id);
    if (!r) throw new DomainError('rollout.not_found', `no rollout ${id}`);
    const [hosts, fleet] = await Promise.all([this.hosts.list(), this.fleetRm.get()]);
    const rate = r.plan.stages[r.stage]!.gates.blockRateFactor !== undefined && r.phase === 'soaking' ? await this.blockRate(r, hosts) : null;
    return this.view(r, hosts, fleet, rate);
  }

  async history(id: string): Promise<RolloutHistoryEntry[]> {
    if (!(await this.rollouts.get(id))) throw new DomainError('rollout.not_found', `no rollout ${id}`);
    return (await this.store.readStream(rolloutStreamOf(id))).map((e) => ({ at: e.metadata.time, actor: e.metadata.actor, type: e.type, data: e.data }));
  }

  private view(r: RolloutRow, hosts: readonly HostRow[], fleet: FleetRow | undefined, rate: { before: number; during: number } | null): RolloutView {
    const counts = this.count(r, hosts, fleet);
    const terminal = r.status === 'completed' || r.status === 'aborted' || r.status === 'rolled-back';
    const stages: StageView[] = r.plan.stages.map((st, i) => {
      const started = r.stage_started[String(i)] ?? null;
      const converged = r.converged_at[String(i)] ?? null;
      const phase: StagePhase = started === null ? 'pending' : i < r.stage || (terminal && r.status === 'completed') ? 'done' : r.phase;
      const failure = r.gate_failures.filter((g) => g.index === i).map((g) => g.gate);
      const gate = (name: string, passed: boolean, applies = true): GateState => (!applies ? 'n/a' : failure.includes(name) ? 'failed' : passed ? 'passed' : 'pending');
      const c = counts[i]!;
      return {
        index: i,
        name: st.name,
        mode: st.mode,
        phase,
        hosts: { ...c, missing: Math.max(0, c.selected - c.confirmed - c.failed) },
        gates: {
          convergence: gate('convergence', converged !== null),
          failures: gate('failures', phase === 'done'),
          blockRate: gate('block-rate', phase === 'done', st.gates.blockRateFactor !== undefined),
          approval: gate('approval', phase === 'done', st.gates.manualApproval),
        },
        blockRate: i === r.stage && rate ? { ...rate, factor: st.gates.blockRateFactor ?? null } : null,
        startedAt: started,
        convergedAt: converged,
        soakEndsAt: converged ? new Date(Date.parse(converged) + durationMs(st.soak)).toISOString() : null,
      };
    });
    return {
      id: r.id,
      blocklist: r.blocklist,
      version: r.version,
      previousVersion: r.previous.version,
      status: r.status,
      onFailure: r.plan.onFailure,
      currentStage: r.stage,
      stages,
      startedAt: r.started_at.toISOString(),
      startedBy: r.started_by,
      updatedAt: r.updated_at.toISOString(),
      reason: r.reason,
    };
  }
}

