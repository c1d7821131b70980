// `cgfence agent --protect-cgroup`: an existing cgroup (made here, standing in
// for a systemd service's) under the same programs as the deploy cgroup:
// enforced and attributed to a synthetic run per service start, waiting while
// the service is stopped, picked up again when it starts, detached when
// dropped from the configuration and on teardown.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { waitFor } from '@cgfence/devservices';
import { ensureBpffs, findCgroup2Root } from '@cgfence/bpf';
import type { AgentStatus } from '@cgfence/proto';
import { AgentUnderTest, isAddressRecord } from './agent-harness';

const run = promisify(execFile);
const UNIT = `cgfsvc${randomBytes(4).toString('hex')}.service`;
const service = join(findCgroup2Root(), UNIT);

/** connect() to 127.0.0.9:80 from a process in `cgroup` (or here); prints OK or the errno name. */
async function connectFrom(cgroup: string | undefined): Promise<string> {
  const py = "import socket, errno\ns = socket.socket()\ns.settimeout(2)\ntry:\n  s.connect(('127.0.0.9', 80))\n  print('OK')\nexcept OSError as e:\n  print(errno.errorcode.get(e.errno, str(e)))";
  const join_ = cgroup === undefined ? '' : `echo $$ > '${cgroup}/cgroup.procs' && `;
  const { stdout } = await run('sh', ['-c', `${join_}exec /usr/bin/python3 -c "$0"`, py]);
  return stdout.trim();
}

async function status(sut: AgentUnderTest): Promise<AgentStatus> {
  const r = await sut.cli(['agent', 'status', '--json']);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as AgentStatus;
}

function emptyAndRemove(cgroup: string): void {
  if (!existsSync(cgroup)) return;
  try {
    writeFileSync(join(cgroup, 'cgroup.kill'), '1');
  } catch {
    // nothing to kill
  }
  for (let i = 0; i < 100; i++) {
    if (!/populated 1/.test(readFileSync(join(cgroup, 'cgroup.events'), 'utf8'))) break;
    execFileSyncSleep();
  }
  rmdirSync(cgroup);
}

function execFileSyncSleep(): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
}

describe('cgfence agent --protect-cgroup', () => {
  let sut: AgentUnderTest | undefined;

  before(async () => {
    mkdirSync(service);
    sut = await AgentUnderTest.start({ policy: '127.0.0.9/32\n', extraArgs: ['--protect-cgroup', UNIT] });
  });

  after(async () => {
    try {
      await sut?.stop();
    } finally {
      emptyAndRemove(service);
    }
  });

  it('enforces the policy in the existing cgroup and attributes its events to the service start', async () => {
    const s = await status(sut!);
    const id = statSync(service, { bigint: true }).ino.toString();
    assert.deepEqual(s.protectedCgroups, [{ path: `/${UNIT}`, unit: UNIT, state: 'protected', cgroupId: id, runId: `cgroup-${id}` }]);
    assert.equal(await connectFrom(service), 'EPERM');
    assert.equal(await connectFrom(undefined), 'ECONNREFUSED', 'a process outside is not affected');
    const e = await sut!.waitForEvent('the block in the protected cgroup', (x) => isAddressRecord(x) && x.runId === `cgroup-${id}`);
    assert.deepEqual(e.labels, { cgroup: `/${UNIT}`, unit: UNIT });
    assert.equal(e.cgroupId, id);
  });

  it('waits, without errors, while the service is stopped, and picks up its next start as a new run', async () => {
    const first = statSync(service, { bigint: true }).ino.toString();
    emptyAndRemove(service);
    await waitFor('the agent to see the service gone', async () => (await status(sut!)).protectedCgroups?.[0]?.state === 'waiting', 30_000);
    mkdirSync(service);
    const second = statSync(service, { bigint: true }).ino.toString();
    assert.notEqual(second, first);
    await waitFor('the agent to protect the new start', async () => (await status(sut!)).protectedCgroups?.[0]?.runId === `cgroup-${second}`, 30_000);
    assert.equal(await connectFrom(service), 'EPERM');
    assert.equal(sut!.proc!.exitCode, null, 'the agent still runs');
    assert.doesNotMatch(sut!.log, /"level":50/, `no error logged:\n${sut!.log}`);
  });

  it('stays enforced while the agent is stopped (pinned), is detached when dropped from the configuration', async () => {
    await sut!.stopProcess();
    assert.equal(await connectFrom(service), 'EPERM', 'pinned links outlive the agent');
    sut!.opts.extraArgs = [];
    await sut!.launch();
    await waitFor('the links of the dropped cgroup to go', async () => (await connectFrom(service)) === 'ECONNREFUSED', 30_000);
    assert.deepEqual((await status(sut!)).protectedCgroups, []);
  });

  it('is detached by teardown', async () => {
    await sut!.stopProcess();
    sut!.opts.extraArgs = ['--protect-cgroup', UNIT];
    await sut!.launch();
    assert.equal(await connectFrom(service), 'EPERM');
    await sut!.stopProcess();
    const down = await sut!.cli(['agent', 'teardown', '--cgroup', sut!.cgroupName]);
    assert.equal(down.code, 0, down.stderr);
    assert.match(down.stdout, new RegExp(`detached from protected cgroup /${UNIT.replace('.', '\\.')}`));
    assert.equal(await connectFrom(service), 'ECONNREFUSED');
    assert.equal(existsSync(join(ensureBpffs(), 'cgfence', `${sut!.cgroupName}-protected`)), false);
    await sut!.launch(); // for after(): stop() tears down again
  });

  it('refuses the cgroup root, ".." and the deploy cgroup at start, naming the flag', async () => {
    for (const bad of ['/', '../x', sut!.cgroupName]) {
      const r = await sut!.cli(['agent', '--policy-file', sut!.policyFile, '--upstream', '127.0.0.1:9', '--protect-cgroup', bad, '--cgroup', sut!.cgroupName]);
      assert.equal(r.code, 2, `${bad}: ${r.stderr}`);
      assert.match(r.stderr, /--protect-cgroup/);
    }
  });
});
