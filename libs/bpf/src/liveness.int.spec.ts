// Real kernel: how the kernel decides the DNS proxy is alive. A process that
// holds the proxy's socket is alive however busy it is (its event loop
// blocked for longer than the heartbeat timeout changes nothing, as the
// heartbeat comes from a thread of its own); a process that dies takes its
// socket with it and the fail mode applies at once.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomInt } from 'node:crypto';
import dnsPacket from 'dns-packet';
import { DataPlane } from './data-plane';
import { DataPlaneConfig } from './codec';
import { FakeProxy, KernelSandbox, sleep, UdpEcho, uniqueLoopback4 } from './testing/kernel-fixture';

const TIMEOUT_MS = 500;

function query(name: string): string {
  return dnsPacket.encode({ type: 'query', id: randomInt(1, 0xffff), questions: [{ type: 'A', name }] }).toString('hex');
}

/** Blocks this thread (and so its event loop) for `ms`, as a busy proxy would. */
function blockEventLoop(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** A stand-in proxy in a process of its own: binds UDP 127.0.0.1:<free port> and sleeps. */
async function proxyProcess(): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn('python3', ['-c', "import socket,sys,time\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.bind(('127.0.0.1',0))\nprint(s.getsockname()[1],flush=True)\ntime.sleep(600)"], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout!.once('data', (d: Buffer) => resolve(Number(d.toString().trim())));
    child.once('exit', (code) => reject(new Error(`proxy process exited (${code})`)));
  });
  return { child, port };
}

describe('proxy liveness', () => {
  let box: KernelSandbox;
  let proxy: FakeProxy;
  let resolver: UdpEcho;
  let sut: DataPlane;
  let config: DataPlaneConfig;
  const children: ChildProcess[] = [];

  before(async () => {
    box = new KernelSandbox('live');
    proxy = await FakeProxy.start();
    resolver = await UdpEcho.start(uniqueLoopback4(), 53);
    config = { proxyPort: proxy.port, mode: 'enforce', failMode: 'open', heartbeatTimeoutMs: TIMEOUT_MS };
    sut = DataPlane.attach({ cgroupPath: box.cgroupPath, pinDir: box.pinDir, config });
    await sut.startHeartbeat(100);
  });

  after(async () => {
    for (const c of children) c.kill('SIGKILL');
    sut?.close();
    await proxy?.close();
    await resolver?.close();
    await box?.destroy();
  });

  const resolverHost = () => resolver.socket.address().address;

  it('a proxy whose event loop is blocked for 4x the heartbeat timeout is never taken for dead', async () => {
    const bypass = sut.counters().failopen_bypass!;
    const proxyBefore = proxy.udp4.received.length;
    const payloads = Array.from({ length: 20 }, (_, i) => query(`busy-${i}.test`));
    // A client in the cgroup sends a query every 100 ms for 2 s ...
    const client = box.run({ op: 'udp_many', host: resolverHost(), port: 53, payloads, interval: 0.1, timeout: 10 });
    await sleep(100);
    // ... while this thread, which holds the proxy socket, does no work at all for 2 s.
    blockEventLoop(4 * TIMEOUT_MS);
    const r = await client;
    await sleep(200); // let the proxy read what queued up meanwhile

    assert.deepEqual(r.sent, payloads.map(() => 'OK'));
    assert.equal(sut.counters().failopen_bypass! - bypass, 0n, 'no query bypassed the proxy');
    assert.equal(resolver.received.length, 0, 'the original resolver never heard from the cgroup');
    assert.equal(proxy.udp4.received.length - proxyBefore, payloads.length, 'every query went to the proxy');
  });

  it('a proxy process killed -9 is taken for dead at once (its socket is gone), though the heartbeat is fresh', async () => {
    const p = await proxyProcess();
    children.push(p.child);
    sut.setConfig({ ...config, proxyPort: p.port, heartbeatTimeoutMs: 60_000 });
    try {
      const alive = await box.run({ op: 'udp_many', host: resolverHost(), port: 53, payloads: [query('before.test')] });
      assert.deepEqual(alive.sent, ['OK']);
      await sleep(100);
      assert.equal(resolver.received.length, 0, 'redirected to the live proxy process');

      const missing = sut.counters().proxy_socket_missing!;
      p.child.kill('SIGKILL');
      await new Promise((r) => p.child.once('exit', r));
      const dead = await box.run({ op: 'udp_sendto', host: resolverHost(), port: 53, payload: query('after.test'), timeout: 2 });

      assert.equal(dead.error, undefined, 'answered by the original resolver (fail open)');
      assert.equal(resolver.received.length, 1, 'the query went direct, within a heartbeat timeout of 60 s');
      assert.ok(sut.counters().proxy_socket_missing! > missing, 'counted');
    } finally {
      sut.setConfig(config);
    }
  });

  it('with the socket check off, only the heartbeat counts (the old behaviour)', async () => {
    const p = await proxyProcess();
    children.push(p.child);
    p.child.kill('SIGKILL');
    await new Promise((r) => p.child.once('exit', r));
    sut.setConfig({ ...config, proxyPort: p.port, proxySocketCheck: false, heartbeatTimeoutMs: 60_000 });
    try {
      const before = resolver.received.length;
      const r = await box.run({ op: 'udp_many', host: resolverHost(), port: 53, payloads: [query('nocheck.test')] });
      assert.deepEqual(r.sent, ['OK']);
      await sleep(100);
      assert.equal(resolver.received.length, before, 'still redirected (to nothing): the heartbeat is fresh');
    } finally {
      sut.setConfig(config);
    }
  });

  it('a paused heartbeat applies the fail mode after the timeout, though the socket lives; resuming brings the proxy back', async () => {
    sut.pauseHeartbeat(true);
    try {
      await sleep(TIMEOUT_MS + 300);
      const before = resolver.received.length;
      const r = await box.run({ op: 'udp_sendto', host: resolverHost(), port: 53, payload: query('paused.test'), timeout: 2 });
      assert.equal(r.error, undefined);
      assert.equal(resolver.received.length, before + 1, 'went direct (fail open)');
    } finally {
      sut.pauseHeartbeat(false);
    }
    const proxyBefore = proxy.udp4.received.length;
    const back = await box.run({ op: 'udp_sendto', host: resolverHost(), port: 53, payload: query('resumed.test'), timeout: 2 });
    assert.equal(back.error, undefined);
    assert.equal(proxy.udp4.received.length, proxyBefore + 1, 'redirected again');
  });

  it('the heartbeat thread keeps stamping while this thread is blocked', async () => {
    const hb = (): bigint => {
      const out = JSON.parse(execFileSync('bpftool', ['-j', 'map', 'lookup', 'pinned', `${box.pinDir}/maps/cgf_heartbeat`, 'key', '0', '0', '0', '0'], { encoding: 'utf8' })) as {
        value: string[];
      };
      return Buffer.from(out.value.map((b) => Number(b))).readBigUInt64LE(0);
    };
    const before = hb();
    blockEventLoop(600);
    const after = hb();
    assert.ok(after > before, `stamped during the block (${before} -> ${after})`);
  });
});
