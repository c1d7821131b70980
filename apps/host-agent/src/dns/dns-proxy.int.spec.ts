import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import net from 'node:net';
import { after, before, beforeEach, describe, it } from 'node:test';
import dnsPacket from 'dns-packet';
import { protoBlocklistCodec } from '../policy/entry-types';
import { compilePolicy, type Policy } from '../policy/policy';
import type { AddressBlocker } from './address-learner';
import type { DnsPolicyEvent, DnsQueryNotice } from './dns-events';
import { DnsProxy } from './dns-proxy';
import { UDP_ENGINES } from './testing/udp-engines';
import { tcpFrame } from './dns-wire';
import type { AttributedProcess, Attribution } from './process-details';
import { answerData, makeQuery, tcpQuery, udpQuery } from './testing/dns-client';
import { LoopbackUpstream, type UpstreamRecords } from './testing/loopback-upstream';

const TABLE: Record<string, UpstreamRecords> = {
  'github.com': { A: ['140.82.112.3'], AAAA: ['2001:db8::3'], TXT: ['v=gh'], HTTPS: true, ttl: 120 },
  'raw.githubusercontent.com': { A: ['185.199.108.133'], AAAA: ['2001:db8::133'], TXT: ['raw'], HTTPS: true },
  'githubusercontent.com': { A: ['185.199.108.1'] },
  'allowed.example': { A: ['192.0.2.10'], AAAA: ['2001:db8::10'], TXT: ['hello'], HTTPS: true },
  'big.example': { A: ['192.0.2.20', '192.0.2.21'], truncateOverUdp: true },
  'x.learn.example': { A: ['198.51.100.7'], ttl: 5 },
};

function lookup(name: string): UpstreamRecords | undefined {
  const bulk = /^n(\d+)\.bulk\.example$/.exec(name);
  if (bulk) return { A: [bulkAddress(Number(bulk[1]))] };
  return TABLE[name];
}

function bulkAddress(n: number): string {
  return `10.${(n >> 16) & 0xff}.${(n >> 8) & 0xff}.${n & 0xff}`;
}

const POLICY_TEXT = ['github.com !resolve', '*.githubusercontent.com', '*.learn.example !resolve'].join('\n');

function policy(): Policy {
  const result = compilePolicy(protoBlocklistCodec, POLICY_TEXT, 'v7');
  assert.ok(result.ok, result.ok ? '' : result.message);
  return result.policy;
}

/** Stands in for the kernel's attribution map: knows the (client port, DNS id) pairs the test registers. */
class FakeAttribution implements Attribution {
  private readonly table = new Map<string, AttributedProcess>();
  register(clientPort: number, dnsId: number, process: AttributedProcess): void {
    this.table.set(`${clientPort}/${dnsId}`, process);
  }
  lookup(clientPort: number, dnsId: number): AttributedProcess | undefined {
    return this.table.get(`${clientPort}/${dnsId}`);
  }
}

class RecordingBlocker implements AddressBlocker {
  readonly learned: Array<{ addrs: string[]; ttl: number }> = [];
  learn(addrs: string[], ttlSeconds: number): void {
    this.learned.push({ addrs: [...addrs].sort(), ttl: ttlSeconds });
  }
}

async function waitFor(what: string, cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

function rcodeOf(answer: { rcode?: string }): string | undefined {
  return answer.rcode;
}

/** Deterministic bytes for the fuzz (xorshift32), so a failure can be replayed from its seed. */
function prng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}

for (const udpEngine of UDP_ENGINES) describe(`${DnsProxy.name}, udp engine ${udpEngine}`, () => {
  let upstream: LoopbackUpstream;
  let sut: DnsProxy;
  let sleeper: ChildProcess;
  const attribution = new FakeAttribution();
  const blocker = new RecordingBlocker();
  const events: DnsPolicyEvent[] = [];
  const notices: DnsQueryNotice[] = [];

  before(async () => {
    upstream = await LoopbackUpstream.start(lookup);
    sleeper = spawn('sleep', ['3600'], { stdio: 'ignore' });
    sut = new DnsProxy({
      udpEngine,
      upstream: upstream.address,
      policy: policy(),
      mode: 'enforce',
      upstreamTimeoutMs: 400,
      attribution,
      addressBlocker: blocker,
    });
    sut.onEvent((e) => events.push(e));
    sut.onQuery((q) => notices.push(q));
    await sut.start();
  });

  after(async () => {
    await sut?.close();
    await upstream?.close();
    sleeper?.kill('SIGKILL');
  });

  beforeEach(() => {
    upstream.behaviour = 'answer';
    upstream.holdUntil(0);
    sut.setMode('enforce');
    sut.flushQueries(); // the UDP core's notices of the test before (taken every 10 ms)
    events.length = 0;
    notices.length = 0;
  });

  it('picks a free port and listens on it for UDP and TCP on 127.0.0.1 and ::1', async () => {
    assert.ok(sut.port > 0);
    for (const host of ['127.0.0.1', '::1']) {
      for (const send of [udpQuery, tcpQuery]) {
        const { answer } = await send(host, sut.port, makeQuery('allowed.example', 'A'));
        assert.deepEqual(
          answerData(answer),
          ['192.0.2.10'],
          `${send.name} ${host}`,
        );
        const blocked = await send(host, sut.port, makeQuery('github.com', 'A'));
        assert.equal(rcodeOf(blocked.answer), 'NXDOMAIN', `${send.name} ${host}`);
      }
    }
  });

  it('answers NXDOMAIN for blocked names of every type, echoing the question, without asking the upstream', async () => {
    const asked = upstream.log.length;
    for (const name of ['github.com', 'GitHub.COM', 'raw.githubusercontent.com', 'a.b.githubusercontent.com.']) {
      for (const type of ['A', 'AAAA', 'HTTPS', 'TXT']) {
        const query = makeQuery(name, type, { id: 0x4242 });
        const { answer } = await udpQuery('127.0.0.1', sut.port, query);
        assert.equal(rcodeOf(answer), 'NXDOMAIN', `${name} ${type}`);
        assert.equal(answer.id, 0x4242);
        assert.equal(answer.flag_rd, true);
        assert.equal(answer.flag_ra, true);
        assert.equal(answer.questions?.[0].name, name.replace(/\.$/, ''));
        assert.equal(answer.answers?.length, 0);
      }
    }
    assert.equal(upstream.log.length, asked, 'a blocked name reached the upstream');
    assert.equal(events.length, 16);
    assert.ok(events.every((e) => e.kind === 'dns_block' && e.policy.version === 'v7'));
    assert.deepEqual(
      events.slice(0, 4).map((e) => [e.qname, e.qtype, e.entry]),
      [
        ['github.com', 'A', 'github.com'],
        ['github.com', 'AAAA', 'github.com'],
        ['github.com', 'HTTPS', 'github.com'],
        ['github.com', 'TXT', 'github.com'],
      ],
    );
    assert.equal(events[15].qname, 'a.b.githubusercontent.com');
    assert.equal(events[15].entry, '*.githubusercontent.com');
  });

  it('tells an EDNS client why it was blocked', async () => {
    const { answer } = await udpQuery('127.0.0.1', sut.port, makeQuery('github.com', 'A', { edns: true }));
    const opt = answer.additionals?.find((a) => a.type === 'OPT');
    assert.ok(opt && opt.type === 'OPT', 'OPT record in the answer');
    const ede = opt.options.find((o) => (o.code as number) === 15) as { data?: Buffer } | undefined;
    assert.match(ede?.data?.subarray(2).toString() ?? '', /blocked by cgfence policy v7: github.com/);
  });

  it('forwards allowed names of every type and relays the upstream answer', async () => {
    const cases: Array<[string, string, unknown[]]> = [
      ['allowed.example', 'A', ['192.0.2.10']],
      ['allowed.example', 'AAAA', ['2001:db8::10']],
      ['allowed.example', 'TXT', [[Buffer.from('hello')]]],
      ['allowed.example', 'HTTPS', [Buffer.from([0, 1, 0])]],
      ['githubusercontent.com', 'A', ['185.199.108.1']], // the apex of a wildcard is not blocked
    ];
    for (const [name, type, data] of cases) {
      for (const send of [udpQuery, tcpQuery]) {
        const { answer } = await send('127.0.0.1', sut.port, makeQuery(name, type));
        assert.equal(rcodeOf(answer), 'NOERROR', `${send.name} ${name} ${type}`);
        assert.deepEqual(
          answerData(answer),
          data,
          `${send.name} ${name} ${type}`,
        );
      }
    }
    const { answer } = await udpQuery('127.0.0.1', sut.port, makeQuery('missing.example', 'A'));
    assert.equal(rcodeOf(answer), 'NXDOMAIN');
    assert.equal(events.length, 0);
  });

  it('in audit mode answers a blocked name for real and records that it would have blocked it', async () => {
    sut.setMode('audit');
    const { answer } = await udpQuery('127.0.0.1', sut.port, makeQuery('github.com', 'A'));
    assert.equal(rcodeOf(answer), 'NOERROR');
    assert.deepEqual(answerData(answer), ['140.82.112.3']);
    assert.deepEqual(
      events.map((e) => [e.kind, e.qname, e.qtype, e.entry]),
      [['dns_audit', 'github.com', 'A', 'github.com']],
    );
    assert.ok(sut.stats().audited >= 1);
  });

  it('attributes a query to the process the kernel names, with its command line read from /proc', async () => {
    const pid = sleeper.pid;
    assert.ok(pid);
    const query = makeQuery('github.com', 'AAAA', { id: 0xbeef });
    // The test client binds before sending; register its port like the kernel would on egress.
    const socket = dgram.createSocket('udp4');
    await new Promise<void>((r) => socket.bind(0, '127.0.0.1', () => r()));
    const clientPort = socket.address().port;
    attribution.register(clientPort, 0xbeef, { pid, tgid: pid, uid: -1, comm: 'sleep', cgroupId: 777n });
    let raw: Buffer;
    try {
      const answered = new Promise<Buffer>((resolve, reject) => {
        setTimeout(() => reject(new Error('no answer within 5 s')), 5000).unref();
        socket.once('message', (m) => resolve(m));
      });
      socket.send(query, sut.port, '127.0.0.1');
      raw = await answered;
    } finally {
      socket.close();
    }
    assert.equal(rcodeOf(dnsPacket.decode(raw) as { rcode?: string }), 'NXDOMAIN');
    assert.equal(events.length, 1);
    assert.deepEqual(events[0].client, { address: '127.0.0.1', port: clientPort });
    assert.deepEqual(events[0].process, { pid, tgid: pid, comm: 'sleep', cmdline: 'sleep 3600', uid: process.getuid?.() ?? 0, cgroupId: 777n });
    // A query from another port with the same id is not this process's.
    await udpQuery('127.0.0.1', sut.port, query);
    assert.equal(events[1].process, undefined);
  });

  it('reports every query, allowed or not, for the domains-contacted list', async () => {
    await udpQuery('127.0.0.1', sut.port, makeQuery('allowed.example', 'A'));
    await udpQuery('127.0.0.1', sut.port, makeQuery('github.com', 'A'));
    // The core's notice of a name it forwarded (allowed.example was asked before) is taken every 10 ms or when asked.
    sut.flushQueries();
    assert.deepEqual(
      notices.map((n) => [n.qname, n.qtype, n.decision]).sort(),
      [
        ['allowed.example', 'A', 'allowed'],
        ['github.com', 'A', 'blocked'],
      ],
    );
  });

  it('answers SERVFAIL, over UDP and TCP, when the upstream stays silent', async () => {
    upstream.behaviour = 'silent';
    const before = sut.stats();
    for (const send of [udpQuery, tcpQuery]) {
      const started = Date.now();
      const { answer } = await send('127.0.0.1', sut.port, makeQuery('allowed.example', 'A', { id: 77 }), 3000);
      assert.equal(rcodeOf(answer), 'SERVFAIL', send.name);
      assert.equal(answer.id, 77);
      assert.ok(Date.now() - started >= 390, `${send.name}: answered SERVFAIL before the 400 ms timeout`);
    }
    const stats = sut.stats();
    assert.equal(stats.upstreamTimeouts - before.upstreamTimeouts, 2);
    assert.equal(stats.servfail - before.servfail, 2);
  });

  it('relays upstream error answers and truncated answers unchanged', async () => {
    upstream.behaviour = 'refused';
    assert.equal(rcodeOf((await udpQuery('127.0.0.1', sut.port, makeQuery('allowed.example', 'A'))).answer), 'REFUSED');
    upstream.behaviour = 'answer';
    const overUdp = await udpQuery('127.0.0.1', sut.port, makeQuery('big.example', 'A'));
    assert.equal(overUdp.answer.flag_tc, true);
    const overTcp = await tcpQuery('127.0.0.1', sut.port, makeQuery('big.example', 'A'));
    assert.equal(overTcp.answer.flag_tc, false);
    assert.deepEqual(answerData(overTcp.answer), ['192.0.2.20', '192.0.2.21']);
  });

  it('blocks the addresses of !resolve names: exact names at policy load, wildcard matches when asked', async () => {
    await waitFor('github.com addresses learned at load', () => blocker.learned.some((l) => l.addrs.includes('140.82.112.3')));
    // Pinned: TTL 120 plus the refresh grace (two 400 ms lookup timeouts + 1 s), so a failing refresh still renews in time.
    assert.deepEqual(blocker.learned.find((l) => l.addrs.includes('140.82.112.3')), { addrs: ['140.82.112.3', '2001:db8::3'], ttl: 121.8 });
    const { answer } = await udpQuery('127.0.0.1', sut.port, makeQuery('x.learn.example', 'A'));
    assert.equal(rcodeOf(answer), 'NXDOMAIN');
    await waitFor('x.learn.example addresses learned', () => blocker.learned.some((l) => l.addrs.includes('198.51.100.7')));
    assert.deepEqual(blocker.learned.find((l) => l.addrs.includes('198.51.100.7')), { addrs: ['198.51.100.7'], ttl: 30 });
  });

  it('keeps 4096 queries in flight at once and answers every one with its own answer', async () => {
    // Its own proxy, with a timeout long enough for every query to wait for the last one.
    // No shedding on loop lag: the upstream releases its answers only once all 4096 wait.
    const proxy = new DnsProxy({ udpEngine, upstream: upstream.address, upstreamTimeoutMs: 30_000, listenAddresses: ['127.0.0.1'], maxLoopLagMs: 60_000 });
    const { port } = await proxy.start();
    try {
      await flood(proxy, port, 4096, 16);
    } finally {
      await proxy.close();
    }
  });

  /** Sends `total` queries from `sockets` clients; the upstream holds every answer until all of them wait. */
  async function flood(proxy: DnsProxy, port: number, total: number, sockets: number): Promise<void> {
    let inFlightAtRelease = -1;
    upstream.holdUntil(total, () => (inFlightAtRelease = proxy.stats().inFlight));
    const perSocket = total / sockets;
    const results = await Promise.all(
      Array.from({ length: sockets }, async (_, s) => {
        const socket = dgram.createSocket({ type: 'udp4', recvBufferSize: 1 << 20 });
        await new Promise<void>((r) => socket.bind(0, '127.0.0.1', () => r()));
        const answers = new Map<number, string>();
        const done = new Promise<void>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error(`socket ${s}: ${answers.size}/${perSocket} answers`)), 30_000);
          socket.on('message', (raw) => {
            const a = dnsPacket.decode(raw);
            answers.set(a.id ?? -1, `${a.questions?.[0]?.name} ${String(answerData(a)[0])}`);
            if (answers.size === perSocket) {
              clearTimeout(timer);
              resolve();
            }
          });
        });
        for (let i = 0; i < perSocket; i++) {
          const n = s * perSocket + i;
          // Many clients use the same ids; the proxy must still keep them apart.
          socket.send(makeQuery(`n${n}.bulk.example`, 'A', { id: i }), port, '127.0.0.1');
          if (i % 64 === 63) await new Promise((r) => setImmediate(r));
        }
        try {
          await done;
        } finally {
          socket.close();
        }
        return { s, answers };
      }),
    );
    assert.equal(inFlightAtRelease, total);
    for (const { s, answers } of results) {
      for (let i = 0; i < perSocket; i++) {
        const n = s * perSocket + i;
        assert.equal(answers.get(i), `n${n}.bulk.example ${bulkAddress(n)}`);
      }
    }
    assert.equal(proxy.stats().inFlight, 0);
    assert.equal(proxy.stats().forwarded, total);
  }

  it('drops thousands of malformed packets without answering them and keeps serving', async () => {
    const seed = 0xc0ffee;
    const rnd = prng(seed);
    const valid = [makeQuery('allowed.example', 'A', { id: 1 }), makeQuery('github.com', 'HTTPS', { id: 2, edns: true }), makeQuery('n1.bulk.example', 'TXT', { id: 3 })];
    const packets: Buffer[] = [];
    for (let i = 0; i < 3000; i++) {
      const b = Buffer.alloc(rnd() % 600);
      for (let j = 0; j < b.length; j++) b[j] = rnd() & 0xff;
      if (b.length > 2) b[2] &= 0x7f; // mostly "queries", so they get past the QR check
      packets.push(b);
    }
    for (const q of valid) for (let len = 0; len < q.length; len++) packets.push(q.subarray(0, len));
    for (let i = 0; i < 3000; i++) {
      const b = Buffer.from(valid[i % valid.length]);
      for (let k = 0; k <= rnd() % 4; k++) b[12 + (rnd() % (b.length - 12))] = rnd() & 0xff;
      packets.push(b);
    }
    const header = (qd: number, an: number): Buffer => Buffer.from([0, 9, 1, 0, qd >> 8, qd & 0xff, an >> 8, an & 0xff, 0, 0, 0, 0]);
    packets.push(Buffer.concat([header(0xffff, 0xffff), Buffer.from([0xc0, 0x0c])])); // pointer loop
    packets.push(Buffer.concat([header(1, 0), Buffer.from([0x3f, 0x61])])); // label runs past the end
    packets.push(Buffer.concat([header(1, 0), Buffer.alloc(300, 0x01)])); // name too long
    packets.push(Buffer.from(dnsPacket.encode({ type: 'response', id: 5, questions: [{ type: 'A', name: 'allowed.example' }] }))); // a response

    const socket = dgram.createSocket('udp4');
    await new Promise<void>((r) => socket.bind(0, '127.0.0.1', () => r()));
    let answersToGarbage = 0;
    socket.on('message', (raw) => {
      if (raw.length >= 4 && (raw.readUInt16BE(0) === 9 || raw.readUInt16BE(0) === 5)) answersToGarbage++;
    });
    try {
      await fuzz(socket, packets, rnd);
    } finally {
      socket.close();
    }
    assert.equal(answersToGarbage, 0, 'the proxy answered a packet it should have dropped');
  });

  async function fuzz(socket: dgram.Socket, packets: readonly Buffer[], rnd: () => number): Promise<void> {
    const malformedBefore = sut.stats().malformed;
    for (let i = 0; i < packets.length; i++) {
      socket.send(packets[i], sut.port, '127.0.0.1');
      if (i % 100 === 99) await new Promise((r) => setTimeout(r, 1));
    }
    // The same over TCP: garbage frames, a frame cut short, random bytes.
    await new Promise<void>((resolve) => {
      const c = net.connect({ host: '127.0.0.1', port: sut.port }, () => {
        for (let i = 0; i < 200; i++) c.write(tcpFrame(packets[(rnd() % packets.length) | 0]));
        c.write(Buffer.from([0x00, 0x00])); // empty frame
        c.end(Buffer.from([0x10, 0x00, 1, 2, 3])); // length 4096, then the connection ends
      });
      c.on('error', () => undefined);
      c.on('close', () => resolve());
      c.resume();
    });

    await waitFor('all malformed packets counted', () => sut.stats().malformed - malformedBefore >= 3000, 10_000);
    const { answer } = await udpQuery('127.0.0.1', sut.port, makeQuery('allowed.example', 'A'));
    assert.deepEqual(answerData(answer), ['192.0.2.10']);
    const overTcp = await tcpQuery('::1', sut.port, makeQuery('github.com', 'A'));
    assert.equal(rcodeOf(overTcp.answer), 'NXDOMAIN');
  }
});

for (const udpEngine of UDP_ENGINES) describe(`${DnsProxy.name} with an unreachable upstream, udp engine ${udpEngine}`, () => {
  it('answers SERVFAIL at once when the upstream refuses TCP connections', async () => {
    const closed = net.createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', () => r()));
    const port = (closed.address() as net.AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r()));
    const sut = new DnsProxy({ udpEngine, upstream: `127.0.0.1:${port}`, upstreamTimeoutMs: 5000, listenAddresses: ['127.0.0.1'] });
    await sut.start();
    try {
      const { answer } = await tcpQuery('127.0.0.1', sut.port, makeQuery('allowed.example', 'A'), 3000);
      assert.equal(rcodeOf(answer), 'SERVFAIL');
      assert.equal(sut.stats().upstreamTimeouts, 0);
    } finally {
      await sut.close();
    }
  });

  it('refuses a bad upstream address with a message that names it', () => {
    assert.throws(() => new DnsProxy({ udpEngine, upstream: 'dns.example:53' }), /upstream "dns.example:53": host must be an IP address/);
    assert.throws(() => new DnsProxy({ udpEngine, upstream: '127.0.0.1' }), /is not HOST:PORT/);
  });
});
