// The README commands as a user runs them: `npm run fleet` stops the whole
// fleet when its pid gets SIGINT or SIGTERM (not only on a terminal's Ctrl-C,
// which signals the process group), and setup's CLI link says what it does
// and never takes the link from another checkout unless asked.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, waitFor } from '@cgfence/devservices';

const ROOT = join(__dirname, '..', '..', '..', '..');

/** Every live descendant of a process, from /proc. */
function descendants(pid: number): number[] {
  const parent = new Map<number, number>();
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      parent.set(Number(e), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {
      /* gone meanwhile */
    }
  }
  const out: number[] = [];
  const walk = (p: number): void => {
    for (const [child, pp] of parent) {
      if (pp !== p) continue;
      out.push(child);
      walk(child);
    }
  };
  walk(pid);
  return out;
}

const alive = (pid: number): boolean => {
  try {
    const state = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^\d+ \(.*\) Z/.test(state);
  } catch {
    return false;
  }
};

describe('README scripts', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cgfence-scripts-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    it(`npm run fleet stops every process of the fleet on ${signal} to its pid`, async () => {
      const ports = { pg: await freePort(), nats: await freePort(), api: await freePort() };
      const args = ['run', '--silent', 'fleet', '--', '--state-dir', join(dir, 'state'), '--pg-port', String(ports.pg), '--nats-port', String(ports.nats), '--api-port', String(ports.api),
        '--agent-upstream', '127.0.0.1:9', '--agent-cgroup', `cgf-scripts-${process.pid}`];
      const npm = spawn('npm', args, { cwd: ROOT, env: { ...process.env, CGFENCE_FLEET_SETUP: '0' }, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      npm.stdout.on('data', (d: Buffer) => (out += d.toString()));
      npm.stderr.on('data', (d: Buffer) => (out += d.toString()));
      const exited = new Promise<void>((resolve) => npm.once('exit', () => resolve()));
      await waitFor('the fleet to come up', () => {
        if (npm.exitCode !== null) throw new Error(`npm run fleet exited early:\n${out}`);
        return out.includes('Ctrl-C stops everything');
      }, 120_000);
      const fleet = descendants(npm.pid!);
      assert.ok(fleet.length >= 4, `the fleet's processes: ${fleet.join(' ')}`);
      process.kill(npm.pid!, signal);
      await exited;
      await waitFor('every fleet process to end', () => fleet.every((p) => !alive(p)), 60_000).catch(() => {
        const left = fleet.filter(alive);
        for (const p of left) process.kill(p, 'SIGKILL');
        assert.fail(`left running after ${signal}: ${left.map((p) => readFileSync(`/proc/${p}/cmdline`, 'utf8').replace(/\0/g, ' ')).join('; ')}`);
      });
    });
  }

  it('setup links the CLI, says so, and leaves a link to another checkout alone unless asked', () => {
    const bin = join(dir, 'bin');
    mkdirSync(bin);
    const link = (...args: string[]) => spawnSync('bash', [join(ROOT, 'scripts', 'link-cli.sh'), ...args], { env: { ...process.env, CGFENCE_BIN_DIR: bin }, encoding: 'utf8' });
    const mine = join(ROOT, 'apps', 'cli', 'bin', 'cgfence');
    const first = link();
    assert.equal(first.status, 0, first.stderr);
    assert.match(first.stdout, new RegExp(`${bin}/cgfence -> ${mine}`));
    assert.equal(readlinkSync(join(bin, 'cgfence')), mine);

    rmSync(join(bin, 'cgfence'));
    symlinkSync('/elsewhere/apps/cli/bin/cgfence', join(bin, 'cgfence'));
    const kept = link();
    assert.equal(kept.status, 0);
    assert.match(kept.stdout, /stays -> \/elsewhere\/apps\/cli\/bin\/cgfence \(another checkout\).*--relink-cli/);
    assert.equal(readlinkSync(join(bin, 'cgfence')), '/elsewhere/apps/cli/bin/cgfence');

    const moved = link('--relink-cli');
    assert.match(moved.stdout, /was -> \/elsewhere/);
    assert.equal(readlinkSync(join(bin, 'cgfence')), mine);

    rmSync(join(bin, 'cgfence'));
    writeFileSync(join(bin, 'cgfence'), '#!/bin/sh\n');
    assert.match(link('--relink-cli').stdout, /not a link; left alone/);
    assert.equal(link('--bogus').status, 2);
  });
});
