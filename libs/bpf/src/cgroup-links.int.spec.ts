// Real kernel: the data plane's programs on one more, existing cgroup (a
// service's), sharing the maps; kept across a second attach, dropped quietly
// when the cgroup goes, attached anew when it comes back, detached on demand.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmdirSync, rmSync, statSync } from 'node:fs';
import { createServer, Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { attachCgroupLinks, cgroupLinkState, detachCgroupLinks } from './cgroup-links';
import { DataPlane } from './data-plane';
import { PROGRAMS } from './layout';
import { closedPort, KernelSandbox, requireKernelTestHost, sleep } from './testing/kernel-fixture';
import { UNIX_PROGRAMS } from './unix-guard';

const run = promisify(execFile);

/** connect() to 127.0.0.2:port from a process put in `cgroup` first; prints the errno name. */
async function connectFrom(cgroup: string, port: number): Promise<string> {
  const py = `import socket, errno\ns = socket.socket()\ntry:\n  s.connect(('127.0.0.2', ${port}))\n  print('OK')\nexcept OSError as e:\n  print(errno.errorcode[e.errno])`;
  const { stdout } = await run('sh', ['-c', `echo $$ > '${cgroup}/cgroup.procs' && exec python3 -c "$0"`, py]);
  return stdout.trim();
}

/** connect() to the unix socket `path` from a process put in `cgroup` first; prints OK or the errno name. */
async function unixConnectFrom(cgroup: string, path: string): Promise<string> {
  const py = `import socket, errno, sys\ns = socket.socket(socket.AF_UNIX)\ntry:\n  s.connect(sys.argv[1])\n  print('OK')\nexcept OSError as e:\n  print(errno.errorcode[e.errno])`;
  const { stdout } = await run('sh', ['-c', `echo $$ > '${cgroup}/cgroup.procs' && exec python3 -c "$0" "$1"`, py, path]);
  return stdout.trim();
}

async function until(what: string, probe: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!probe()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

describe('attachCgroupLinks', () => {
  let box: KernelSandbox;
  let dp: DataPlane;
  let port: number;
  let sockDir: string;
  let sockServer: Server;
  const { cgroupRoot, bpffs } = requireKernelTestHost();
  const id = `${process.pid}-${randomBytes(3).toString('hex')}`;
  const service = join(cgroupRoot, `cgfence-test-service-${id}`);
  const pinDir = join(bpffs, `cgfence-test-service-${id}`);

  before(async () => {
    box = new KernelSandbox('links');
    sockDir = mkdtempSync(join(tmpdir(), 'cgf-links-'));
    sockServer = createServer((s) => s.end());
    await new Promise<void>((r) => sockServer.listen(join(sockDir, 'resolver.sock'), r));
    dp = DataPlane.attach({
      cgroupPath: box.cgroupPath,
      pinDir: box.pinDir,
      config: { proxyPort: 5399, mode: 'enforce', failMode: 'open', heartbeatTimeoutMs: 0 },
      unixGuard: { paths: [join(sockDir, 'resolver.sock')] },
    });
    dp.applyIpPolicy({ v4: ['127.0.0.2/32'], v6: [] });
    mkdirSync(service);
    port = await closedPort();
  });

  after(async () => {
    try {
      detachCgroupLinks(pinDir);
    } finally {
      if (existsSync(service)) rmdirSync(service);
      dp?.close();
      await box?.destroy();
      sockServer?.close();
      rmSync(sockDir, { recursive: true, force: true });
    }
  });

  it('enforces the shared policy in an existing cgroup outside the deploy cgroup', async () => {
    assert.equal(await connectFrom(service, port), 'ECONNREFUSED', 'before: not enforced');
    const r = attachCgroupLinks({ sourcePinDir: box.pinDir, cgroupPath: service, pinDir });
    assert.equal(r.attachedNow, true);
    assert.equal(r.cgroupId, statSync(service, { bigint: true }).ino);
    assert.deepEqual(cgroupLinkState(pinDir), { cgroupId: r.cgroupId, attached: [...PROGRAMS, ...UNIX_PROGRAMS].sort(), complete: true });
    assert.equal(await connectFrom(service, port), 'EPERM');
    assert.equal(await unixConnectFrom(service, join(sockDir, 'resolver.sock')), 'EPERM', "the unix guard's programs go along");
    dp.applyIpPolicy({ v4: ['127.0.0.3/32'], v6: [] });
    assert.equal(await connectFrom(service, port), 'ECONNREFUSED', 'a new policy holds there at once (shared maps)');
    dp.applyIpPolicy({ v4: ['127.0.0.2/32'], v6: [] });
  });

  it('keeps its links on a second attach (an agent restart), attaching nothing twice', async () => {
    const r = attachCgroupLinks({ sourcePinDir: box.pinDir, cgroupPath: service, pinDir });
    assert.equal(r.attachedNow, false);
    assert.equal(cgroupLinkState(pinDir).attached.length, PROGRAMS.length + UNIX_PROGRAMS.length);
    assert.equal(await connectFrom(service, port), 'EPERM');
  });

  it('sees a removed cgroup as detached, and attaches anew to the cgroup made again at that path', async () => {
    const before = statSync(service, { bigint: true }).ino;
    rmdirSync(service);
    await until('the kernel to detach the links of the removed cgroup', () => cgroupLinkState(pinDir).attached.length === 0);
    assert.equal(cgroupLinkState(pinDir).cgroupId, 0n);
    assert.equal(cgroupLinkState(pinDir).complete, false);
    mkdirSync(service);
    const r = attachCgroupLinks({ sourcePinDir: box.pinDir, cgroupPath: service, pinDir });
    assert.equal(r.attachedNow, true);
    assert.notEqual(r.cgroupId, before, 'a new cgroup (a new service start) has a new id');
    assert.equal(await connectFrom(service, port), 'EPERM');
  });

  it('detaches and unpins, idempotently; the deploy cgroup keeps its programs', async () => {
    detachCgroupLinks(pinDir);
    assert.equal(existsSync(pinDir), false);
    assert.equal(await connectFrom(service, port), 'ECONNREFUSED');
    detachCgroupLinks(pinDir);
    assert.equal((await box.run({ op: 'connect', host: '127.0.0.2', port })).result, 'EPERM');
  });

  it('refuses the cgroup root and what is not a cgroup, naming it', () => {
    assert.throws(() => attachCgroupLinks({ sourcePinDir: box.pinDir, cgroupPath: cgroupRoot, pinDir }), /is not a cgroup below the cgroup2 root/);
    assert.throws(() => attachCgroupLinks({ sourcePinDir: box.pinDir, cgroupPath: join(cgroupRoot, `nope-${id}`), pinDir }), /no cgroup\.procs/);
    assert.equal(existsSync(pinDir), false);
  });
});
