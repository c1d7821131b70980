// The proxy under the four situations of issue 12 (and a plain UDP flood),
// each from a separate client process while a second process keeps asking a
// listed and an allowed name: enforcement never lapses (listed names keep
// getting NXDOMAIN, none resolves), the event loop never stalls near the
// agent's heartbeat timeout, and memory stays under the documented bound.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import net from 'node:net';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { after, before, describe, it } from 'node:test';
import type { UdpEngine } from './udp-engines';
import { protoBlocklistCodec } from '../../policy/entry-types';
import { compilePolicy } from '../../policy/policy';
import { DnsProxy } from '../dns-proxy';
import { tcpFrame } from '../dns-wire';
import { makeQuery, tcpQuery, udpQuery } from './dns-client';
import type { FloodMode, FloodReport, ProbeReport } from './flood-client';
import { LoopbackUpstream } from './loopback-upstream';

const FLOOD_CLIENT = join(__dirname, 'flood-client.js');
const FLOOD_SECONDS = 4;
/** The agent's documented memory bound (docs/operations.md). */
const MEMORY_BOUND_BYTES = 256 * 1024 * 1024;
/** The agent's default heartbeat timeout: a stall this long would let the kernel fail open. */
const MAX_LOOP_STALL_MS = 2000;

/** An answer of ~60 KB, so a client that does not read fills the socket buffers on the way fast. */
const BIG_TXT = Array.from({ length: 250 }, (_, i) => `${i}`.padEnd(240, 'x'));
/** UDP floods at a rate a busy deploy tool reaches (the benchmark floods as fast as a client can). */
const UDP_QPS = '2000';

function runClient<T>(args: string[]): Promise<T> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [FLOOD_CLIENT, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('close', (code) => {
      if (code !== 0) return reject(new Error(`flood-client ${args.join(' ')} exited ${code}: ${err}`));
      resolve(JSON.parse(out) as T);
    });
  });
}

/** The suites for one UDP engine (each engine's run is a test file of its own, so each measures its own process's memory). */
export function defineLoadSuites(udpEngine: UdpEngine): void {
describe(`${DnsProxy.name} under load and hostile input, udp engine ${udpEngine}`, () => {
  let upstream: LoopbackUpstream;
  let sut: DnsProxy;

  before(async () => {
    upstream = await LoopbackUpstream.start((name) => {
      if (name === 'big.test') return { TXT: BIG_TXT };
      if (name === 'probe.test' || name.endsWith('.flood.test')) return { A: ['192.0.2.1'] };
      return undefined;
    });
    const compiled = compilePolicy(protoBlocklistCodec, 'blocked.test\n*.blocked.test\n', 'v1');
    assert.ok(compiled.ok);
    sut = new DnsProxy({ udpEngine, upstream: upstream.address, policy: compiled.policy, listenAddresses: ['127.0.0.1'], tcpCaps: { slowReaderTimeoutMs: 1000 } });
    await sut.start();
  });

  after(async () => {
    await sut?.close();
    await upstream?.close();
  });

  const scenarios: Array<{ mode: FloodMode; name?: string; qps?: string; check: (before: ReturnType<DnsProxy['stats']>, report: FloodReport) => void }> = [
    { mode: 'udp-flood', qps: UDP_QPS, check: (_b, r) => assert.ok(r.answers > 0, 'the flooder got answers too') },
    { mode: 'expensive-udp', qps: UDP_QPS, check: (b) => assert.ok(sut.stats().limitExceeded > b.limitExceeded, 'counted as beyond a cap') },
    { mode: 'expensive-tcp', check: (b) => assert.ok(sut.stats().limitExceeded > b.limitExceeded, 'counted as beyond a cap') },
    { mode: 'tcp-burst', check: (b, r) => {
      assert.ok(r.answers > 0, 'the pipelining client got answers');
      assert.ok(sut.stats().tcpPaused > b.tcpPaused, 'reading from it was paused (back-pressure)');
    } },
    // The kernel's socket buffers take megabytes of answers before the
    // proxy's own caps are reached; TcpClients' test closes such a client.
    { mode: 'tcp-noread', name: 'big.test', check: (b) => assert.ok(sut.stats().tcpPaused > b.tcpPaused, 'reading from it was paused') },
  ];

  for (const s of scenarios) {
    it(`${s.mode}: listed names keep getting NXDOMAIN, allowed ones answers, the loop never stalls, memory stays bounded`, async () => {
      const before = sut.stats();
      const lag = monitorEventLoopDelay({ resolution: 10 });
      lag.enable();
      let peakRss = process.memoryUsage().rss;
      const rss = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage().rss)), 50);
      const port = String(sut.port);
      try {
        const [report, probe] = await Promise.all([
          runClient<FloodReport>([s.mode, '127.0.0.1', port, String(FLOOD_SECONDS), s.name ?? '', s.qps ?? '0']),
          runClient<ProbeReport>(['probe', '127.0.0.1', port, String(FLOOD_SECONDS), 'x.blocked.test,probe.test']),
        ]);
        lag.disable();
        assert.equal(probe.listedLapsed, 0, `a listed name was answered: ${JSON.stringify(probe)}`);
        // How many of the probe's queries get through a flood on this shared
        // machine is the benchmark's business; here: every answer to a listed
        // name is NXDOMAIN, and there are some.
        assert.ok(probe.listedNxdomain > 0, `listed names got NXDOMAIN: ${JSON.stringify({ ...probe, latenciesMs: undefined })}`);
        assert.ok(lag.max / 1e6 < MAX_LOOP_STALL_MS, `the event loop stalled ${(lag.max / 1e6).toFixed(0)} ms`);
        assert.ok(peakRss < MEMORY_BOUND_BYTES, `peak RSS ${(peakRss / 2 ** 20).toFixed(0)} MiB`);
        s.check(before, report);
      } finally {
        clearInterval(rss);
        lag.disable();
      }
      // And after: enforcement on, allowed names resolve.
      assert.equal((await udpQuery('127.0.0.1', sut.port, makeQuery('x.blocked.test', 'A'))).answer.rcode, 'NXDOMAIN');
      assert.equal((await tcpQuery('127.0.0.1', sut.port, makeQuery('blocked.test', 'A'))).answer.rcode, 'NXDOMAIN');
      // Allowed names resolve again once the flood's queries in flight have drained (SERVFAIL meanwhile is shedding).
      const deadline = Date.now() + 10_000;
      let rcode: string | undefined;
      while ((rcode = (await udpQuery('127.0.0.1', sut.port, makeQuery('probe.test', 'A'))).answer.rcode) !== 'NOERROR' && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 200));
      }
      assert.equal(rcode, 'NOERROR');
    });
  }

  it('closes a connection that announces a frame larger than the message cap, without buffering it', async () => {
    const before = sut.stats().tcpOversizedFrames;
    await new Promise<void>((resolve) => {
      const c = net.connect({ host: '127.0.0.1', port: sut.port }, () => c.write(Buffer.from([0xff, 0xff, 0, 0])));
      c.on('error', () => undefined);
      c.on('close', () => resolve());
      c.resume();
    });
    assert.equal(sut.stats().tcpOversizedFrames, before + 1);
  });

  it('answers FORMERR to an expensive message over TCP and keeps the connection for the next query', async () => {
    const answers: Buffer[] = [];
    await new Promise<void>((resolve, reject) => {
      const c = net.connect({ host: '127.0.0.1', port: sut.port }, () => {
        const heavy = Buffer.alloc(4000);
        heavy.writeUInt16BE(0x0101, 0);
        heavy.writeUInt16BE(2, 4);
        c.write(Buffer.concat([tcpFrame(heavy), tcpFrame(makeQuery('blocked.test', 'A', { id: 0x0202 }))]));
      });
      let buf = Buffer.alloc(0);
      c.on('data', (d: Buffer) => {
        buf = Buffer.concat([buf, d]);
        while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
          answers.push(buf.subarray(2, 2 + buf.readUInt16BE(0)));
          buf = buf.subarray(2 + buf.readUInt16BE(0));
        }
        if (answers.length === 2) {
          c.destroy();
          resolve();
        }
      });
      c.on('error', reject);
    });
    const byId = new Map(answers.map((a) => [a.readUInt16BE(0), a[3] & 0xf]));
    assert.equal(byId.get(0x0101), 1, 'FORMERR');
    assert.equal(byId.get(0x0202), 3, 'NXDOMAIN');
  });
});

describe(`${DnsProxy.name} fairness, udp engine ${udpEngine}`, () => {
  it('sheds a client over its in-flight share with SERVFAIL at once, still blocks its listed names, and serves others', async () => {
    const upstream = await LoopbackUpstream.start(() => ({ A: ['192.0.2.1'] }));
    upstream.behaviour = 'silent';
    const compiled = compilePolicy(protoBlocklistCodec, 'blocked.test\n', 'v1');
    assert.ok(compiled.ok);
    const sut = new DnsProxy({ udpEngine, upstream: upstream.address, policy: compiled.policy, listenAddresses: ['127.0.0.1'], upstreamTimeoutMs: 3000, maxInFlightPerClient: 4 });
    await sut.start();
    const dgram = await import('node:dgram');
    const greedy = dgram.createSocket('udp4');
    try {
      const rcodes = new Map<number, number>();
      greedy.on('message', (m) => rcodes.set(m.readUInt16BE(0), m[3] & 0xf));
      await new Promise<void>((r) => greedy.bind(0, '127.0.0.1', () => r()));
      for (let i = 0; i < 10; i++) greedy.send(makeQuery(`n${i}.example`, 'A', { id: i }), sut.port, '127.0.0.1');
      greedy.send(makeQuery('blocked.test', 'A', { id: 100 }), sut.port, '127.0.0.1');
      const deadline = Date.now() + 2000;
      while (rcodes.size < 7 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      assert.equal([...rcodes.values()].filter((c) => c === 2).length, 6, 'six over the share answered SERVFAIL at once');
      assert.equal(rcodes.get(100), 3, 'the listed name NXDOMAIN');
      assert.equal(sut.stats().shed, 6);
      // Another client still gets its queries forwarded (the upstream is silent: it waits, it is not shed).
      upstream.behaviour = 'answer';
      assert.equal((await udpQuery('127.0.0.1', sut.port, makeQuery('other.example', 'A'))).answer.rcode, 'NOERROR');
    } finally {
      greedy.close();
      await sut.close();
      await upstream.close();
    }
  });
});

describe(`${DnsProxy.name} and a process flooding listed names, udp engine ${udpEngine}`, () => {
  it('reads /proc for that process at most once a second, and still puts it in every event', async () => {
    const upstream = await LoopbackUpstream.start(() => undefined);
    const compiled = compilePolicy(protoBlocklistCodec, 'blocked.test\n', 'v1');
    assert.ok(compiled.ok);
    let reads = 0;
    const sut = new DnsProxy({
      udpEngine,
      upstream: upstream.address,
      policy: compiled.policy,
      listenAddresses: ['127.0.0.1'],
      attribution: { lookup: () => ({ pid: 4242, tgid: 4242, comm: 'flooder', cgroupId: 7n }) },
      processReader: { cmdline: () => (reads++, 'flooder --a-long-line'), uid: () => 1000, comm: () => 'flooder' },
    });
    const events: string[] = [];
    sut.onEvent((e) => events.push(e.process?.cmdline ?? '-'));
    await sut.start();
    try {
      for (let i = 0; i < 50; i++) assert.equal((await udpQuery('127.0.0.1', sut.port, makeQuery('blocked.test', 'A'))).answer.rcode, 'NXDOMAIN');
      assert.equal(events.length, 50);
      assert.ok(events.every((c) => c === 'flooder --a-long-line'));
      assert.ok(reads >= 1 && reads <= 3, `${reads} reads of /proc for 50 queries`);
    } finally {
      await sut.close();
      await upstream.close();
    }
  });
});
}
