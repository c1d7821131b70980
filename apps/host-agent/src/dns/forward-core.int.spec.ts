// The proxy with its UDP forwarding core (udpEngine 'core', as the agent runs
// it), on loopback sockets against a local upstream: what the core forwards by
// itself keeps every property the proxy's own path has (attribution, the
// domains-contacted notices, the chain check, caps and timeouts), and what it
// must not decide goes to the proxy.
import assert from 'node:assert/strict';
import { execFileSync, fork } from 'node:child_process';
import dgram from 'node:dgram';
import { join } from 'node:path';
import { after, before, beforeEach, describe, it } from 'node:test';
import dnsPacket from 'dns-packet';
import { protoBlocklistCodec } from '../policy/entry-types';
import { compilePolicy, type Policy } from '../policy/policy';
import type { DnsPolicyEvent, DnsQueryNotice } from './dns-events';
import { DnsProxy } from './dns-proxy';
import type { AttributedProcess } from './process-details';
import { makeQuery, udpQuery } from './testing/dns-client';
import { LoopbackUpstream } from './testing/loopback-upstream';
import type { StallReport } from './testing/stall-peer';
import { coreRecords as records } from './testing/core-records';

const LIST = '*.bad.test\n';
const policyOf = (text: string): Policy => {
  const compiled = compilePolicy(protoBlocklistCodec, text, 'v1');
  assert.ok(compiled.ok);
  return compiled.policy;
};


const H = '127.0.0.1';

type Answer = dnsPacket.Packet & { rcode?: string };
const decode = (m: Buffer): Answer => dnsPacket.decode(m) as Answer;

async function ask(host: string, port: number, name: string, opts: { edns?: boolean; type?: string } = {}): Promise<{ rcode: string; data: string[]; name: string }> {
  const ex = await udpQuery(host, port, makeQuery(name, opts.type ?? 'A', opts), 3000);
  return { rcode: ex.answer.rcode ?? '?', data: (ex.answer.answers ?? []).map((a) => `${a.type} ${String((a as { data?: unknown }).data)}`), name: ex.answer.questions?.[0]?.name ?? '' };
}

/** Sends `query` from a socket bound first, so the test can register its port like the kernel does; resolves with the answer. */
async function askFrom(socket: dgram.Socket, port: number, query: Buffer): Promise<Answer> {
  const answered = new Promise<Buffer>((resolve, reject) => {
    setTimeout(() => reject(new Error('no answer within 3 s')), 3000).unref();
    socket.once('message', (m) => resolve(m));
  });
  socket.send(query, port, H);
  return decode(await answered);
}

async function boundSocket(): Promise<dgram.Socket> {
  const s = dgram.createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, H, () => r()));
  return s;
}

describe('DnsProxy with its UDP forwarding core', () => {
  let upstream: LoopbackUpstream;
  let sut: DnsProxy;
  const table = new Map<string, AttributedProcess>();
  const events: DnsPolicyEvent[] = [];
  const notices: DnsQueryNotice[] = [];
  const core = () => {
    const s = sut.coreStats();
    assert.ok(s, 'the core runs');
    return s;
  };

  before(async () => {
    upstream = await LoopbackUpstream.start(records);
    sut = new DnsProxy({
      udpEngine: 'core',
      upstream: upstream.address,
      policy: policyOf(LIST),
      upstreamTimeoutMs: 2000,
      attribution: { lookup: (port, id) => table.get(`${port}/${id}`) },
    });
    sut.onEvent((e) => events.push(e));
    sut.onQuery((q) => notices.push(q));
    await sut.start();
  });
  after(async () => {
    await sut?.close();
    await upstream?.close();
  });
  beforeEach(() => {
    sut.flushQueries();
    events.length = 0;
    notices.length = 0;
    upstream.behaviour = 'answer';
    sut.setMode('enforce');
  });

  it('decides a name in the proxy once, then forwards it in the core, keeping the case the client sent', async () => {
    const before = core();
    assert.deepEqual(await ask(H, sut.port, 'a.allowed.test'), { rcode: 'NOERROR', data: ['A 192.0.2.7'], name: 'a.allowed.test' });
    assert.deepEqual(await ask(H, sut.port, 'A.aLLowed.Test', { edns: true }), { rcode: 'NOERROR', data: ['A 192.0.2.7'], name: 'A.aLLowed.Test' });
    const after = core();
    assert.equal(after.handedQueries - before.handedQueries, 1, 'the first query for the name goes to the proxy');
    assert.equal(after.fastForwarded - before.fastForwarded, 1, 'the second (other case, with OPT) is forwarded by the core');
    assert.equal(after.fastAnswers - before.fastAnswers, 1);
  });

  it('reports every query the core forwarded, with the process the kernel named', async () => {
    await ask(H, sut.port, 'tally.allowed.test');
    const socket = await boundSocket();
    try {
      const process = { pid: 4242, tgid: 4242, uid: 1000, comm: 'deploy', cgroupId: 99n };
      table.set(`${socket.address().port}/${0x1234}`, process);
      const before = core().fastForwarded;
      const answer = await askFrom(socket, sut.port, makeQuery('tally.allowed.test', 'AAAA', { id: 0x1234 }));
      assert.equal(answer.rcode, 'NOERROR');
      assert.equal(core().fastForwarded - before, 1);
      await waitFor(() => notices.length === 2);
      assert.deepEqual(notices.find((n) => n.qtype === 'AAAA'), { qname: 'tally.allowed.test', qtype: 'AAAA', decision: 'allowed', client: { address: H, port: socket.address().port }, process });
    } finally {
      socket.close();
    }
  });

  it('reports a forwarded query at once when asked to (a run ending), not only on its 10 ms round', async () => {
    await ask(H, sut.port, 'flush.allowed.test');
    sut.flushQueries();
    notices.length = 0;
    const asked = upstream.log.length;
    // Another process sends the query while this one's loop is held (execFileSync): no timer of this
    // process runs, the core's thread forwards it and leaves its notice.
    const script = `const s = require('node:dgram').createSocket('udp4'); s.bind(0, '${H}', () => s.send(Buffer.from('${makeQuery('flush.allowed.test', 'A', { id: 7 }).toString('hex')}', 'hex'), ${sut.port}, '${H}', () => { process.stdout.write(String(s.address().port)); s.close(); }));`;
    const clientPort = Number(execFileSync(process.execPath, ['-e', script], { encoding: 'utf8' }));
    const until = Date.now() + 100;
    while (Date.now() < until) {
      // held
    }
    assert.equal(notices.length, 0, 'nothing was taken while the loop was held');
    sut.flushQueries();
    assert.deepEqual(
      notices.map((n) => [n.qname, n.client.port]),
      [['flush.allowed.test', clientPort]],
    );
    await waitFor(() => upstream.log.length === asked + 1); // its upstream query, read by this process's loop now
  });

  it('never caches a listed name: each query for it goes to the proxy, is answered NXDOMAIN and recorded', async () => {
    const before = core().handedQueries;
    const asked = upstream.log.length;
    for (let i = 0; i < 3; i++) assert.equal((await ask(H, sut.port, 'again.bad.test')).rcode, 'NXDOMAIN');
    assert.equal(core().handedQueries - before, 3);
    assert.equal(upstream.log.length, asked, 'the upstream was never asked');
    assert.equal(events.length, 3);
  });

  it('refuses an allowed name whose answer chains to a listed name, also once the core forwards the name, and names the process', async () => {
    assert.equal((await ask(H, sut.port, 'chain.allowed.test')).rcode, 'NXDOMAIN');
    const socket = await boundSocket();
    try {
      const process = { pid: 77, tgid: 77, uid: 0, comm: 'curl', cgroupId: 5n };
      table.set(`${socket.address().port}/${0x4321}`, process);
      const before = core();
      const answer = await askFrom(socket, sut.port, makeQuery('chain.allowed.test', 'A', { id: 0x4321 }));
      assert.equal(answer.rcode, 'NXDOMAIN');
      const after = core();
      assert.deepEqual([after.fastForwarded - before.fastForwarded, after.handedAnswers - before.handedAnswers], [1, 1], 'forwarded by the core, its answer checked by the proxy');
      assert.equal(events.length, 2);
      assert.equal(events[1]!.cnameTarget, 'x.bad.test');
      assert.equal(events[1]!.qname, 'chain.allowed.test');
      assert.equal(events[1]!.process?.pid, 77, 'the process the kernel named for the forwarded query');
    } finally {
      socket.close();
    }
  });

  it('passes a 6 KiB answer (EDNS) from the core and a large chained one through the proxy', async () => {
    for (let i = 0; i < 2; i++) {
      const ex = await udpQuery(H, sut.port, makeQuery('big.allowed.test', 'TXT', { edns: true }), 3000);
      assert.equal(ex.answer.rcode, 'NOERROR');
      assert.ok(ex.raw.length > 6000, `answer of ${ex.raw.length} bytes`);
    }
    await udpQuery(H, sut.port, makeQuery('big-chain.allowed.test', 'TXT', { edns: true }), 3000);
    const before = core().handedAnswers;
    const ex = await udpQuery(H, sut.port, makeQuery('big-chain.allowed.test', 'TXT', { edns: true }), 3000);
    assert.equal(ex.answer.rcode, 'NOERROR');
    assert.equal(ex.answer.answers?.length, 25);
    assert.equal(core().handedAnswers - before, 1);
  });

  it('drops garbage from a careless process, answers FORMERR to a query over 4 KiB, and keeps answering', async () => {
    const junk = await boundSocket();
    const got: Buffer[] = [];
    junk.on('message', (m) => got.push(m));
    const response = makeQuery('a.allowed.test', 'A');
    response[2]! |= 0x80; // a response sent to the proxy: never answered
    const big = Buffer.concat([makeQuery('big.query.test', 'A'), Buffer.alloc(9000, 7)]);
    const before = sut.stats();
    for (const m of [Buffer.alloc(3), response, big, Buffer.from([0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0x3f])]) {
      await new Promise<void>((r) => junk.send(m, sut.port, H, () => r()));
    }
    await waitFor(() => got.length >= 1);
    junk.close();
    assert.equal(got.length, 1, 'only the oversized query is answered');
    assert.equal(decode(got[0]!).rcode, 'FORMERR');
    assert.equal((await ask(H, sut.port, 'after-junk.allowed.test')).rcode, 'NOERROR');
    const after = sut.stats();
    assert.equal(after.formerr - before.formerr, 1);
    assert.equal(after.malformed - before.malformed, 3);
  });

  it('forgets the names it forwards when the policy changes', async () => {
    assert.equal((await ask(H, sut.port, 'soon.listed.test')).rcode, 'NOERROR');
    assert.equal((await ask(H, sut.port, 'soon.listed.test')).rcode, 'NOERROR');
    sut.setPolicy(policyOf(`${LIST}*.listed.test\n`));
    try {
      assert.equal((await ask(H, sut.port, 'soon.listed.test')).rcode, 'NXDOMAIN');
    } finally {
      sut.setPolicy(policyOf(LIST));
    }
  });

  it('counts every query once in the proxy counters, whichever side answered it', async () => {
    const before = sut.stats();
    for (let i = 0; i < 5; i++) await ask(H, sut.port, 'count.allowed.test');
    await ask(H, sut.port, 'count.bad.test');
    await waitFor(() => sut.stats().queries - before.queries === 6);
    const after = sut.stats();
    assert.equal(after.forwarded - before.forwarded, 5);
    assert.equal(after.blocked - before.blocked, 1);
    assert.equal(after.latencyBuckets.reduce((a, b) => a + b, 0) - before.latencyBuckets.reduce((a, b) => a + b, 0), 6);
  });

  it('in audit mode forwards listed names through the proxy and records them, cached names still through the core', async () => {
    await ask(H, sut.port, 'audit.allowed.test');
    sut.setMode('audit');
    const before = core();
    assert.equal((await ask(H, sut.port, 'audit.allowed.test')).rcode, 'NOERROR');
    assert.equal((await ask(H, sut.port, 'y.bad.test')).rcode, 'NOERROR');
    assert.equal((await ask(H, sut.port, 'y.bad.test')).rcode, 'NOERROR');
    const after = core();
    assert.equal(after.fastForwarded - before.fastForwarded, 1);
    assert.equal(after.handedQueries - before.handedQueries, 2);
    assert.deepEqual(
      events.map((e) => [e.kind, e.qname]),
      [
        ['dns_audit', 'y.bad.test'],
        ['dns_audit', 'y.bad.test'],
      ],
    );
  });

  it('keeps forwarding cached names while a careless process floods it with new ones', async () => {
    assert.equal((await ask(H, sut.port, 'steady.allowed.test')).rcode, 'NOERROR');
    const flood = await boundSocket();
    flood.on('message', () => undefined);
    const before = core().handedQueries;
    for (let i = 0; i < 5000; i++) flood.send(makeQuery(`n${i}.flood.test`, 'A'), sut.port, H);
    const answered = await ask(H, sut.port, 'steady.allowed.test');
    flood.close();
    assert.equal(answered.rcode, 'NOERROR');
    assert.ok(core().handedQueries - before > 1000, `new names went to the proxy (${core().handedQueries - before})`);
  });
});

describe('DnsProxy with its UDP forwarding core: caps and timeouts', () => {
  it('answers SERVFAIL when the upstream stays silent, also for a name the core forwards, and frees the id', async () => {
    const quiet = await LoopbackUpstream.start(records);
    const sut = new DnsProxy({ udpEngine: 'core', upstream: quiet.address, policy: policyOf(LIST), upstreamTimeoutMs: 300, listenAddresses: [H] });
    await sut.start();
    try {
      assert.equal((await ask(H, sut.port, 'b.allowed.test')).rcode, 'NOERROR');
      quiet.behaviour = 'silent';
      assert.equal((await ask(H, sut.port, 'b.allowed.test')).rcode, 'SERVFAIL');
      assert.equal((await ask(H, sut.port, 'B.allowed.test', { edns: true })).rcode, 'SERVFAIL');
      const s = sut.coreStats();
      assert.deepEqual([s?.timeouts, s?.inFlight], [2, 0]);
      assert.equal(sut.stats().upstreamTimeouts, 2);
    } finally {
      await sut.close();
      await quiet.close();
    }
  });

  it('sheds a client over its in-flight share with SERVFAIL at once and serves another client', async () => {
    const held = await LoopbackUpstream.start(records);
    const sut = new DnsProxy({ udpEngine: 'core', upstream: held.address, policy: policyOf(LIST), upstreamTimeoutMs: 3000, listenAddresses: [H], maxInFlightPerClient: 2 });
    await sut.start();
    const greedy = await boundSocket();
    try {
      assert.equal((await ask(H, sut.port, 'share.allowed.test')).rcode, 'NOERROR');
      held.holdUntil(3);
      const answers: Answer[] = [];
      greedy.on('message', (m) => answers.push(decode(m)));
      for (let id = 1; id <= 3; id++) greedy.send(makeQuery('share.allowed.test', 'A', { id }), sut.port, H);
      await waitFor(() => answers.length === 1);
      assert.deepEqual([answers[0]!.id, answers[0]!.rcode], [3, 'SERVFAIL']);
      assert.equal(sut.coreStats()?.clientShed, 1);
      // Another client's query for the same name is admitted: the upstream now holds three and lets them go.
      assert.equal((await ask(H, sut.port, 'share.allowed.test')).rcode, 'NOERROR');
      await waitFor(() => answers.length === 3);
      assert.deepEqual(answers.map((a) => a.rcode), ['SERVFAIL', 'NOERROR', 'NOERROR']);
      assert.equal(sut.stats().shed, 1);
    } finally {
      greedy.close();
      await sut.close();
      await held.close();
    }
  });

  it('with the event loop held: answers cached names, gives new names SERVFAIL once its queue is full, forwards none undecided', async () => {
    // Upstream and client in another process: nothing on their side waits for this process's loop.
    const peer = fork(join(__dirname, 'testing', 'stall-peer.js'), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    let sut: DnsProxy | undefined;
    try {
      const upstreamPort = await new Promise<number>((resolve) => peer.once('message', (m: { upstreamPort: number }) => resolve(m.upstreamPort)));
      sut = new DnsProxy({ udpEngine: 'core', upstream: `127.0.0.1:${upstreamPort}`, policy: policyOf(LIST), listenAddresses: [H], maxLoopLagMs: 60_000 });
      await sut.start();
      assert.equal((await ask(H, sut.port, 'cached.allowed.test')).rcode, 'NOERROR');
      const report = new Promise<StallReport>((resolve) => peer.once('message', (m: StallReport) => resolve(m)));
      peer.send({ go: { port: sut.port, seconds: 2.5 } });
      // A busy agent (a long GC pause, a slow policy apply): the loop does nothing for 1.5 s.
      const stallFrom = Date.now();
      while (Date.now() - stallFrom < 1500) {
        // held
      }
      const stallTo = Date.now();
      const r = await report;
      const during = <T extends { at: number }>(xs: T[]): T[] => xs.filter((x) => x.at < stallTo);
      const cachedDuring = during(r.cached).filter((a) => a.rcode === 'NOERROR');
      assert.ok(cachedDuring.length >= 5, `cached name answered ${cachedDuring.length} times during the stall`);
      const freshDuring = during(r.fresh);
      assert.ok(freshDuring.length >= 100, `new names answered at once while the queue was full: ${freshDuring.length}`);
      assert.deepEqual([...new Set(freshDuring.map((a) => a.rcode))], ['SERVFAIL'], 'no new name resolved before it was decided');
      assert.deepEqual(
        r.upstreamFreshAt.filter((at) => at < stallTo),
        [],
        'the upstream saw no new name during the stall',
      );
      const decidedLater = r.fresh.filter((a) => a.at >= stallTo && a.rcode === 'NOERROR').length;
      assert.ok(decidedLater > 0 && decidedLater <= 1024, `queued names decided after the stall: ${decidedLater} (queue: 1,024)`);
      assert.ok((sut.coreStats()?.queueFull ?? 0) >= 1000);
    } finally {
      peer.kill('SIGKILL');
      await sut?.close();
    }
  });

  it('hands every answer it cannot pass as plain to the proxy, whose check fails closed on hostile ones (a name it forwards by itself)', async () => {
    // An upstream that answers plainly first (so the name is cached), then with what a broken or hostile resolver sends.
    let shape: 'plain' | 'pointer-loop' | 'overrun' | 'too-many' | 'cname-at-question' = 'plain';
    const rr = (type: number, rdata: Buffer): Buffer => Buffer.concat([Buffer.from([0xc0, 12, type >> 8, type & 0xff, 0, 1, 0, 0, 0, 60, rdata.length >> 8, rdata.length & 0xff]), rdata]);
    const hostile = dgram.createSocket('udp4');
    hostile.on('message', (q, rinfo) => {
      const head = Buffer.from(q);
      head.writeUInt16BE(0x8180, 2);
      head.writeUInt16BE(0, 10); // the query's OPT, if any, is not echoed
      const question = head.subarray(0, q.length);
      let records: Buffer[] = [];
      if (shape === 'plain') records = [rr(1, Buffer.from([192, 0, 2, 9]))];
      else if (shape === 'pointer-loop') {
        const loop = Buffer.from([0xc0, 0, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 9]);
        loop[1] = question.length; // the owner's pointer points at itself
        records = [loop];
      } else if (shape === 'overrun') records = [rr(1, Buffer.alloc(4)).subarray(0, 12 + 2)];
      else if (shape === 'too-many') records = Array.from({ length: 300 }, () => rr(1, Buffer.from([192, 0, 2, 9])));
      else records = [rr(5, Buffer.from([1, 120, 3, 98, 97, 100, 4, 116, 101, 115, 116, 0]))]; // CNAME x.bad.test
      const reply = Buffer.concat([question, ...records]);
      reply.writeUInt16BE(records.length, 6);
      hostile.send(reply, rinfo.port, rinfo.address);
    });
    await new Promise<void>((r) => hostile.bind(0, H, () => r()));
    const sut = new DnsProxy({ udpEngine: 'core', upstream: `${H}:${hostile.address().port}`, policy: policyOf(LIST), listenAddresses: [H], pinResolveNames: false });
    await sut.start();
    try {
      const raw = async (): Promise<Buffer> => (await udpQuery(H, sut.port, makeQuery('hostile.allowed.test', 'A'), 3000)).raw;
      assert.equal((await raw()).readUInt16BE(2) & 0xf, 0, 'the plain answer passes');
      for (const [next, rcode] of [
        ['pointer-loop', 2],
        ['overrun', 2],
        ['too-many', 2],
        ['cname-at-question', 3],
      ] as const) {
        shape = next;
        const before = sut.coreStats();
        const answer = await raw();
        const after = sut.coreStats();
        assert.equal(answer.readUInt16BE(2) & 0xf, rcode, `${next}: rcode`);
        assert.equal(answer.readUInt16BE(6), 0, `${next}: no record reaches the client`);
        assert.deepEqual(
          [(after?.fastForwarded ?? 0) - (before?.fastForwarded ?? 0), (after?.handedAnswers ?? 0) - (before?.handedAnswers ?? 0)],
          [1, 1],
          `${next}: forwarded by the core, its answer checked by the proxy`,
        );
      }
      assert.equal(sut.stats().answersUnreadable, 3);
    } finally {
      await sut.close();
      hostile.close();
    }
  });

  it('listens on IPv6 and IPv4 at one port and answers each from the address it was asked on', async () => {
    const up6 = await LoopbackUpstream.start(records, '::1');
    const sut = new DnsProxy({ udpEngine: 'core', upstream: up6.address, policy: policyOf(LIST) });
    const seen: string[] = [];
    sut.onQuery((q) => seen.push(`${q.client.address} ${q.qname} ${q.decision}`));
    await sut.start();
    try {
      for (const host of ['::1', H]) {
        assert.equal((await ask(host, sut.port, 'v6.allowed.test')).rcode, 'NOERROR');
        assert.equal((await ask(host, sut.port, 'v6.allowed.test')).rcode, 'NOERROR');
        assert.equal((await ask(host, sut.port, 'v6.bad.test')).rcode, 'NXDOMAIN');
      }
      assert.ok((sut.coreStats()?.fastForwarded ?? 0) >= 2);
      await waitFor(() => seen.length === 6);
      // The core's notices name the client as node's own sockets do ('::1', not a long form).
      // (In any order: the core's notices are taken every 10 ms, the proxy's own decisions at once.)
      assert.deepEqual(seen.sort(), [
        '127.0.0.1 v6.allowed.test allowed',
        '127.0.0.1 v6.allowed.test allowed',
        '127.0.0.1 v6.bad.test blocked',
        '::1 v6.allowed.test allowed',
        '::1 v6.allowed.test allowed',
        '::1 v6.bad.test blocked',
      ]);
    } finally {
      await sut.close();
      await up6.close();
    }
  });

  it('refuses a port taken on UDP with an error naming it', async () => {
    const taken = dgram.createSocket('udp4');
    await new Promise<void>((r) => taken.bind(0, H, () => r()));
    const sut = new DnsProxy({ udpEngine: 'core', upstream: '127.0.0.1:53', listenAddresses: [H], port: taken.address().port });
    try {
      await assert.rejects(sut.start(), /dns forwarding core cannot listen on udp 127\.0\.0\.1 port \d+: EADDRINUSE/);
    } finally {
      taken.close();
      await sut.close();
    }
  });
});

async function waitFor(cond: () => boolean, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 10));
  }
}
