// The agent's memory settings (agent/agent-launch.ts) reach the agent however
// it is started: `node cgfence agent ...` without them is re-executed in
// place (same pid, same stdio) with them, its proxy worker processes get
// them too, and an operator's own values or CGFENCE_AGENT_TUNING=off win.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { AGENT_ENV, AGENT_V8_FLAGS, TUNING_ENV } from '../agent/agent-launch';
import { AgentUnderTest } from './agent-harness';

const cmdline = (pid: number): string[] => readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
const environ = (pid: number): Record<string, string> =>
  Object.fromEntries(readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').filter(Boolean).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
const children = (pid: number): number[] => readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);

describe('agent launch: memory settings wherever the agent starts', () => {
  const started: AgentUnderTest[] = [];
  after(async () => {
    for (const a of started) await a.stop();
  });

  it('a plain `node cgfence agent` runs (same pid, logs intact) with the V8 flags and allocator setting, and so do its proxy workers', async () => {
    const env = { ...process.env };
    delete env[TUNING_ENV];
    delete env.MALLOC_ARENA_MAX;
    const sut = await AgentUnderTest.start({ policy: 'blocked.test\n', env, extraArgs: ['--proxy-workers', '2', '--dns-udp-engine', 'node'] });
    started.push(sut);
    const pid = sut.proc?.pid as number;
    const args = cmdline(pid);
    for (const f of AGENT_V8_FLAGS) assert.ok(args.includes(f), `agent ${pid} runs with ${f}: ${args.join(' ')}`);
    assert.ok(args.includes('agent') && args.includes('--policy-file'), 'with its own arguments');
    for (const [k, v] of Object.entries(AGENT_ENV)) assert.equal(environ(pid)[k], v, k);
    assert.match(sut.log, /agent|policy/i, 'its log still reaches the stdio it was started with');
    const workers = children(pid).filter((c) => cmdline(c).some((a) => a.endsWith('proxy-worker.js')));
    assert.equal(workers.length, 2, `two proxy workers among ${children(pid).map((c) => cmdline(c).join(' ')).join('; ')}`);
    for (const w of workers) {
      for (const f of AGENT_V8_FLAGS) assert.ok(cmdline(w).includes(f), `worker ${w}: ${cmdline(w).join(' ')}`);
      for (const [k, v] of Object.entries(AGENT_ENV)) assert.equal(environ(w)[k], v, `worker ${w} ${k}`);
    }
  });

  it("keeps an operator's own values, and starts untouched with CGFENCE_AGENT_TUNING=off", async () => {
    const own = await AgentUnderTest.start({ policy: 'blocked.test\n', env: { ...process.env, MALLOC_ARENA_MAX: '4' }, nodeArgs: ['--max-semi-space-size=8'], extraArgs: ['--proxy-workers', '1'] });
    started.push(own);
    const ownArgs = cmdline(own.proc?.pid as number);
    assert.ok(ownArgs.includes('--max-semi-space-size=8') && !ownArgs.includes('--max-semi-space-size=2'), ownArgs.join(' '));
    assert.equal(environ(own.proc?.pid as number).MALLOC_ARENA_MAX, '4');

    const off = await AgentUnderTest.start({ policy: 'blocked.test\n', env: { ...process.env, [TUNING_ENV]: 'off', MALLOC_ARENA_MAX: '' }, extraArgs: ['--proxy-workers', '1'] });
    started.push(off);
    const offArgs = cmdline(off.proc?.pid as number);
    assert.ok(!offArgs.some((a) => a.startsWith('--max-semi-space-size')), offArgs.join(' '));
    assert.equal(environ(off.proc?.pid as number).MALLOC_ARENA_MAX, '');
  });
});
