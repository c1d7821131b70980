// `cgfence agent` with a bad flag, as a process: exit code 2, a message that
// names the flag, and nothing started (no state directory, no cgroup).
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CGFENCE } from '../e2e/agent-harness';

describe('cgfence agent: configuration errors', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cgfence-config-errors-'));
  const policy = join(dir, 'policy.txt');
  writeFileSync(policy, 'evil.example\n');
  after(() => rmSync(dir, { recursive: true, force: true }));

  const agent = (...args: string[]) => {
    const stateDir = join(dir, `state-${Math.random().toString(36).slice(2)}`);
    const r = spawnSync(process.execPath, [CGFENCE, 'agent', '--state-dir', stateDir, '--upstream', '127.0.0.1:9', ...args], { encoding: 'utf8', timeout: 20_000 });
    return { code: r.status, stderr: r.stderr, started: existsSync(stateDir) };
  };

  for (const [flag, args, message] of [
    ['--metrics-listen', ['--policy-file', policy, '--metrics-listen', 'everywhere'], /--metrics-listen must be HOST:PORT \(\[IPv6\]:PORT\) or none, got "everywhere"/],
    ['--metrics-listen', ['--policy-file', policy, '--metrics-listen', '127.0.0.1:70000'], /--metrics-listen must be HOST:PORT/],
    ['--proxy-workers', ['--policy-file', policy, '--proxy-workers', '0'], /--proxy-workers must be a whole number from 1 to 64/],
    ['--proxy-workers', ['--policy-file', policy, '--proxy-workers', '2'], /--proxy-workers 2 needs --dns-udp-engine node/],
    ['--dns-udp-engine', ['--policy-file', policy, '--dns-udp-engine', 'fast'], /--dns-udp-engine <engine>' argument 'fast' is invalid/],
    ['--server-key', ['--server', 'nats://127.0.0.1:4222'], /--server needs --server-key FILE/],
    ['--policy-file', ['--policy-file', policy, '--server', 'nats://127.0.0.1:4222'], /--policy-file and --server exclude each other/],
    ['--mode', ['--policy-file', policy, '--mode', 'block'], /--mode <mode>' argument 'block' is invalid/],
  ] as const) {
    it(`${flag}: exits 2 and names it (${args.slice(-1)[0]})`, () => {
      const r = agent(...args);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, message);
      assert.equal(r.started, false, 'nothing was started');
    });
  }

  it('starts nothing and still exits 2 with --metrics-listen none misspelled', () => {
    const r = agent('--policy-file', policy, '--metrics-listen', 'None');
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--metrics-listen/);
  });
});
