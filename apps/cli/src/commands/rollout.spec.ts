import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import type { RolloutView, StageView } from '@cgfence/proto';
import { CliError } from '../errors';
import { errorCode } from './rollout';
import { parsePlan } from './rollout-plan';
import {
  barPayload,
  fmtDuration,
  gatesCell,
  historyDetail,
  historyRows,
  LIST_HEADERS,
  listRow,
  nextSteps,
  planRows,
  STAGE_HEADERS,
  stageLine,
  stageRows,
  summaryLines,
  WATCH_EXIT,
  watchOutcome,
} from './rollout-render';

/** The repository root, from the compiled test (apps/cli/dist/src/commands). */
function repoRoot(): string {
  let dir = __dirname;
  while (!existsSync(join(dir, 'docs', 'examples'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error('repository root not found');
    dir = up;
  }
  return dir;
}

const YAML_PLAN = `
blocklist: deploy-safety
version: 4
stages:
  - name: canary
    select: { labels: { cohort: canary } }
    mode: audit
    soak: 10m
    gates: { blockRateFactor: 2 }
  - name: rest
    select: { percent: 100 }
    gates: { maxMissing: 5%, manualApproval: true }
`;

const problemsOf = (text: string): string[] => {
  const r = parsePlan(text);
  assert.equal(r.ok, false, 'the plan should be refused');
  return r.ok ? [] : r.problems;
};

describe('parsePlan', () => {
  it('reads a YAML plan: the file as written to send, and the plan with defaults to show', () => {
    const r = parsePlan(YAML_PLAN);
    assert.ok(r.ok, r.ok ? '' : r.problems.join('\n'));
    assert.equal(r.input.blocklist, 'deploy-safety');
    assert.equal(r.input.onFailure, undefined, 'the input stays as written: the server applies the defaults');
    assert.equal(r.plan.onFailure, 'pause');
    assert.equal(r.plan.stages[1]?.mode, 'enforce');
    assert.equal(r.plan.stages[1]?.gates.maxMissing, '5%');
    assert.equal(r.plan.stages[1]?.gates.convergenceTimeout, '5m');
  });

  it('reads the same plan as JSON', () => {
    const yaml = parsePlan(YAML_PLAN);
    assert.ok(yaml.ok);
    const r = parsePlan(`  ${JSON.stringify(yaml.input, null, 2)}\n`);
    assert.ok(r.ok, r.ok ? '' : r.problems.join('\n'));
    assert.deepEqual(r.plan, yaml.plan);
  });

  it('accepts the example plan in docs/examples', () => {
    const r = parsePlan(readFileSync(join(repoRoot(), 'docs/examples/rollout-plan.yaml'), 'utf8'));
    assert.ok(r.ok, r.ok ? '' : r.problems.join('\n'));
    assert.deepEqual(
      r.plan.stages.map((s) => [s.name, s.mode, s.gates.manualApproval]),
      [
        ['canary-audit', 'audit', false],
        ['canary-enforce', 'enforce', false],
        ['quarter', 'enforce', true],
        ['everyone', 'enforce', false],
      ],
    );
    assert.equal(r.plan.stages[0]?.gates.blockRateFactor, 2);
    assert.equal(r.plan.stages[0]?.soak, '30m');
    assert.deepEqual(r.plan.stages[0]?.select.labels, { cohort: 'canary' });
  });

  it('names the field and the stage of every problem', () => {
    const problems = problemsOf(`
blocklist: deploy-safety
version: "4"
colour: blue
stages:
  - name: canary
    select: {}
    soak: 10 minutes
  - name: rest
    select: { percent: 100, labels: { tier: 1 } }
    mode: strict
    gates: { maxFailures: true, maxFailrues: 2 }
`);
    assert.deepEqual(problems.sort(), [
      'colour: unknown field',
      'stages.0.select: select needs labels and/or percent (stage 1 "canary")',
      'stages.0.soak: a duration like 30s, 10m or 1h (stage 1 "canary")',
      'stages.1.gates.maxFailrues: unknown field (stage 2 "rest")',
      'stages.1.gates.maxFailures: expected number or string, received boolean (stage 2 "rest")',
      'stages.1.mode: expected one of "audit"|"enforce" (stage 2 "rest")',
      'stages.1.select.labels.tier: expected string, received number (stage 2 "rest")',
      'version: expected number, received string',
    ]);
  });

  it('names a stage by number when it has no name', () => {
    assert.deepEqual(problemsOf('{"blocklist": "b", "version": 1, "stages": [{"select": {"percent": 10}}]}'), ['stages.0.name: expected string, received undefined (stage 1)']);
  });

  it('refuses a plan without stages, and a file that is no plan', () => {
    assert.deepEqual(problemsOf('blocklist: b\nversion: 1\nstages: []\n'), ['stages: a plan needs at least one stage']);
    assert.deepEqual(problemsOf('- a\n- b\n'), ['(plan): expected object, received array']);
    assert.deepEqual(problemsOf('  \n'), ['the plan is empty']);
  });

  it('reports YAML syntax errors with their line', () => {
    const [problem] = problemsOf('blocklist: b\nversion: 1\nstages:\n  - name: [x\n');
    assert.match(problem ?? '', /^not valid YAML: .*line \d+, column \d+/);
    assert.match(problemsOf('blocklist: a\nblocklist: b\n')[0] ?? '', /^not valid YAML: Map keys must be unique/);
  });

  it('reports JSON syntax errors with their line and column', () => {
    const [problem] = problemsOf('{\n  "blocklist": "b",\n  "version": 1,\n}\n');
    assert.match(problem ?? '', /^not valid JSON: .*\(line 4, column 1\)$/);
  });
});

const stage = (index: number, name: string, over: Partial<StageView> = {}): StageView => ({
  index,
  name,
  mode: 'enforce',
  phase: 'pending',
  hosts: { selected: 0, confirmed: 0, failed: 0, missing: 0 },
  gates: { convergence: 'pending', failures: 'pending', blockRate: 'n/a', approval: 'n/a' },
  blockRate: null,
  startedAt: null,
  convergedAt: null,
  soakEndsAt: null,
  ...over,
});

const NOW = new Date('2030-01-01T12:00:00.000Z');

function view(over: Partial<RolloutView> = {}): RolloutView {
  return {
    id: 'r-7f3a',
    blocklist: 'deploy-safety',
    version: 4,
    previousVersion: 3,
    status: 'running',
    onFailure: 'pause',
    currentStage: 1,
    stages: [
      stage(0, 'canary', {
        mode: 'audit',
        phase: 'done',
        hosts: { selected: 3, confirmed: 3, failed: 0, missing: 0 },
        gates: { convergence: 'passed', failures: 'passed', blockRate: 'passed', approval: 'n/a' },
        blockRate: { before: 0.2, during: 0.25, factor: 2 },
        soakEndsAt: '2030-01-01T11:40:00.000Z',
      }),
      stage(1, 'quarter', {
        phase: 'soaking',
        hosts: { selected: 10, confirmed: 9, failed: 1, missing: 0 },
        gates: { convergence: 'passed', failures: 'passed', blockRate: 'pending', approval: 'pending' },
        soakEndsAt: '2030-01-01T12:04:12.000Z',
      }),
      stage(2, 'everyone'),
    ],
    startedAt: '2030-01-01T11:00:00.123Z',
    startedBy: 'alice',
    updatedAt: '2030-01-01T11:59:58.000Z',
    reason: null,
    ...over,
  };
}

describe('rollout rendering', () => {
  it('lists a rollout as one row', () => {
    assert.equal(LIST_HEADERS.length, listRow(view()).length);
    assert.deepEqual(listRow(view()), ['r-7f3a', 'deploy-safety', 'v3→v4', 'running', '2/3 quarter', '2030-01-01T11:00:00Z', 'alice']);
    assert.equal(listRow(view({ previousVersion: null }))[2], 'v4');
  });

  it('shows each stage: mode, phase, hosts, gates that apply, and the soak countdown', () => {
    const rows = stageRows(view(), NOW);
    assert.ok(rows.every((r) => r.length === STAGE_HEADERS.length));
    assert.deepEqual(rows, [
      ['1 canary', 'audit', 'done', '3/3', '0', '0', 'conv=passed fail=passed rate=passed(0.20→0.25/min)', '2030-01-01T11:40:00Z'],
      ['2 quarter', 'enforce', 'soaking', '9/10', '1', '0', 'conv=passed fail=passed rate=pending appr=pending', '2030-01-01T12:04:12Z (in 4m12s)'],
      ['3 everyone', 'enforce', 'pending', '-', '-', '-', 'conv=pending fail=pending', '-'],
    ]);
  });

  it('marks the stage a paused rollout stopped at, and gives the reason and what to do', () => {
    const v = view({ status: 'paused', reason: 'stage 2 (quarter): block-rate gate failed: 1.20 blocks per host per minute' });
    assert.equal(stageRows(v, NOW)[1]?.[2], 'soaking (paused)');
    const lines = summaryLines(v);
    assert.deepEqual(lines, [
      'rollout:    r-7f3a',
      'blocklist:  deploy-safety v4 (from v3)',
      'status:     paused, stage 2/3 quarter; on a failed gate: pause',
      'started:    2030-01-01T11:00:00Z by alice; updated 2030-01-01T11:59:58Z',
      'reason:     stage 2 (quarter): block-rate gate failed: 1.20 blocks per host per minute',
    ]);
    assert.deepEqual(nextSteps(v), ['resume: cgfence rollout resume r-7f3a', 'abort:  cgfence rollout abort r-7f3a']);
  });

  it('says a completed rollout is done, without a reason line', () => {
    const lines = summaryLines(view({ status: 'completed', currentStage: 2, reason: null }));
    assert.equal(lines[2], 'status:     completed, all 3 stages done; on a failed gate: pause');
    assert.equal(lines.length, 4);
  });

  it('tells how to promote a stage that awaits approval', () => {
    const v = view();
    v.stages[1] = { ...v.stages[1]!, phase: 'awaiting-approval' };
    assert.deepEqual(nextSteps(v), ['stage 2/3 quarter awaits approval: cgfence rollout promote r-7f3a']);
    assert.deepEqual(nextSteps(view()), []);
  });

  it('shows history events with their key data, stages 1-based', () => {
    const rows = historyRows([
      { at: '2030-01-01T11:00:00.000Z', actor: 'alice', type: 'RolloutStarted', data: { id: 'r-7f3a', blocklist: 'deploy-safety', version: 4, contentHash: 'sha256:x', previous: { version: 3, contentHash: 'sha256:y' }, plan: { onFailure: 'pause', stages: [{}, {}, {}] }, at: 'x' } },
      { at: '2030-01-01T11:05:00.000Z', actor: 'system', type: 'StageConverged', data: { index: 0, selected: 3, confirmed: 3, at: 'x' } },
      { at: '2030-01-01T11:50:00.000Z', actor: 'system', type: 'GateFailed', data: { index: 1, gate: 'block-rate', detail: '1.20 blocks per host per minute', at: 'x' } },
      { at: '2030-01-01T11:51:00.000Z', actor: 'bob', type: 'RolloutPaused', data: { reason: 'looking into it', at: 'x' } },
    ]);
    assert.deepEqual(rows, [
      ['2030-01-01T11:00:00Z', 'alice', 'RolloutStarted', 'blocklist=deploy-safety version=4 previous=v3 stages=3 onFailure=pause'],
      ['2030-01-01T11:05:00Z', 'system', 'StageConverged', 'stage=1 selected=3 confirmed=3'],
      ['2030-01-01T11:50:00Z', 'system', 'GateFailed', 'stage=2 gate=block-rate — 1.20 blocks per host per minute'],
      ['2030-01-01T11:51:00Z', 'bob', 'RolloutPaused', 'looking into it'],
    ]);
    assert.equal(historyDetail(null), '');
    assert.equal(historyDetail({ tags: ['a'] }), 'tags=["a"]');
  });

  it('describes the stages of a plan with its defaults', () => {
    const r = parsePlan(YAML_PLAN);
    assert.ok(r.ok);
    assert.deepEqual(planRows(r.plan), [
      ['1 canary', 'audit', 'cohort=canary', '10m', 'converge in 5m, block rate ≤2×'],
      ['2 rest', 'enforce', '100%', '-', 'converge in 5m, ≤5% missing, manual approval'],
    ]);
  });

  it('watch lines: one per stage, the countdown only when asked for', () => {
    const v = view();
    assert.equal(
      stageLine(v, v.stages[1]!, NOW),
      'stage 2/3 quarter [enforce]: soaking, 9/10 hosts confirmed, 1 failed, 0 missing; gates conv=passed fail=passed rate=pending appr=pending; soak ends 2030-01-01T12:04:12Z (4m12s left)',
    );
    assert.equal(stageLine(v, v.stages[1]!), stageLine(v, v.stages[1]!, new Date('2030-01-01T12:00:30Z')).replace(' (3m42s left)', ''));
    assert.equal(stageLine(v, v.stages[2]!), 'stage 3/3 everyone [enforce]: pending');
  });

  it('bars: hosts confirmed of selected, phase, gates, failures and soak left', () => {
    const v = view();
    assert.deepEqual(barPayload(v, v.stages[1]!, NOW), {
      label: '2/3 quarter',
      value: 9,
      total: 10,
      detail: 'soaking  conv=passed fail=passed rate=pending appr=pending  1 failed  soak 4m12s left',
    });
    assert.deepEqual(barPayload(v, v.stages[2]!, NOW), { label: '3/3 everyone', value: 0, total: 0, detail: 'pending' });
  });

  it('formats durations', () => {
    assert.deepEqual([fmtDuration(0), fmtDuration(45_000), fmtDuration(252_000), fmtDuration(3_900_000)], ['0s', '45s', '4m12s', '1h05m']);
  });

  it('gates: a dash when none apply', () => {
    assert.equal(gatesCell(stage(0, 'x', { gates: { convergence: 'n/a', failures: 'n/a', blockRate: 'n/a', approval: 'n/a' } })), '-');
  });
});

describe('watchOutcome', () => {
  it('goes on while the rollout runs', () => {
    assert.equal(watchOutcome(view(), false), null);
  });

  it('maps how a rollout ended to the exit code', () => {
    const code = (over: Partial<RolloutView>): number | undefined => watchOutcome(view(over), false)?.exitCode;
    assert.equal(code({ status: 'completed' }), 0);
    assert.equal(code({ status: 'rolled-back', reason: 'gate failed' }), 1);
    assert.equal(code({ status: 'aborted', reason: 'wrong version' }), 3);
    assert.equal(code({ status: 'paused', reason: 'gate failed' }), 4);
    assert.deepEqual(WATCH_EXIT, { completed: 0, 'rolled-back': 1, aborted: 3, paused: 4 });
  });

  it('on a pause: the reason, and how to resume or abort', () => {
    const end = watchOutcome(view({ status: 'paused', reason: 'stage 2 (quarter): convergence gate failed: 7 of 10 hosts confirmed v4 within 5m' }), false);
    assert.deepEqual(end, {
      exitCode: 4,
      lines: [
        'rollout r-7f3a paused at stage 2/3 quarter: stage 2 (quarter): convergence gate failed: 7 of 10 hosts confirmed v4 within 5m',
        'resume: cgfence rollout resume r-7f3a',
        'abort:  cgfence rollout abort r-7f3a',
      ],
    });
  });

  it('--until-done watches through a pause, not through the end', () => {
    assert.equal(watchOutcome(view({ status: 'paused' }), true), null);
    assert.equal(watchOutcome(view({ status: 'aborted' }), true)?.exitCode, 3);
    assert.equal(watchOutcome(view({ status: 'completed' }), true)?.exitCode, 0);
  });

  it('says what a rollback went back to', () => {
    assert.deepEqual(watchOutcome(view({ status: 'rolled-back', reason: 'failures gate failed' }), false)?.lines, [
      'rollout r-7f3a rolled back to v3 at stage 2/3 quarter: failures gate failed',
    ]);
  });
});

describe(errorCode.name, () => {
  it("reads the server's error code off a client error", () => {
    assert.equal(errorCode(new CliError('rollout r is at stage 3 now, not 2: someone promoted it already [rollout.stage_moved]')), 'rollout.stage_moved');
    assert.equal(errorCode(new CliError('no token [auth.missing_token] — pass --token or set CGFENCE_TOKEN')), 'auth.missing_token');
    assert.equal(errorCode(new CliError('cannot reach the policy server')), undefined);
    assert.equal(errorCode(new Error('x [rollout.stage_moved]')), undefined);
  });
});
