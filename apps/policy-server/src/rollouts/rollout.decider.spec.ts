// Given events, when a command, then events (or a refusal): every transition
// of the rollout decider.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { RolloutPlan, RolloutPlanSchema } from '@cgfence/proto';
import { DomainError } from '../common/errors';
import { decideRollout, initialRolloutState, evolveRollout, RolloutCommand, RolloutEvent, RolloutState, StageObservation } from './rollout';

const T0 = Date.parse('2026-11-21T12:00:00Z');
const at = (s: number) => new Date(T0 + s * 1000);
const iso = (s: number) => at(s).toISOString();

const plan = (over: Partial<Record<string, unknown>> = {}): RolloutPlan =>
  RolloutPlanSchema.parse({
    blocklist: 'core',
    version: 2,
    stages: [
      { name: 'canary', select: { labels: { cohort: 'canary' } }, mode: 'audit', soak: '60s', gates: { convergenceTimeout: '30s', blockRateFactor: 2 } },
      { name: 'quarter', select: { percent: 25 }, soak: 0, gates: { manualApproval: true, maxFailures: '10%' } },
      { name: 'all', select: { percent: 100 }, soak: '10s', gates: { maxMissing: 1 } },
    ],
    ...over,
  });

const started = (p = plan()): RolloutEvent[] => [
  { type: 'RolloutStarted', data: { id: 'r1', blocklist: 'core', version: 2, contentHash: 'sha256:b', previous: { version: 1, contentHash: 'sha256:a' }, plan: p, at: iso(0) } },
  { type: 'StageStarted', data: { index: 0, at: iso(0) } },
];

const fold = (events: RolloutEvent[]): RolloutState => events.reduce(evolveRollout, initialRolloutState);
const when = (given: RolloutEvent[], c: RolloutCommand) => decideRollout(c, fold(given));
const types = (es: RolloutEvent[]) => es.map((e) => e.type);
const obs = (o: Partial<StageObservation>): StageObservation => ({ selected: 4, confirmed: 0, failed: 0, blockRate: null, ...o });
const tick = (s: number, o: Partial<StageObservation>): RolloutCommand => ({ type: 'Tick', observation: obs(o), now: at(s) });
const refused = (fn: () => unknown, code: string, re: RegExp) =>
  assert.throws(fn, (e: unknown) => e instanceof DomainError && e.code === code && re.test(e.message));

describe('rollout decider', () => {
  it('starts with the first stage', () => {
    const es = decideRollout({ type: 'StartRollout', id: 'r1', blocklist: 'core', version: 2, contentHash: 'sha256:b', previous: { version: 1, contentHash: 'sha256:a' }, plan: plan(), now: at(0) }, initialRolloutState);
    assert.deepEqual(types(es), ['RolloutStarted', 'StageStarted']);
    refused(() => when(started(), { type: 'StartRollout', id: 'r1', blocklist: 'core', version: 2, contentHash: 'x', previous: { version: 1, contentHash: 'y' }, plan: plan(), now: at(1) }), 'rollout.state_conflict', /exists/);
  });

  it('waits while hosts converge, then converges when enough confirmed', () => {
    assert.deepEqual(when(started(), tick(10, { confirmed: 3 })), []);
    const es = when(started(), tick(10, { confirmed: 4 }));
    assert.deepEqual(types(es), ['StageConverged']);
  });

  it('fails convergence after the timeout and pauses (the default)', () => {
    const es = when(started(), tick(31, { confirmed: 3 }));
    assert.deepEqual(types(es), ['GateFailed', 'RolloutPaused']);
    assert.equal((es[0] as Extract<RolloutEvent, { type: 'GateFailed' }>).data.gate, 'convergence');
    assert.match((es[1] as Extract<RolloutEvent, { type: 'RolloutPaused' }>).data.reason, /3 of 4 hosts confirmed v2 within 30s/);
  });

  it('rolls back instead when the plan says so', () => {
    assert.deepEqual(types(when(started(plan({ onFailure: 'rollback' })), tick(31, { confirmed: 0 }))), ['GateFailed', 'RolloutRolledBack']);
  });

  it('fails on rejections beyond the allowed count, in any phase', () => {
    const es = when(started(), tick(5, { failed: 1 }));
    assert.deepEqual(types(es), ['GateFailed', 'RolloutPaused']);
    assert.match((es[0] as Extract<RolloutEvent, { type: 'GateFailed' }>).data.detail, /1 of 4 hosts rejected/);
  });

  const converged = (): RolloutEvent[] => [...started(), { type: 'StageConverged', data: { index: 0, selected: 4, confirmed: 4, at: iso(10) } }];

  it('soaks, then promotes by itself and starts the next stage', () => {
    assert.deepEqual(when(converged(), tick(69, { confirmed: 4 })), []);
    assert.deepEqual(types(when(converged(), tick(70, { confirmed: 4 }))), ['StageSoaked', 'StagePromoted', 'StageStarted']);
  });

  it('fails the block-rate gate when blocks grow beyond the factor during the soak', () => {
    assert.deepEqual(when(converged(), tick(30, { confirmed: 4, blockRate: { before: 1, during: 1.9 } })), []);
    const es = when(converged(), tick(30, { confirmed: 4, blockRate: { before: 1, during: 2.5 } }));
    assert.deepEqual(types(es), ['GateFailed', 'RolloutPaused']);
    assert.equal((es[0] as Extract<RolloutEvent, { type: 'GateFailed' }>).data.gate, 'block-rate');
    // From nothing, a trickle is no spike (floor), a flood is.
    assert.deepEqual(when(converged(), tick(30, { confirmed: 4, blockRate: { before: 0, during: 0.15 } })), []);
    assert.deepEqual(types(when(converged(), tick(30, { confirmed: 4, blockRate: { before: 0, during: 5 } }))), ['GateFailed', 'RolloutPaused']);
  });

  const atStage2 = (): RolloutEvent[] => [
    ...converged(),
    { type: 'StageSoaked', data: { index: 0, at: iso(70) } },
    { type: 'StagePromoted', data: { index: 0, manual: false, at: iso(70) } },
    { type: 'StageStarted', data: { index: 1, at: iso(70) } },
  ];

  it('a stage with manual approval waits after its soak until promoted', () => {
    const es = when(atStage2(), tick(75, { selected: 10, confirmed: 10 }));
    assert.deepEqual(types(es), ['StageConverged', 'StageSoaked']);
    const waiting = [...atStage2(), ...es];
    assert.deepEqual(when(waiting, tick(500, { selected: 10, confirmed: 10 })), []);
    assert.deepEqual(types(when(waiting, { type: 'PromoteStage', stage: 1, now: at(501) })), ['StagePromoted', 'StageStarted']);
  });

  it('allows failures up to a share of the stage', () => {
    assert.deepEqual(types(when(atStage2(), tick(75, { selected: 10, confirmed: 9, failed: 1 }))), ['StageConverged', 'StageSoaked']);
    assert.deepEqual(types(when(atStage2(), tick(75, { selected: 10, confirmed: 8, failed: 2 }))), ['GateFailed', 'RolloutPaused']);
  });

  it('promote skips the rest of a soak; the last stage completes the rollout', () => {
    assert.deepEqual(types(when(converged(), { type: 'PromoteStage', now: at(20) })), ['StagePromoted', 'StageStarted']);
    const last: RolloutEvent[] = [
      ...atStage2(),
      { type: 'StagePromoted', data: { index: 1, manual: true, at: iso(80) } },
      { type: 'StageStarted', data: { index: 2, at: iso(80) } },
    ];
    // maxMissing 1: three of four is enough.
    assert.deepEqual(types(when(last, tick(90, { confirmed: 3 }))), ['StageConverged']);
    const soaking = [...last, { type: 'StageConverged', data: { index: 2, selected: 4, confirmed: 3, at: iso(90) } } as RolloutEvent];
    assert.deepEqual(types(when(soaking, tick(100, { confirmed: 4 }))), ['StageSoaked', 'StagePromoted', 'RolloutCompleted']);
  });

  it('refuses to promote a stage that has not converged, or one that moved on', () => {
    refused(() => when(started(), { type: 'PromoteStage', now: at(5) }), 'rollout.state_conflict', /not converged/);
    refused(() => when(converged(), { type: 'PromoteStage', stage: 1, now: at(20) }), 'rollout.stage_moved', /promoted it already/);
  });

  it('pauses and resumes; a paused rollout does not move and restarts its timeout on resume', () => {
    const paused = [...started(), ...when(started(), { type: 'PauseRollout', reason: 'looking', now: at(5) })];
    assert.equal(fold(paused).status, 'paused');
    assert.deepEqual(when(paused, tick(100, { confirmed: 0 })), []);
    refused(() => when(paused, { type: 'PauseRollout', reason: 'again', now: at(6) }), 'rollout.state_conflict', /only a running/);
    refused(() => when(paused, { type: 'PromoteStage', now: at(6) }), 'rollout.state_conflict', /only a running/);
    const resumed = [...paused, ...when(paused, { type: 'ResumeRollout', now: at(200) })];
    assert.deepEqual(when(resumed, tick(220, { confirmed: 0 })), [], 'the convergence timeout counts from the resume');
    assert.deepEqual(types(when(resumed, tick(231, { confirmed: 0 }))), ['GateFailed', 'RolloutPaused']);
    refused(() => when(started(), { type: 'ResumeRollout', now: at(6) }), 'rollout.state_conflict', /only a paused/);
  });

  it('aborts from running or paused, and nothing moves a finished rollout', () => {
    assert.deepEqual(types(when(started(), { type: 'AbortRollout', reason: 'no', now: at(5) })), ['RolloutAborted']);
    const aborted = [...started(), ...when(started(), { type: 'AbortRollout', reason: 'no', now: at(5) })];
    refused(() => when(aborted, { type: 'AbortRollout', reason: 'again', now: at(6) }), 'rollout.state_conflict', /no longer/);
    refused(() => when(aborted, { type: 'ResumeRollout', now: at(6) }), 'rollout.state_conflict', /aborted/);
    assert.deepEqual(when(aborted, tick(100, { confirmed: 4 })), []);
  });
});
