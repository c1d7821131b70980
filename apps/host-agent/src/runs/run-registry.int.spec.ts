import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import { findCgroup2Mount, isPopulated, removeCgroupTree } from './cgroup-fs';
import { RunRegistry, RunRegistryError } from './run-registry';

function requireCgroup2(): string {
  assert.equal(process.getuid?.(), 0, 'run registry tests need root (they create cgroups)');
  const mount = findCgroup2Mount();
  assert.ok(mount, 'run registry tests need a cgroup2 mount in /proc/mounts');
  return mount;
}

function exited(child: ChildProcess): Promise<void> {
  return new Promise((r) => (child.exitCode !== null || child.signalCode !== null ? r() : child.once('exit', () => r())));
}

async function waitFor(what: string, cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Kills whatever a failed test left in the tree, then removes it. */
async function destroyCgroupTree(path: string): Promise<void> {
  if (!existsSync(path)) return;
  const kill = (dir: string): void => {
    for (const pid of readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean)) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        // already gone
      }
    }
    for (const e of readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) kill(join(dir, e.name));
  };
  kill(path);
  await waitFor(`${path} to empty`, () => !isPopulated(path));
  removeCgroupTree(path);
}

describe(RunRegistry.name, () => {
  let mount: string;
  let deployCgroup: string;
  let stateDir: string;
  const children: ChildProcess[] = [];

  before(() => {
    mount = requireCgroup2();
  });

  beforeEach(() => {
    deployCgroup = join(mount, `cgfence-test-${process.pid}-${randomBytes(4).toString('hex')}`);
    stateDir = mkdtempSync(join(tmpdir(), 'cgfence-runs-'));
  });

  afterEach(async () => {
    for (const c of children.splice(0)) c.kill('SIGKILL');
    await destroyCgroupTree(deployCgroup);
    rmSync(stateDir, { recursive: true, force: true });
  });

  after(() => assert.ok(!existsSync(deployCgroup), 'test cgroup left behind'));

  it('creates a run as a child cgroup whose kernel id leads back to the run and its labels', () => {
    const sut = new RunRegistry({ deployCgroup, stateDir });
    const run = sut.create({ app: 'web', stage: 'canary' });
    assert.equal(run.cgroupPath, join(deployCgroup, `run-${run.runId}`));
    assert.ok(statSync(run.cgroupPath).isDirectory());
    assert.ok(existsSync(join(run.cgroupPath, 'cgroup.procs')), 'the directory is a cgroup');
    assert.equal(run.cgroupId, statSync(run.cgroupPath, { bigint: true }).ino);
    assert.deepEqual(sut.byCgroupId(run.cgroupId)?.labels, { app: 'web', stage: 'canary' });
    assert.equal(sut.byCgroupId(run.cgroupId + 1n), undefined);
  });

  it('remembers its runs across a restart', () => {
    const first = new RunRegistry({ deployCgroup, stateDir });
    const a = first.create({ app: 'web' });
    const b = first.create({ app: 'db' });
    first.finish(b.runId, 3);
    const sut = new RunRegistry({ deployCgroup, stateDir });
    assert.deepEqual(sut.byCgroupId(a.cgroupId), a);
    assert.equal(sut.get(b.runId)?.exitCode, 3);
    assert.equal(sut.get(b.runId)?.state, 'finished');
  });

  it('records whom a run runs as, across a restart', () => {
    const first = new RunRegistry({ deployCgroup, stateDir });
    const run = first.create({ app: 'web' }, './deploy.sh', { uid: 1001, user: 'deployer' });
    const sut = new RunRegistry({ deployCgroup, stateDir });
    assert.deepEqual([sut.get(run.runId)?.uid, sut.get(run.runId)?.user], [1001, 'deployer']);
  });

  it('puts a process in the run and removes the cgroup only once the run is finished and empty', async () => {
    const sut = new RunRegistry({ deployCgroup, stateDir });
    const run = sut.create({ app: 'web' });
    const child = spawn('sleep', ['60'], { stdio: 'ignore' });
    children.push(child);
    assert.ok(child.pid);
    sut.addProcess(run.runId, child.pid);
    const cgroupLine = readFileSync(`/proc/${child.pid}/cgroup`, 'utf8').split('\n').find((l) => l.startsWith('0::'));
    assert.equal(cgroupLine, `0::/${relative(mount, run.cgroupPath)}`);

    assert.deepEqual(sut.reap(), { removed: [], busy: [], abandoned: [] }, 'a running run is left alone');
    sut.finish(run.runId, 0);
    assert.deepEqual(sut.reap(), { removed: [], busy: [run.runId], abandoned: [] }, 'a finished run with a live process stays');
    assert.ok(existsSync(run.cgroupPath));

    child.kill('SIGKILL');
    await exited(child);
    await waitFor('the cgroup to report empty', () => !isPopulated(run.cgroupPath));
    assert.deepEqual(sut.reap(), { removed: [run.runId], busy: [], abandoned: [] });
    assert.ok(!existsSync(run.cgroupPath));
    assert.equal(sut.get(run.runId)?.state, 'reaped');
    assert.equal(sut.byCgroupId(run.cgroupId)?.runId, run.runId, 'late events still find the run');
  });

  it('removes child cgroups a run made inside its own', () => {
    const sut = new RunRegistry({ deployCgroup, stateDir });
    const run = sut.create();
    mkdirSync(join(run.cgroupPath, 'inner', 'deeper'), { recursive: true });
    sut.finish(run.runId, 0);
    assert.deepEqual(sut.reap().removed, [run.runId]);
    assert.ok(!existsSync(run.cgroupPath));
  });

  it('ends runs that were never finished once their cgroup has stayed empty long enough', () => {
    let now = Date.UTC(2026, 3, 16, 10, 0, 0);
    const sut = new RunRegistry({ deployCgroup, stateDir, now: () => new Date(now) });
    const run = sut.create();
    assert.deepEqual(sut.reap({ abandonedAfterMs: 60_000 }).removed, []);
    now += 61_000;
    const reaped = sut.reap({ abandonedAfterMs: 60_000 });
    assert.deepEqual(reaped.removed, [run.runId]);
    assert.deepEqual(reaped.abandoned.map((r) => [r.runId, r.state, r.exitCode]), [[run.runId, 'finished', null]], 'its summary is due');
    assert.equal(sut.get(run.runId)?.exitCode, null);
  });

  it('adopts run cgroups it has no record of, so they are reaped too', () => {
    mkdirSync(deployCgroup);
    const orphan = join(deployCgroup, 'run-left-by-a-crash');
    mkdirSync(orphan);
    const sut = new RunRegistry({ deployCgroup, stateDir });
    assert.equal(sut.get('left-by-a-crash')?.state, 'finished');
    assert.deepEqual(sut.reap().removed, ['left-by-a-crash']);
    assert.ok(!existsSync(orphan));
  });

  it('refuses bad labels and double finishes with a code', () => {
    const sut = new RunRegistry({ deployCgroup, stateDir });
    assert.throws(() => sut.create({ 'bad key': 'x' }), (e: unknown) => e instanceof RunRegistryError && e.code === 'INVALID_LABELS');
    assert.throws(() => sut.create({ k: 'line\nbreak' }), (e: unknown) => e instanceof RunRegistryError && e.code === 'INVALID_LABELS');
    const run = sut.create();
    sut.finish(run.runId, 1);
    assert.throws(() => sut.finish(run.runId, 0), (e: unknown) => e instanceof RunRegistryError && e.code === 'RUN_NOT_RUNNING');
    assert.throws(() => sut.finish('nope', 0), (e: unknown) => e instanceof RunRegistryError && e.code === 'RUN_NOT_FOUND');
    assert.deepEqual(readdirSync(deployCgroup).filter((n) => n.startsWith('run-')), [`run-${run.runId}`], 'no cgroup for a refused run');
  });
});
