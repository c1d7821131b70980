import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { AGENT_ENV, AGENT_V8_FLAGS, isAgentDaemon, TUNING_ENV, tuningPlan, withAgentFlags } from './agent-launch';

describe('agent launch settings (tuningPlan)', () => {
  it('adds the V8 flags and the allocator setting to a plain node', () => {
    const sut = tuningPlan([], {});
    assert.deepEqual(sut, { flags: [...AGENT_V8_FLAGS], env: { MALLOC_ARENA_MAX: '2' } });
  });

  it('never overrides what the operator gave, in execArgv, NODE_OPTIONS or the environment', () => {
    assert.deepEqual(tuningPlan(['--max-semi-space-size=8'], { MALLOC_ARENA_MAX: '4' }), undefined);
    assert.deepEqual(tuningPlan(['--max_semi_space_size=8'], {}), { flags: [], env: { MALLOC_ARENA_MAX: '2' } });
    assert.deepEqual(tuningPlan([], { NODE_OPTIONS: '--enable-source-maps --max-semi-space-size=1', MALLOC_ARENA_MAX: '8' }), undefined);
  });

  it(`does nothing when ${TUNING_ENV} is off, or once applied (no relaunch loop)`, () => {
    assert.equal(tuningPlan([], { [TUNING_ENV]: 'off' }), undefined);
    assert.equal(tuningPlan([], { [TUNING_ENV]: 'applied' }), undefined);
  });

  it('relaunches only the daemon, not the short-lived agent subcommands', () => {
    assert.ok(isAgentDaemon([]));
    assert.ok(isAgentDaemon(['--policy-file', 'x']));
    assert.ok(isAgentDaemon(['start', '--policy-file', 'x']));
    for (const sub of [['status'], ['events', '--json'], ['teardown'], ['--help'], ['-h']]) assert.ok(!isAgentDaemon(sub), sub.join(' '));
  });

  it('gives proxy workers the flags they lack, keeping the ones given', () => {
    assert.deepEqual(withAgentFlags([], {}), [...AGENT_V8_FLAGS]);
    assert.deepEqual(withAgentFlags(['--enable-source-maps'], { [TUNING_ENV]: 'off' }), ['--enable-source-maps']);
    assert.deepEqual(withAgentFlags(['--max-semi-space-size=4', '--enable-source-maps'], {}), ['--max-semi-space-size=4', '--enable-source-maps']);
  });
});

describe('agent launch settings in the systemd units (docker/*.service)', () => {
  const root = join(__dirname, '..', '..', '..', '..', '..');
  for (const unit of ['host-agent.service', 'host-agent-fleet.service']) {
    it(`${unit} starts node with the same flags and environment as agent-launch.ts`, () => {
      const text = readFileSync(join(root, 'docker', unit), 'utf8');
      const exec = /^ExecStart=\/usr\/bin\/node ((?:--\S+ )*)\S+\/cgfence agent/m.exec(text);
      assert.ok(exec, `${unit} has ExecStart=/usr/bin/node ... cgfence agent`);
      assert.deepEqual(exec[1].trim().split(/\s+/).filter(Boolean), [...AGENT_V8_FLAGS]);
      for (const [k, v] of Object.entries(AGENT_ENV)) assert.match(text, new RegExp(`^Environment=${k}=${v}$`, 'm'));
    });
  }
});
