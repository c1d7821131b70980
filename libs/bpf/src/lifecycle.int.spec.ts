// Real kernel: pinned links and maps outlive the loader, a restarted loader
// adopts them instead of attaching twice, and teardown removes everything.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdirSync, readdirSync, rmdirSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { DataPlane, DataPlaneError } from './data-plane';
import { PINNED_MAPS, PROGRAMS } from './layout';
import { nameKeyHex } from './name-backstop';
import { cgroupPrograms, closedPort, KernelSandbox } from './testing/kernel-fixture';
import { UNIX_PROGRAMS } from './unix-guard';

describe(DataPlane.name, () => {
  let box: KernelSandbox;
  let port: number;
  const config = { proxyPort: 5398, mode: 'enforce' as const, failMode: 'closed' as const, heartbeatTimeoutMs: 0 };
  const open: DataPlane[] = [];
  const attach = (): DataPlane => {
    const dp = DataPlane.attach({ cgroupPath: box.cgroupPath, pinDir: box.pinDir, config });
    open.push(dp);
    return dp;
  };

  before(async () => {
    box = new KernelSandbox('life');
    port = await closedPort();
  });

  after(async () => {
    for (const dp of open) dp.close();
    await box?.destroy();
  });

  it("attaches all nine programs (seven and the unix guard's two) once each, and they keep enforcing after the agent is killed -9", async () => {
    // The "agent": a separate node process that attaches, applies a policy and dies hard.
    const script = `
      const { DataPlane } = require(${JSON.stringify(join(__dirname, 'index.js'))});
      const dp = DataPlane.attach(${JSON.stringify({ cgroupPath: box.cgroupPath, pinDir: box.pinDir, config })});
      dp.applyIpPolicy({ v4: ['127.0.0.2/32'], v6: [], names: { exact: ['kept.test'], wildcard: [] } });
      process.stdout.write(JSON.stringify({ adopted: dp.adopted, programs: dp.attachedPrograms() }) + '\\n');
      setInterval(() => dp.heartbeat(), 100);
    `;
    const agent = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    const line = await new Promise<string>((resolve, reject) => {
      agent.stdout.once('data', (d: Buffer) => resolve(d.toString()));
      agent.once('exit', (code) => reject(new Error(`agent exited ${code} before attaching`)));
    });
    const reported = JSON.parse(line) as { adopted: boolean; programs: string[] };
    agent.kill('SIGKILL');
    await once(agent, 'exit');

    assert.equal(reported.adopted, false);
    assert.deepEqual([...reported.programs].sort(), [...PROGRAMS, ...UNIX_PROGRAMS].sort());
    assert.deepEqual(readdirSync(join(box.pinDir, 'maps')).sort(), [...PINNED_MAPS, 'cgf_unix_paths'].sort(), 'every map pinned, the prefilter and the unix guard\'s too');
    assert.deepEqual(cgroupPrograms(box.cgroupPath).sort(), [...PROGRAMS].sort());
    assert.equal((await box.run({ op: 'connect', host: '127.0.0.2', port })).result, 'EPERM', 'still enforcing with the agent dead');
  });

  it('adopts the pinned links and maps on the next attach instead of attaching twice', async () => {
    const sut = attach();

    assert.equal(sut.adopted, true);
    assert.deepEqual(cgroupPrograms(box.cgroupPath).sort(), [...PROGRAMS].sort(), 'still one program per hook');
    assert.deepEqual([...sut.attachedPrograms()].sort(), [...PROGRAMS, ...UNIX_PROGRAMS].sort());
    assert.equal((await box.run({ op: 'connect', host: '127.0.0.2', port })).result, 'EPERM', 'the pinned policy survived');
    assert.ok(sut.counters().ip_blocks! >= 2n, 'counters survived too');
    assert.deepEqual(sut.nameBackstopKeys(), [nameKeyHex('kept.test')], "the backstop's names survived");
  });

  it('keeps enforcing after close() and adopts again', async () => {
    open.pop()!.close();

    const whileClosed = await box.run({ op: 'connect', host: '127.0.0.2', port });
    const sut = attach();

    assert.equal(whileClosed.result, 'EPERM');
    assert.equal(sut.adopted, true);
    assert.equal(cgroupPrograms(box.cgroupPath).length, PROGRAMS.length);
  });

  it('adopts the pins of an agent from before the name backstop: the maps it lacked are created and pinned', async () => {
    for (const dp of open.splice(0)) dp.close();
    const added = ['cgf_names', 'cgf_dns_counters', 'cgf_heartbeat', 'cgf_scratch'];
    for (const name of added) unlinkSync(join(box.pinDir, 'maps', name));

    const sut = attach();

    assert.equal(sut.adopted, true);
    assert.deepEqual(readdirSync(join(box.pinDir, 'maps')).sort(), [...PINNED_MAPS, 'cgf_unix_paths'].sort());
    assert.deepEqual(sut.nameBackstopKeys(), [], 'a new, empty name map until the next apply');
    assert.equal(sut.counters().name_drops, 0n);
    assert.equal((await box.run({ op: 'connect', host: '127.0.0.2', port })).result, 'EPERM', 'the adopted IP policy still holds');
    sut.applyNamePolicy({ exact: ['kept.test'], wildcard: [] });
    assert.deepEqual(sut.nameBackstopKeys(), [nameKeyHex('kept.test')]);
  });

  it('refuses to adopt pins that belong to another cgroup', () => {
    const other = join(box.cgroupPath, '..', `${box.cgroupPath.split('/').pop()}-other`);
    mkdirSync(other);
    try {
      assert.throws(
        () => DataPlane.attach({ cgroupPath: other, pinDir: box.pinDir, config }),
        (err: unknown) => err instanceof DataPlaneError && err.step.startsWith('adopt') && /another|not /.test(err.message),
      );
      assert.deepEqual(cgroupPrograms(other), []);
    } finally {
      rmdirSync(other);
    }
  });

  it('names the step that failed', () => {
    assert.throws(
      () => DataPlane.attach({ cgroupPath: '/tmp', pinDir: box.pinDir, config }),
      (err: unknown) => err instanceof DataPlaneError && err.step === 'check cgroup',
    );
    assert.throws(
      () => DataPlane.attach({ cgroupPath: box.cgroupPath, pinDir: '/tmp/not-bpffs', config }),
      (err: unknown) => err instanceof DataPlaneError && err.step === 'check pin dir',
    );
  });

  it('teardown leaves no program on the cgroup and no pins', async () => {
    for (const dp of open.splice(0)) dp.close();

    DataPlane.teardown({ cgroupPath: box.cgroupPath, pinDir: box.pinDir });

    assert.deepEqual(cgroupPrograms(box.cgroupPath), []);
    assert.equal(existsSync(box.pinDir), false);
    assert.equal((await box.run({ op: 'connect', host: '127.0.0.2', port })).result, 'ECONNREFUSED');
    assert.doesNotThrow(() => DataPlane.teardown({ cgroupPath: box.cgroupPath, pinDir: box.pinDir }), 'idempotent');
  });
});
