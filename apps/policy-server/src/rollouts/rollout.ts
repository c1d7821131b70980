/**
 * The rollout aggregate (stream 'rollout-<id>'): one blocklist version taken
 * to the fleet stage by stage. A pure decider: the service observes the hosts
 * (how many a stage selects, confirmed, failed, the block rate) and hands the
 * observation in with a Tick; the decider turns it, and operators' commands,
 * into events. Every gate and every refusal is decided here.
 */
import { durationMs, RolloutPlan, thresholdCount } from '@cgfence/proto';
import { DomainError } from '../common/errors';
import type { Decider } from '../event-store/decider';

export const rolloutStreamOf = (id: string): string => `rollout-${id}`;

/** Below this many blocks per host per minute, a rate counts as this (so one block after none is no spike). */
export const BLOCK_RATE_FLOOR = 0.1;

export type Gate = 'convergence' | 'failures' | 'block-rate';

export type RolloutEvent =
  | { type: 'RolloutStarted'; data: { id: string; blocklist: string; version: number; contentHash: string; previous: { version: number; contentHash: string }; plan: RolloutPlan; at: string } }
  | { type: 'StageStarted'; data: { index: number; at: string } }
  | { type: 'StageConverged'; data: { index: number; selected: number; confirmed: number; at: string } }
  | { type: 'StageSoaked'; data: { index: number; at: string } }
  | { type: 'StagePromoted'; data: { index: number; manual: boolean; at: string } }
  | { type: 'GateFailed'; data: { index: number; gate: Gate; detail: string; at: string } }
  | { type: 'RolloutPaused'; data: { reason: string; at: string } }
  | { type: 'RolloutResumed'; data: { at: string } }
  | { type: 'RolloutAborted'; data: { reason: string; at: string } }
  | { type: 'RolloutRolledBack'; data: { reason: string; at: string } }
  | { type: 'RolloutCompleted'; data: { at: string } };

export type ActivePhase = 'converging' | 'soaking' | 'awaiting-approval';

export interface RolloutState {
  status: 'absent' | 'running' | 'paused' | 'completed' | 'aborted' | 'rolled-back';
  id: string;
  blocklist: string;
  version: number;
  contentHash: string;
  previous: { version: number; contentHash: string } | null;
  plan: RolloutPlan | null;
  stage: number;
  phase: ActivePhase;
  /** When the current phase began (a resume restarts it: timeouts count from there). */
  phaseSince: string;
  convergedAt: string | null;
  reason: string | null;
}

export const initialRolloutState: RolloutState = {
  status: 'absent',
  id: '',
  blocklist: '',
  version: 0,
  contentHash: '',
  previous: null,
  plan: null,
  stage: 0,
  phase: 'converging',
  phaseSince: '',
  convergedAt: null,
  reason: null,
};

export function evolveRollout(s: RolloutState, e: RolloutEvent): RolloutState {
  switch (e.type) {
    case 'RolloutStarted':
      return { ...initialRolloutState, status: 'running', id: e.data.id, blocklist: e.data.blocklist, version: e.data.version, contentHash: e.data.contentHash, previous: e.data.previous, plan: e.data.plan, phaseSince: e.data.at };
    case 'StageStarted':
      return { ...s, stage: e.data.index, phase: 'converging', phaseSince: e.data.at, convergedAt: null };
    case 'StageConverged':
      return { ...s, phase: 'soaking', phaseSince: e.data.at, convergedAt: e.data.at };
    case 'StageSoaked':
      return { ...s, phase: 'awaiting-approval', phaseSince: e.data.at };
    case 'StagePromoted':
      return s;
    case 'GateFailed':
      return { ...s, reason: e.data.detail };
    case 'RolloutPaused':
      return { ...s, status: 'paused', reason: e.data.reason };
    case 'RolloutResumed':
      return { ...s, status: 'running', phaseSince: e.data.at, reason: null };
    case 'RolloutAborted':
      return { ...s, status: 'aborted', reason: e.data.reason };
    case 'RolloutRolledBack':
      return { ...s, status: 'rolled-back', reason: e.data.reason };
    case 'RolloutCompleted':
      return { ...s, status: 'completed' };
  }
}

/** What the service saw of the current stage's hosts at `now`. */
export interface StageObservation {
  selected: number;
  confirmed: number;
  failed: number;
  /** Blocks per host per minute: the stage's hosts before the stage, and since it converged; null when not measured. */
  blockRate: { before: number; during: number } | null;
}

export type RolloutCommand =
  | { type: 'StartRollout'; id: string; blocklist: string; version: number; contentHash: string; previous: { version: number; contentHash: string }; plan: RolloutPlan; now: Date }
  | { type: 'Tick'; observation: StageObservation; now: Date }
  | { type: 'PauseRollout'; reason: string; now: Date }
  | { type: 'ResumeRollout'; now: Date }
  | { type: 'PromoteStage'; stage?: number; now: Date }
  | { type: 'AbortRollout'; reason: string; now: Date };

const conflict = (msg: string) => new DomainError('rollout.state_conflict', msg);

function label(s: RolloutState): string {
  const st = s.plan?.stages[s.stage];
  return `stage ${s.stage + 1} (${st?.name ?? '?'})`;
}

/** After a stage: the next one, or the end. */
function advance(s: RolloutState, manual: boolean, at: string): RolloutEvent[] {
  const promoted: RolloutEvent = { type: 'StagePromoted', data: { index: s.stage, manual, at } };
  const last = s.stage + 1 >= (s.plan?.stages.length ?? 0);
  return last ? [promoted, { type: 'RolloutCompleted', data: { at } }] : [promoted, { type: 'StageStarted', data: { index: s.stage + 1, at } }];
}

function failGate(s: RolloutState, gate: Gate, detail: string, at: string): RolloutEvent[] {
  const failed: RolloutEvent = { type: 'GateFailed', data: { index: s.stage, gate, detail, at } };
  const reason = `${label(s)}: ${gate} gate failed: ${detail}`;
  return s.plan?.onFailure === 'rollback'
    ? [failed, { type: 'RolloutRolledBack', data: { reason, at } }]
    : [failed, { type: 'RolloutPaused', data: { reason, at } }];
}

function tick(s: RolloutState, o: StageObservation, now: Date): RolloutEvent[] {
  if (s.status !== 'running' || !s.plan) return [];
  const stage = s.plan.stages[s.stage]!;
  const gates = stage.gates;
  const at = now.toISOString();
  const allowedFailures = thresholdCount(gates.maxFailures, o.selected);
  if (o.failed > allowedFailures) {
    return failGate(s, 'failures', `${o.failed} of ${o.selected} hosts rejected or failed v${s.version} (at most ${allowedFailures} may)`, at);
  }
  if (s.phase === 'converging') {
    const allowedMissing = thresholdCount(gates.maxMissing, o.selected);
    // Tolerated failures are done too: they will not confirm, and the plan allows them.
    if (o.confirmed + o.failed >= o.selected - allowedMissing) {
      const converged: RolloutEvent = { type: 'StageConverged', data: { index: s.stage, selected: o.selected, confirmed: o.confirmed, at } };
      // A stage without soak moves on in the same step.
      return [converged, ...tick(evolveRollout(s, converged), o, now)];
    }
    const timeout = durationMs(gates.convergenceTimeout);
    if (now.getTime() - Date.parse(s.phaseSince) > timeout) {
      return failGate(s, 'convergence', `${o.confirmed} of ${o.selected} hosts confirmed v${s.version} within ${gates.convergenceTimeout} (${allowedMissing} may be missing)`, at);
    }
    return [];
  }
  if (s.phase === 'soaking') {
    if (gates.blockRateFactor !== undefined && o.blockRate) {
      const limit = gates.blockRateFactor * Math.max(o.blockRate.before, BLOCK_RATE_FLOOR);
      if (o.blockRate.during > limit) {
        return failGate(
          s,
          'block-rate',
          `${o.blockRate.during.toFixed(2)} blocks per host per minute during the soak, ${o.blockRate.before.toFixed(2)} before: over ${gates.blockRateFactor}×`,
          at,
        );
      }
    }
    const soakEnds = Date.parse(s.convergedAt ?? s.phaseSince) + durationMs(stage.soak);
    if (now.getTime() < soakEnds) return [];
    const soaked: RolloutEvent = { type: 'StageSoaked', data: { index: s.stage, at } };
    return gates.manualApproval ? [soaked] : [soaked, ...advance(evolveRollout(s, soaked), false, at)];
  }
  return []; // awaiting approval: only `promote` moves it
}

export function decideRollout(c: RolloutCommand, s: RolloutState): RolloutEvent[] {
  const at = c.now.toISOString();
  switch (c.type) {
    case 'StartRollout':
      if (s.status !== 'absent') throw conflict(`rollout ${c.id} exists already`);
      return [
        { type: 'RolloutStarted', data: { id: c.id, blocklist: c.blocklist, version: c.version, contentHash: c.contentHash, previous: c.previous, plan: c.plan, at } },
        { type: 'StageStarted', data: { index: 0, at } },
      ];
    case 'Tick':
      return tick(s, c.observation, c.now);
    case 'PauseRollout':
      if (s.status !== 'running') throw conflict(`rollout ${s.id || '?'} is ${s.status}; only a running rollout can be paused`);
      return [{ type: 'RolloutPaused', data: { reason: c.reason, at } }];
    case 'ResumeRollout':
      if (s.status !== 'paused') throw conflict(`rollout ${s.id || '?'} is ${s.status}; only a paused rollout can be resumed`);
      return [{ type: 'RolloutResumed', data: { at } }];
    case 'PromoteStage':
      if (s.status !== 'running') throw conflict(`rollout ${s.id || '?'} is ${s.status}; only a running rollout can be promoted`);
      if (c.stage !== undefined && c.stage !== s.stage) {
        throw new DomainError('rollout.stage_moved', `rollout ${s.id} is at stage ${s.stage + 1} now, not ${c.stage + 1}: someone promoted it already`);
      }
      if (s.phase === 'converging') throw conflict(`${label(s)} has not converged yet: its hosts must confirm v${s.version} before it can be promoted`);
      return advance(s, true, at);
    case 'AbortRollout':
      if (s.status !== 'running' && s.status !== 'paused') throw conflict(`rollout ${s.id || '?'} is ${s.status}; it can no longer be aborted`);
      return [{ type: 'RolloutAborted', data: { reason: c.reason, at } }];
  }
}

export const rolloutDecider: Decider<RolloutState, RolloutCommand, RolloutEvent> = {
  initialState: initialRolloutState,
  evolve: evolveRollout,
  decide: decideRollout,
};

/** Whether hosts follow the rollout's stages (assignments in force). */
export const isActive = (s: { status: RolloutState['status'] }): boolean => s.status === 'running' || s.status === 'paused';
