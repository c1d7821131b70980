// The proxy against a real loopback upstream that answers allowed names with
// CNAME chains to listed names (and one that answers with hostile bytes):
// NXDOMAIN in enforce mode over UDP and TCP, the answer passed in audit mode,
// and an event naming both the asked name and the listed name it led to.
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { after, afterEach, before, describe, it } from 'node:test';
import { protoBlocklistCodec } from '../policy/entry-types';
import { compilePolicy, type Policy } from '../policy/policy';
import type { AddressBlocker } from './address-learner';
import type { DnsPolicyEvent } from './dns-events';
import { DnsProxy } from './dns-proxy';
import { UDP_ENGINES } from './testing/udp-engines';
import { HEADER_BYTES } from './dns-wire';
import { answerData, makeQuery, tcpQuery, udpQuery } from './testing/dns-client';
import { LoopbackUpstream, type UpstreamRecords } from './testing/loopback-upstream';

const TABLE: Record<string, UpstreamRecords> = {
  'releases.internal.example': { CNAME: 'cdn.internal.example' },
  'cdn.internal.example': { CNAME: 'objects.githubusercontent.com' },
  'objects.githubusercontent.com': { A: ['185.199.108.133'], AAAA: ['2001:db8::133'] },
  'docs.internal.example': { CNAME: 'Pages.GitHub.com' },
  'pages.github.com': { A: ['185.199.109.153'] },
  'mirror.internal.example': { CNAME: 'mirror.example.net' },
  'mirror.example.net': { A: ['192.0.2.30'] },
  'tools.internal.example': { CNAME: 'api.resolve.example' },
  'api.resolve.example': { A: ['198.51.100.9'], ttl: 60 },
};

const POLICY_TEXT = ['objects.githubusercontent.com', '*.github.com', 'api.resolve.example !resolve'].join('\n');

function policy(): Policy {
  const result = compilePolicy(protoBlocklistCodec, POLICY_TEXT, 'v3');
  assert.ok(result.ok, result.ok ? '' : result.message);
  return result.policy;
}

class RecordingBlocker implements AddressBlocker {
  readonly learned: string[][] = [];
  learn(addrs: string[]): void {
    this.learned.push([...addrs].sort());
  }
}

for (const udpEngine of UDP_ENGINES) describe(`DnsProxy: CNAME chains to listed names, udp engine ${udpEngine}`, () => {
  let upstream: LoopbackUpstream;
  let sut: DnsProxy;
  let events: DnsPolicyEvent[];
  let blocker: RecordingBlocker;

  before(async () => {
    upstream = await LoopbackUpstream.start((name) => TABLE[name]);
  });
  after(async () => upstream.close());
  afterEach(async () => sut.close());

  async function start(mode: 'enforce' | 'audit'): Promise<number> {
    events = [];
    blocker = new RecordingBlocker();
    sut = new DnsProxy({ udpEngine, upstream: upstream.address, policy: policy(), mode, listenAddresses: ['127.0.0.1'], addressBlocker: blocker, pinResolveNames: false });
    sut.onEvent((e) => events.push(e));
    return (await sut.start()).port;
  }

  it('enforce: an allowed name whose chain reaches a listed name is NXDOMAIN over UDP and TCP, and the event names both', async () => {
    const port = await start('enforce');
    for (const [query, transport] of [[udpQuery, 'udp'], [tcpQuery, 'tcp']] as const) {
      const { answer } = await query('127.0.0.1', port, makeQuery('Releases.Internal.Example', 'A', { edns: true }));
      assert.equal(answer.rcode, 'NXDOMAIN', transport);
      assert.deepEqual(answerData(answer).filter((d) => d !== undefined), [], `${transport}: no record of the listed name reaches the client`);
      const aaaa = await query('127.0.0.1', port, makeQuery('releases.internal.example', 'AAAA'));
      assert.equal(aaaa.answer.rcode, 'NXDOMAIN');
    }
    assert.equal(events.length, 4);
    assert.deepEqual(
      { kind: events[0]!.kind, qname: events[0]!.qname, qtype: events[0]!.qtype, entry: events[0]!.entry, cnameTarget: events[0]!.cnameTarget, transport: events[0]!.transport },
      { kind: 'dns_block', qname: 'releases.internal.example', qtype: 'A', entry: 'objects.githubusercontent.com', cnameTarget: 'objects.githubusercontent.com', transport: 'udp' },
    );
    assert.equal(events[2]!.transport, 'tcp');
    const stats = sut.stats();
    assert.equal(stats.chainListed, 4);
    assert.equal(stats.blocked, 4);
  });

  it('enforce: a wildcard entry matches a chain target (any case); a clean chain passes whole', async () => {
    const port = await start('enforce');
    const wild = await udpQuery('127.0.0.1', port, makeQuery('docs.internal.example', 'A'));
    assert.equal(wild.answer.rcode, 'NXDOMAIN');
    assert.equal(events[0]!.entry, '*.github.com');
    assert.equal(events[0]!.cnameTarget, 'pages.github.com');
    const clean = await udpQuery('127.0.0.1', port, makeQuery('mirror.internal.example', 'A'));
    assert.equal(clean.answer.rcode, 'NOERROR');
    assert.deepEqual(answerData(clean.answer), ['mirror.example.net', '192.0.2.30']);
    assert.equal(events.length, 1);
  });

  it('audit: the answer passes whole and the event says it would have been blocked', async () => {
    const port = await start('audit');
    const { answer } = await tcpQuery('127.0.0.1', port, makeQuery('releases.internal.example', 'A'));
    assert.equal(answer.rcode, 'NOERROR');
    assert.deepEqual(answerData(answer), ['cdn.internal.example', 'objects.githubusercontent.com', '185.199.108.133']);
    assert.equal(events.length, 1);
    assert.equal(events[0]!.kind, 'dns_audit');
    assert.equal(events[0]!.cnameTarget, 'objects.githubusercontent.com');
    assert.equal(sut.stats().audited, 1);
  });

  it("a '!resolve' name reached by a chain has its own addresses learned", async () => {
    const port = await start('enforce');
    const { answer } = await udpQuery('127.0.0.1', port, makeQuery('tools.internal.example', 'A'));
    assert.equal(answer.rcode, 'NXDOMAIN');
    const deadline = Date.now() + 3000;
    while (blocker.learned.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    assert.deepEqual(blocker.learned, [['198.51.100.9']]);
  });
});

for (const udpEngine of UDP_ENGINES) describe(`DnsProxy: an upstream answer the chain check cannot read, udp engine ${udpEngine}`, () => {
  let hostile: dgram.Socket;
  let hostilePort: number;
  let sut: DnsProxy;

  before(async () => {
    // Echoes the question and claims one answer record whose owner name is a pointer to itself.
    hostile = dgram.createSocket('udp4');
    hostile.on('message', (q, rinfo) => {
      const reply = Buffer.concat([q, Buffer.from([0xc0, 0, 0, 1, 0, 1, 0, 0, 0, 60, 0, 0])]);
      reply.writeUInt16BE(0x8180 | (q.readUInt16BE(2) & 0x0100), 2);
      reply.writeUInt16BE(1, 6);
      reply.writeUInt16BE(0, 10);
      reply[q.length + 1] = q.length; // the pointer's own offset
      hostile.send(reply, rinfo.port, rinfo.address);
    });
    await new Promise<void>((r) => hostile.bind(0, '127.0.0.1', () => r()));
    hostilePort = hostile.address().port;
    assert.ok(hostilePort > 0 && HEADER_BYTES === 12);
  });
  after(() => hostile.close());
  afterEach(async () => sut.close());

  for (const mode of ['enforce', 'audit'] as const) {
    it(`${mode}: a pointer loop in the answer gives ${mode === 'enforce' ? 'SERVFAIL' : 'the answer as it came'}, at once, and is counted`, async () => {
      sut = new DnsProxy({ udpEngine, upstream: `127.0.0.1:${hostilePort}`, policy: policy(), mode, listenAddresses: ['127.0.0.1'], pinResolveNames: false });
      const { port } = await sut.start();
      const raw = await rawUdpExchange(port, makeQuery('anything.example', 'A'));
      assert.equal(raw.readUInt16BE(2) & 0xf, mode === 'enforce' ? 2 : 0);
      assert.equal(raw.readUInt16BE(6), mode === 'enforce' ? 0 : 1);
      assert.equal(sut.stats().answersUnreadable, 1);
    });
  }
});

/** One UDP exchange without decoding the answer (dns-packet would follow the pointer loop forever). */
function rawUdpExchange(port: number, query: Buffer): Promise<Buffer> {
  const socket = dgram.createSocket('udp4');
  return new Promise<Buffer>((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.close();
      reject(new Error('no answer within 3 s'));
    }, 3000);
    socket.on('message', (msg) => {
      clearTimeout(timer);
      socket.close();
      resolve(msg);
    });
    socket.bind(0, '127.0.0.1', () => socket.send(query, port, '127.0.0.1'));
  });
}
