// Real kernel: the unix-socket guard (c/unix-guard.bpf.c). Its numbers are
// checked against the running kernel's BTF and against c/unix-guard.h; a
// connect or datagram send from the deploy cgroup to a listed socket is
// refused (EPERM), counted per path and reported as an event naming the
// process; audit mode lets it through; a kernel that refuses the attach type
// leaves the rest of the data plane working and says so.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KernelEvent } from './codec';
import { DataPlane } from './data-plane';
import { KernelSandbox, sleep } from './testing/kernel-fixture';
import { decodeUnixPath, encodeUnixPath, UNIX_GUARD_LAYOUT, UNIX_HOOK_ABI, UNIX_PROGRAMS, validateUnixGuardPaths } from './unix-guard';

const C_DIR = join(__dirname, '..', '..', 'c');

/** Enum values from the running kernel's BTF (bpftool btf dump). */
function kernelEnumValues(): Map<string, number> {
  const out = new Map<string, number>();
  const text = execFileSync('bpftool', ['btf', 'dump', 'file', '/sys/kernel/btf/vmlinux'], { encoding: 'utf8', maxBuffer: 1 << 30 });
  for (const m of text.matchAll(/^\t'(BPF_[A-Z0-9_]+)' val=(\d+)$/gm)) out.set(m[1]!, Number(m[2]));
  return out;
}

/** sizeof/offsetof/constants of c/unix-guard.h, printed by a compiled probe. */
function headerValues(): Map<string, number> {
  const dir = mkdtempSync(join(tmpdir(), 'cgf-unix-probe-'));
  try {
    const src = join(dir, 'probe.c');
    const exprs: Record<string, string> = {
      CGF_UNIX_PATH_LEN: 'CGF_UNIX_PATH_LEN',
      CGF_UNIX_PATHS_MAX: 'CGF_UNIX_PATHS_MAX',
      CGF_EV_UNIX_REFUSED: 'CGF_EV_UNIX_REFUSED',
      CGF_EV_UNIX_AUDIT: 'CGF_EV_UNIX_AUDIT',
      CGF_FAMILY_UNIX: 'CGF_FAMILY_UNIX',
      KEY_SIZE: 'sizeof(struct cgf_unix_key)',
      KEY_LEN_OFFSET: 'offsetof(struct cgf_unix_key, len)',
      KEY_PATH_OFFSET: 'offsetof(struct cgf_unix_key, path)',
      VALUE_SIZE: 'sizeof(struct cgf_unix_value)',
      VALUE_REFUSALS_OFFSET: 'offsetof(struct cgf_unix_value, refusals)',
      VALUE_ID_OFFSET: 'offsetof(struct cgf_unix_value, id)',
    };
    const body = Object.entries(exprs).map(([k, e]) => `  printf("%s %lld\\n", "${k}", (long long)(${e}));`);
    writeFileSync(src, ['#include <stddef.h>', '#include <stdio.h>', '#include "unix-guard.h"', 'int main(void)', '{', ...body, '  return 0;', '}'].join('\n'));
    execFileSync('clang', ['-I', C_DIR, '-o', join(dir, 'probe'), src]);
    const out = execFileSync(join(dir, 'probe'), { encoding: 'utf8' });
    return new Map(out.trim().split('\n').map((l) => [l.split(' ')[0]!, Number(l.split(' ')[1])]));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Python: connect (stream) or sendto (datagram) to a unix socket path ('@x': abstract); prints {pid, result: errno or 0}. */
const UNIX_CLIENT = `
import json, os, socket, sys, errno
path, kind = sys.argv[1], sys.argv[2]
addr = "\\0" + path[1:] if path.startswith("@") else path
if kind == "junk":
    # a pathname followed by its NUL and leftover bytes, as a careless caller passes sizeof(sun): the kernel reads up to the NUL
    addr, kind = path.encode() + b"\\0leftover-bytes", "stream"
out = {"pid": os.getpid()}
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM if kind == "dgram" else socket.SOCK_STREAM)
try:
    if kind == "dgram":
        s.sendto(b"x", addr)
    else:
        s.connect(addr)
    out["result"] = 0
except OSError as e:
    out["result"] = errno.errorcode.get(e.errno, str(e.errno))
print(json.dumps(out))
`;

interface UnixResult {
  pid: number;
  result: 0 | string;
}

function unixClient(box: KernelSandbox, path: string, kind: 'stream' | 'dgram' | 'junk', inCgroup = true): Promise<UnixResult> {
  return new Promise((resolve, reject) => {
    const child = inCgroup
      ? spawn('sh', ['-c', `echo $$ > '${box.cgroupPath}/cgroup.procs' && exec python3 -c "$0" "$1" "$2"`, UNIX_CLIENT, path, kind])
      : spawn('python3', ['-c', UNIX_CLIENT, path, kind]);
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.once('error', reject);
    child.once('close', () => {
      try {
        resolve(JSON.parse(out) as UnixResult);
      } catch {
        reject(new Error(`client output ${JSON.stringify(out)}, stderr ${err}`));
      }
    });
  });
}

function listen(path: string): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = createServer((s) => s.end());
    server.once('error', reject);
    server.listen(path, () => resolve(server));
  });
}

/** A bound unix socket (python, outside the cgroup) at `path` ('@x': abstract), listening if a stream; resolves once bound, to a killer. */
function pythonSocket(path: string, kind: 'stream' | 'dgram'): Promise<() => void> {
  const py = `
import socket, sys, time
path, kind = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM if kind == "dgram" else socket.SOCK_STREAM)
s.bind("\\0" + path[1:] if path.startswith("@") else path)
if kind == "stream":
    s.listen(64)
print("ok", flush=True)
while True:
    if kind == "stream":
        c, _ = s.accept(); c.close()
    else:
        s.recv(100)
`;
  const child = spawn('python3', ['-c', py, path, kind], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`socket helper exited with ${code}`)));
    child.stdout.once('data', () => resolve(() => child.kill('SIGKILL')));
  });
}

describe('unix guard ABI', () => {
  it("uses the running kernel's numbers for the program type and the unix attach types (BTF)", () => {
    const btf = kernelEnumValues();
    for (const [name, value] of Object.entries(UNIX_HOOK_ABI)) assert.equal(btf.get(name), value, `${name} in /sys/kernel/btf/vmlinux`);
  });

  it("matches c/unix-guard.h's layout and constants", () => {
    const h = headerValues();
    for (const [name, value] of Object.entries(UNIX_GUARD_LAYOUT)) assert.equal(h.get(name), value, name);
  });

  it('encodes pathname and abstract sockets and refuses bad paths by name', () => {
    assert.equal(decodeUnixPath(encodeUnixPath('/run/nscd/socket')), '/run/nscd/socket');
    assert.equal(decodeUnixPath(encodeUnixPath('@cgf-abstract')), '@cgf-abstract');
    assert.equal(encodeUnixPath('@x').readUInt32LE(0), 2, 'leading NUL + name');
    assert.throws(() => encodeUnixPath('run/nscd/socket'), /absolute \(\/…\) or abstract \(@name\)/);
    assert.throws(() => encodeUnixPath('/' + 'a'.repeat(108)), /109 bytes; sun_path holds 108/);
    assert.throws(() => validateUnixGuardPaths(['/a', '/a']), /listed twice/);
    assert.throws(() => validateUnixGuardPaths(Array.from({ length: 33 }, (_, i) => `/s${i}`)), /at most 32 unix socket paths, got 33/);
  });
});

describe('unix guard on the real kernel', () => {
  let box: KernelSandbox;
  let dir: string;
  let sut: DataPlane;
  let server: Server;
  let stopAbstract: () => void;
  let stopSink: () => void;
  const events: KernelEvent[] = [];
  const config = { proxyPort: 5399, mode: 'enforce' as const, failMode: 'open' as const, heartbeatTimeoutMs: 0 };
  let listed: string;
  let unlisted: string;
  let dgram: string;
  const abstract = `@cgf-test-${process.pid}`;

  before(async () => {
    box = new KernelSandbox('unixguard');
    dir = mkdtempSync(join(tmpdir(), 'cgf-unix-'));
    listed = join(dir, 'resolver.sock');
    unlisted = join(dir, 'other.sock');
    dgram = join(dir, 'dgram.sock');
    server = await listen(listed);
    await listen(unlisted).then((s) => s.unref());
    stopAbstract = await pythonSocket(abstract, 'stream');
    stopSink = await pythonSocket(dgram, 'dgram');
    sut = DataPlane.attach({ cgroupPath: box.cgroupPath, pinDir: box.pinDir, config, unixGuard: { paths: [listed, abstract, dgram] } });
    sut.onEvent((e) => events.push(e));
  });
  after(async () => {
    stopSink?.();
    server?.close();
    stopAbstract?.();
    sut?.close();
    await box?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  it('attaches both programs and reports the guard active', () => {
    assert.deepEqual(sut.unixGuardStatus(), { state: 'active', paths: [listed, abstract, dgram] });
    for (const p of UNIX_PROGRAMS) assert.ok(sut.attachedPrograms().includes(p), p);
    assert.ok(sut.attachedPrograms().includes('cgf_connect4'));
  });

  it('refuses a connect from the cgroup to a listed socket with EPERM, counts it and names the process; outside the cgroup untouched', async () => {
    const inside = await unixClient(box, listed, 'stream');
    assert.equal(inside.result, 'EPERM');
    assert.equal((await unixClient(box, listed, 'stream', false)).result, 0);
    assert.equal((await unixClient(box, unlisted, 'stream')).result, 0, 'an unlisted socket is reachable');
    assert.equal(sut.unixRefusals().get(listed), 1);
    for (let i = 0; i < 100 && !events.some((e) => e.tgid === inside.pid); i++) await sleep(20);
    const e = events.find((ev) => ev.tgid === inside.pid);
    assert.ok(e, 'an event names the process');
    assert.equal(e.kind, 'unix_refused');
    assert.equal(e.daddr, listed);
    assert.equal(e.comm, 'python3');
  });

  it('refuses abstract sockets and unconnected datagram sends (sendmsg_unix)', async () => {
    assert.equal((await unixClient(box, abstract, 'stream')).result, 'EPERM');
    assert.equal((await unixClient(box, dgram, 'dgram')).result, 'EPERM');
    assert.equal((await unixClient(box, dgram, 'dgram', false)).result, 0);
    assert.equal(sut.unixRefusals().get(abstract), 1);
    assert.equal(sut.unixRefusals().get(dgram), 1);
  });

  it('refuses a listed pathname followed by its NUL and leftover bytes (what the kernel connects to)', async () => {
    assert.equal((await unixClient(box, listed, 'junk', false)).result, 0, 'outside, the kernel connects to the listed socket');
    assert.equal((await unixClient(box, listed, 'junk')).result, 'EPERM');
    assert.equal(sut.unixRefusals().get(listed), 2);
  });

  it('lets the connect through in audit mode, counted and reported as unix_audit', async () => {
    sut.setConfig({ ...config, mode: 'audit' });
    try {
      const r = await unixClient(box, listed, 'stream');
      assert.equal(r.result, 0);
      assert.equal(sut.unixRefusals().get(listed), 3);
      for (let i = 0; i < 100 && !events.some((e) => e.tgid === r.pid); i++) await sleep(20);
      assert.equal(events.find((e) => e.tgid === r.pid)?.kind, 'unix_audit');
    } finally {
      sut.setConfig(config);
    }
  });

  it('is adopted by a restarted agent with its counts; [] turns it off and detaches its links', async () => {
    sut.close();
    sut = DataPlane.attach({ cgroupPath: box.cgroupPath, pinDir: box.pinDir, config, unixGuard: { paths: [listed] } });
    assert.ok(sut.adopted);
    assert.equal(sut.unixRefusals().get(listed), 3, 'counts survive the restart');
    assert.deepEqual([...sut.unixRefusals().keys()], [listed], 'paths dropped from the list are gone');
    assert.equal((await unixClient(box, listed, 'stream')).result, 'EPERM');
    assert.equal((await unixClient(box, abstract, 'stream')).result, 0);
    sut.close();
    sut = DataPlane.attach({ cgroupPath: box.cgroupPath, pinDir: box.pinDir, config, unixGuard: { paths: [] } });
    assert.deepEqual(sut.unixGuardStatus(), { state: 'off' });
    assert.equal((await unixClient(box, listed, 'stream')).result, 0);
    assert.ok(!readdirSync(join(box.pinDir, 'links')).some((n) => n.endsWith('_unix')), 'no unix link pinned');
    assert.ok(!existsSync(join(box.pinDir, 'maps', 'cgf_unix_paths')));
  });
});

describe('unix guard on a kernel that refuses the hook', () => {
  let box: KernelSandbox;
  let sut: DataPlane;

  before(() => {
    box = new KernelSandbox('unixnohook');
  });
  after(async () => {
    sut?.close();
    await box?.destroy();
  });

  it('attaches everything else, reports the guard unavailable with the reason, pins nothing of it', async () => {
    // An attach type no kernel has: the program load fails as it does on a kernel before 6.7.
    sut = DataPlane.attach({
      cgroupPath: box.cgroupPath,
      pinDir: box.pinDir,
      config: { proxyPort: 5397, mode: 'enforce', failMode: 'open', heartbeatTimeoutMs: 0 },
      unixGuard: { paths: ['/run/nscd/socket'], attachTypes: { connect: 4000, sendmsg: 4001 } },
    });
    const st = sut.unixGuardStatus();
    assert.equal(st.state, 'unavailable');
    assert.match(st.state === 'unavailable' ? st.reason : '', /load unix guard.*Linux 6\.7 or later.*EINVAL/);
    assert.ok(sut.attachedPrograms().includes('cgf_connect4'));
    assert.ok(!sut.attachedPrograms().some((p) => p.endsWith('_unix')));
    assert.ok(!existsSync(join(box.pinDir, 'maps', 'cgf_unix_paths')));
    // The rest works: port 853 is still refused.
    assert.equal((await box.run({ op: 'connect', host: '127.0.0.1', port: 853 })).result, 'EPERM');
    assert.deepEqual(sut.unixRefusals(), new Map());
  });
});
