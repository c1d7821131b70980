// Real kernel: the per-client rate limit of UDP queries to the proxy
// (client-rate.bpf.h). A process in the deploy cgroup that sends faster than
// its window and rate allow gets EPERM from sendmsg, before the datagram
// reaches the proxy's queue, connected socket or not, IPv4 or IPv6; answers
// from the proxy give the charge back; audit mode only counts; the per-run
// bucket holds the processes of one cgroup together.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import { createSocket, type Socket } from 'node:dgram';
import { DataPlane } from './data-plane';
import { DataPlaneConfig } from './codec';
import { NO_CLIENT_RATE_LIMITS } from './client-rate';
import { FakeProxy, KernelSandbox, requireIPv6Loopback, sleep, uniqueLoopback4 } from './testing/kernel-fixture';

interface BurstResult {
  ok: number;
  eperm: number;
  other: number;
  replies: number;
}

// Sends `n` datagrams to HOST:53 as fast as it can from one socket
// (connected or sendto), then (if `read`) reads the replies for 0.5 s.
// With `lockstep`, waits for each reply before the next send.
const BURST_PY = String.raw`
import errno, json, socket, sys, time
a = json.loads(sys.argv[1])
fam = socket.AF_INET6 if ':' in a['host'] else socket.AF_INET
dst = (a['host'], 53)
s = socket.socket(fam, socket.SOCK_DGRAM)
if a['connected']:
    s.connect(dst)
out = {'ok': 0, 'eperm': 0, 'other': 0, 'replies': 0}
q = bytes.fromhex('abcd01000001000000000000047465737400000100 01'.replace(' ', ''))
for i in range(a['n']):
    try:
        if a['connected']:
            s.send(q)
        else:
            s.sendto(q, dst)
        out['ok'] += 1
    except OSError as e:
        out['eperm' if e.errno == errno.EPERM else 'other'] += 1
        continue
    if a['lockstep']:
        s.settimeout(2)
        s.recv(512)
        out['replies'] += 1
if a.get('hold'):
    print(json.dumps(out), flush=True)
    time.sleep(a['hold'])
    sys.exit(0)
if a['read'] and not a['lockstep']:
    s.settimeout(0.5)
    try:
        while True:
            s.recv(512)
            out['replies'] += 1
    except socket.timeout:
        pass
print(json.dumps(out))
`;

/** A socket on 127.0.0.1:port (and ::1:port) that reads and answers only when told to (`answer(n)`). */
async function heldProxy(): Promise<{ port: number; received: () => number; answer: (n: number) => void; close: () => void }> {
  const s = createSocket({ type: 'udp4', recvBufferSize: 4 << 20 });
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
  const held: { msg: Buffer; port: number }[] = [];
  let n = 0;
  s.on('message', (msg, from) => {
    n++;
    held.push({ msg, port: from.port });
  });
  return {
    port: s.address().port,
    received: () => n,
    answer: (k) => held.splice(0, k).forEach((q) => s.send(q.msg, q.port, '127.0.0.1')),
    close: () => s.close(),
  };
}

/** A socket on 127.0.0.1:port (and ::1:port) that reads and never answers: the proxy's queue without the refunds. */
async function muteProxy(): Promise<{ port: number; received: () => number; close: () => void }> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const v4 = createSocket({ type: 'udp4', recvBufferSize: 4 << 20 });
    await new Promise<void>((r) => v4.bind(0, '127.0.0.1', () => r()));
    const port = v4.address().port;
    const v6 = createSocket({ type: 'udp6', ipv6Only: true, recvBufferSize: 4 << 20 });
    const bound = await new Promise<boolean>((r) => {
      v6.once('error', () => r(false));
      v6.bind(port, '::1', () => r(true));
    });
    if (!bound) {
      v4.close();
      continue;
    }
    let n = 0;
    for (const s of [v4, v6] as Socket[]) s.on('message', () => void n++);
    return { port, received: () => n, close: () => [v4, v6].forEach((s) => s.close()) };
  }
  throw new Error('no port free on both 127.0.0.1 and ::1');
}

describe('per-client rate limit of UDP queries to the proxy', () => {
  let box: KernelSandbox;
  let mute: Awaited<ReturnType<typeof muteProxy>>;
  let echo: FakeProxy;
  let sut: DataPlane;
  let base: DataPlaneConfig;
  const resolver4 = uniqueLoopback4();

  const burst = (args: { host?: string; n: number; connected?: boolean; read?: boolean; lockstep?: boolean }, cgroup = box.cgroupPath): Promise<BurstResult> =>
    new Promise((resolve, reject) => {
      const json = JSON.stringify({ host: resolver4, connected: false, read: false, lockstep: false, ...args });
      const child = spawn('sh', ['-c', `echo $$ > '${cgroup}/cgroup.procs' && exec python3 -c "$0" "$1"`, BURST_PY, json], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr.on('data', (d: Buffer) => (err += d.toString()));
      child.once('close', (code) => (code === 0 ? resolve(JSON.parse(out) as BurstResult) : reject(new Error(`burst client exited ${code}: ${err}`))));
    });

  /** burst(), but returns at its first line (with `hold`, it then keeps its socket open for `hold` seconds). */
  const spawnBurst = (args: { n: number; hold: number }, cgroup: string): { line: Promise<string>; kill: () => Promise<void> } => {
    const json = JSON.stringify({ host: resolver4, connected: false, read: false, lockstep: false, ...args });
    const child = spawn('sh', ['-c', `echo $$ > '${cgroup}/cgroup.procs' && exec python3 -c "$0" "$1"`, BURST_PY, json], { stdio: ['ignore', 'pipe', 'pipe'] });
    const closed = new Promise<void>((r) => child.once('close', () => r()));
    const line = new Promise<string>((resolve, reject) => {
      let out = '';
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('\n')) resolve(out.slice(0, out.indexOf('\n')));
      });
      child.once('close', (code) => reject(new Error(`burst client exited ${code} before its first line`)));
    });
    return {
      line,
      kill: () => {
        child.kill('SIGKILL');
        return closed;
      },
    };
  };

  before(async () => {
    box = new KernelSandbox('rate');
    mute = await muteProxy();
    echo = await FakeProxy.start();
    base = { proxyPort: mute.port, mode: 'enforce', failMode: 'closed', heartbeatTimeoutMs: 0, clientRate: NO_CLIENT_RATE_LIMITS };
    sut = DataPlane.attach({ cgroupPath: box.cgroupPath, pinDir: box.pinDir, config: base });
  });

  after(async () => {
    sut?.close();
    mute?.close();
    await echo?.close();
    await box?.destroy();
  });

  const limited = () => sut.counters().dns_client_rate_limited!;

  it('without a limit (the old behaviour) a burst of 400 goes to the proxy whole', async () => {
    const before = mute.received();
    const r = await burst({ n: 400 });
    assert.deepEqual(r, { ok: 400, eperm: 0, other: 0, replies: 0 });
    await sleep(200);
    assert.equal(mute.received() - before, 400);
  });

  for (const connected of [false, true]) {
    it(`over its window and rate a process gets EPERM, counted, and the proxy never sees those (${connected ? 'connected socket: send()' : 'sendto()'})`, async () => {
      sut.setConfig({ ...base, clientRate: { perProcess: { ratePerSecond: 10, window: 50 }, perRun: null } });
      const before = mute.received();
      const counted = limited();
      const r = await burst({ n: 400, connected });
      assert.equal(r.other, 0);
      // 50 at once, plus what 10/s gives back while python sends (well under a second).
      assert.ok(r.ok >= 50 && r.ok <= 70, `sent ${r.ok}`);
      assert.equal(r.ok + r.eperm, 400);
      assert.equal(limited() - counted, BigInt(r.eperm), 'every refusal counted');
      await sleep(200);
      assert.equal(mute.received() - before, r.ok, 'refused datagrams never reached the proxy');
    });
  }

  it('IPv6: the same limit holds on the ::1 redirect', async () => {
    requireIPv6Loopback();
    sut.setConfig({ ...base, clientRate: { perProcess: { ratePerSecond: 10, window: 50 }, perRun: null } });
    const r = await burst({ host: 'fd00:53::1', n: 300 });
    assert.ok(r.ok >= 50 && r.ok <= 70 && r.eperm === 300 - r.ok, JSON.stringify(r));
  });

  it('a client whose queries are answered is never limited, however many it asks (each answer gives its charge back)', async () => {
    sut.setConfig({ ...base, proxyPort: echo.port, clientRate: { perProcess: { ratePerSecond: 10, window: 50 }, perRun: null } });
    const counted = limited();
    const r = await burst({ n: 1000, lockstep: true });
    assert.deepEqual(r, { ok: 1000, eperm: 0, other: 0, replies: 1000 });
    assert.equal(limited() - counted, 0n);
  });

  it('the per-run bucket holds all processes of one cgroup together', async () => {
    sut.setConfig({ ...base, clientRate: { perProcess: null, perRun: { ratePerSecond: 10, window: 100 } } });
    const counted = sut.counters().dns_run_rate_limited!;
    const a = await burst({ n: 80 });
    const b = await burst({ n: 80 });
    assert.equal(a.eperm, 0, 'the first process alone stays within the run window');
    assert.ok(a.ok + b.ok >= 100 && a.ok + b.ok <= 120, `run sent ${a.ok + b.ok}`);
    assert.equal(sut.counters().dns_run_rate_limited! - counted, BigInt(b.eperm));
  });

  it('audit mode refuses nothing and counts what would have been refused', async () => {
    sut.setConfig({ ...base, mode: 'audit', clientRate: { perProcess: { ratePerSecond: 10, window: 50 }, perRun: null } });
    const counted = limited();
    const audits = sut.counters().dns_rate_limit_audits!;
    const r = await burst({ n: 300 });
    assert.deepEqual(r, { ok: 300, eperm: 0, other: 0, replies: 0 });
    assert.equal(limited() - counted, 0n);
    const audited = sut.counters().dns_rate_limit_audits! - audits;
    assert.ok(audited >= 230n && audited <= 250n, `audited ${audited}`);
  });

  it('each answer gives exactly one query back: a window of 50 with 20 answered lets 20 more through', async () => {
    const proxy = await heldProxy();
    // A run of its own (a child cgroup, under the same programs): a fresh run bucket.
    const run = join(box.cgroupPath, 'held');
    mkdirSync(run);
    let first: ReturnType<typeof spawnBurst> | undefined;
    try {
      // The per-run bucket, so a second process can spend what the first one's answers gave back.
      sut.setConfig({ ...base, proxyPort: proxy.port, clientRate: { perProcess: null, perRun: { ratePerSecond: 1, window: 50 } } });
      first = spawnBurst({ n: 100, hold: 5 }, run);
      const sent = JSON.parse(await first.line) as BurstResult;
      assert.equal(sent.ok, 50, `the window: ${JSON.stringify(sent)}`);
      for (let i = 0; i < 50 && proxy.received() < 50; i++) await sleep(20);
      assert.equal(proxy.received(), 50);
      proxy.answer(20);
      await sleep(200); // the answers reach the first process's socket (it never reads them)
      const second = await burst({ n: 100 }, run);
      assert.ok(second.ok >= 20 && second.ok <= 22, `after 20 answers: ${JSON.stringify(second)}`);
    } finally {
      await first?.kill();
      proxy.close();
      for (let i = 0; i < 50 && existsSync(run); i++) {
        try {
          rmdirSync(run);
        } catch {
          await sleep(100);
        }
      }
    }
  });
});
