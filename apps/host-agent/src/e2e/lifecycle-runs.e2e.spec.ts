import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AgentUnderTest, CGFENCE, exec, isAddressRecord } from './agent-harness';

/** The cgroup v2 path of a process ('0::' line of /proc/<pid>/cgroup). */
function cgroupOf(pid: number): string {
  const line = readFileSync(`/proc/${pid}/cgroup`, 'utf8')
    .split('\n')
    .find((l) => l.startsWith('0::'));
  if (!line) throw new Error(`/proc/${pid}/cgroup has no cgroup v2 ('0::') line`);
  return line.slice(3);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('cgfence run without an agent', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'cgfence-noagent-e2e-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('exits 125, says it refuses to run unprotected, and does not run the command', async () => {
    const marker = join(dir, 'ran');
    const r = await exec(process.execPath, [CGFENCE, 'run', '--state-dir', join(dir, 'state'), '--', 'sh', '-c', `touch ${marker}`]);
    assert.equal(r.code, 125, r.stderr);
    assert.match(r.stderr, /no cgfence agent is running/);
    assert.match(r.stderr, /Refusing to run .*unprotected/);
    assert.equal(existsSync(marker), false, 'the command must not have run');
  });
});

describe('cgfence run', () => {
  let sut: AgentUnderTest;
  const leftovers: number[] = [];
  before(async () => {
    sut = await AgentUnderTest.start({ policy: '127.0.0.9/32\n' });
  });
  after(async () => {
    for (const pid of leftovers) if (alive(pid)) process.kill(pid, 'SIGKILL');
    await sut?.stop();
  });

  it('passes the exit code through', async () => {
    assert.equal((await sut.run(['sh', '-c', 'exit 7'])).code, 7);
    assert.equal((await sut.run(['true'])).code, 0);
  });

  it('exits 128+N when the command is killed by signal N', async () => {
    assert.equal((await sut.run(['sh', '-c', 'kill -TERM $$'])).code, 143);
    assert.equal((await sut.run(['sh', '-c', 'kill -KILL $$'])).code, 137);
  });

  it('exits 127 and says so when the command does not exist', async () => {
    const r = await sut.run(['cgfence-e2e-no-such-command']);
    assert.equal(r.code, 127);
    assert.match(r.stderr, /cgfence-e2e-no-such-command: command not found/);
  });

  it('puts the command and everything it spawns, daemons included, into the run cgroup named by the run id', async () => {
    // The child double-forks (setsid, backgrounded) and outlives the run.
    const r = await sut.run(
      ['sh', '-c', 'setsid sleep 60 </dev/null >/dev/null 2>&1 & echo "$!"; cat /proc/self/cgroup; echo "run=$CGFENCE_RUN_ID"; python3 -c "import socket; socket.create_connection((\'127.0.0.9\', 80), 1)" 2>/dev/null; true'],
      { labels: { job: 'containment' } },
    );
    assert.equal(r.code, 0, r.stderr);
    const [pidLine, ...rest] = r.stdout.trim().split('\n');
    const daemon = Number(pidLine);
    leftovers.push(daemon);
    const own = rest.find((l) => l.startsWith('0::'))?.slice(3);
    const runId = rest.find((l) => l.startsWith('run='))?.slice(4);
    assert.ok(own, `the command reports its cgroup: ${r.stdout}`);
    assert.ok(runId, 'CGFENCE_RUN_ID is set');
    assert.equal(own, `/${sut.cgroupName}/run-${runId}`, 'the command runs in <deploy cgroup>/run-<run id>');

    assert.ok(alive(daemon), 'the daemon outlived its run');
    assert.equal(cgroupOf(daemon), own, 'the daemon stayed in the run cgroup');
    const procs = readFileSync(join(sut.cgroupPath, `run-${runId}`, 'cgroup.procs'), 'utf8').trim().split('\n').map(Number);
    assert.ok(procs.includes(daemon), 'the run cgroup lists the daemon');

    const e = await sut.waitForEvent('the block event of the run', (x) => isAddressRecord(x) && x.labels['job'] === 'containment');
    assert.equal(e.runId, runId, 'the event names the run whose cgroup it came from');
    assert.equal(e.cgroupId, statSync(join(sut.cgroupPath, `run-${runId}`), { bigint: true }).ino.toString(), 'cgroup id = inode of the run cgroup');
    process.kill(daemon, 'SIGKILL');
  });
});
