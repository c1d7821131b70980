// Real kernel: the name backstop. The proxy is dead (its port has no socket)
// and the fail mode is open, so port-53 UDP goes straight to the resolver a
// process asked; the egress hook must still drop every query for a listed
// name, keep answering the rest, swap with a new policy, and survive hostile
// and truncated queries.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, randomInt } from 'node:crypto';
import dnsPacket from 'dns-packet';
import { DataPlane } from './data-plane';
import { KernelEvent } from './codec';
import { nameKeyHex } from './name-backstop';
import { closedPort, KernelSandbox, sleep, UdpEcho, uniqueLoopback4 } from './testing/kernel-fixture';

function query(name: string, id = randomInt(1, 0xffff)): string {
  return dnsPacket.encode({ type: 'query', id, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: 'A', name }] }).toString('hex');
}

/** A raw query: header with `qdcount`, then `question` bytes as they are. */
function rawQuery(question: Buffer, qdcount = 1): string {
  const h = Buffer.alloc(12);
  h.writeUInt16BE(randomInt(1, 0xffff), 0);
  h.writeUInt16BE(0x0100, 2);
  h.writeUInt16BE(qdcount, 4);
  return Buffer.concat([h, question]).toString('hex');
}

const wire = (...labels: string[]): Buffer => Buffer.concat([...labels.map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)])), Buffer.from([0])]);
const TAIL = Buffer.from([0, 1, 0, 1]); // QTYPE A, QCLASS IN

describe('name backstop (fail open, proxy dead)', () => {
  let box: KernelSandbox;
  let resolver: UdpEcho;
  let sut: DataPlane;
  const events: KernelEvent[] = [];
  let config: () => { proxyPort: number; mode: 'enforce' | 'audit'; failMode: 'open'; heartbeatTimeoutMs: number };

  before(async () => {
    box = new KernelSandbox('names');
    resolver = await UdpEcho.start(uniqueLoopback4(), 53);
    const port = await closedPort(); // no proxy socket there: the kernel sees the proxy dead
    config = () => ({ proxyPort: port, mode: 'enforce', failMode: 'open', heartbeatTimeoutMs: 0 });
    sut = DataPlane.attach({ cgroupPath: box.cgroupPath, pinDir: box.pinDir, config: config() });
    // Without HOME, the fixture's shell looks its user up and glibc tries nscd:
    // the unix guard's refusals are not what these tests are about.
    sut.onEvent((e) => {
      if (e.kind !== 'unix_refused' && e.kind !== 'unix_audit') events.push(e);
    });
    const applied = await sut.applyIpPolicyAsync({ v4: [], v6: [], names: { exact: ['blocked.test', 'github.com'], wildcard: ['*.github.com', '*.corp.example'] } });
    assert.equal(applied.names, 3, "github.com and *.github.com share one key");
  });

  after(async () => {
    sut?.close();
    await resolver?.close();
    await box?.destroy();
  });

  /** One query from a process in the cgroup to the resolver: 'answered', or the sendto errno. */
  async function ask(payloadHex: string): Promise<string> {
    const before = resolver.received.length;
    const r = await box.run({ op: 'udp_sendto', host: resolver.socket.address().address, port: 53, payload: payloadHex, timeout: 1 });
    if (r.error) {
      assert.equal(resolver.received.length, before, 'a dropped query never reaches the resolver');
      return r.error;
    }
    assert.equal(r.reply, payloadHex, 'the resolver answered (echo)');
    return 'answered';
  }

  it('holds the policy names in the kernel map, keyed by the hash of their wire form', () => {
    assert.deepEqual(sut.nameBackstopKeys(), ['blocked.test', 'github.com', 'corp.example'].map(nameKeyHex).sort());
  });

  it('lets an unlisted name resolve direct (the proxy is dead, fail open)', async () => {
    assert.equal(await ask(query('allowed.test')), 'answered');
    assert.ok(sut.counters().failopen_bypass! >= 1n);
  });

  it('drops a query for a listed name, in any letter case, counts it and queues an event', async () => {
    const drops = sut.counters().name_drops!;
    assert.equal(await ask(query('blocked.test')), 'EPERM');
    assert.equal(await ask(query('BlOcKeD.TeSt')), 'EPERM');
    assert.equal(await ask(query('blocked.test.')), 'EPERM');
    assert.equal(sut.counters().name_drops! - drops, 3n);
    await sleep(50);
    const e = events.find((x) => x.kind === 'name_drop');
    assert.ok(e, 'a name_drop event');
    assert.equal(e.daddr, resolver.socket.address().address);
    assert.equal(e.dport, 53);
    assert.equal(e.comm, 'python3');
  });

  it('matches wildcards on label boundaries only, and exact names only exactly', async () => {
    assert.equal(await ask(query('api.github.com')), 'EPERM', '*.github.com');
    assert.equal(await ask(query('a.b.API.GitHub.com')), 'EPERM', 'deeper, mixed case');
    assert.equal(await ask(query('github.com')), 'EPERM', 'listed exactly as well');
    assert.equal(await ask(query('notgithub.com')), 'answered', 'not a label boundary');
    assert.equal(await ask(query('github.com.evil.test')), 'answered', 'a prefix is not a suffix');
    assert.equal(await ask(query('corp.example')), 'answered', 'the apex of a wildcard is not listed by it');
    assert.equal(await ask(query('x.corp.example')), 'EPERM');
    assert.equal(await ask(query('sub.blocked.test')), 'answered', 'an exact entry does not cover subdomains');
  });

  it('swaps to a new policy atomically: the old names resolve, the new ones are dropped', async () => {
    const applied = sut.applyIpPolicy({ v4: [], v6: [], names: { exact: ['new.test'], wildcard: [] } });
    assert.equal(applied.names, 1);
    assert.deepEqual(sut.nameBackstopKeys(), [nameKeyHex('new.test')]);
    assert.equal(await ask(query('blocked.test')), 'answered');
    assert.equal(await ask(query('api.github.com')), 'answered');
    assert.equal(await ask(query('NEW.test')), 'EPERM');
    // A policy without names leaves the names in force.
    await sut.applyIpPolicyAsync({ v4: [], v6: [] });
    assert.deepEqual(sut.nameBackstopKeys(), [nameKeyHex('new.test')]);
    // Back to the suite's names, through the builder thread.
    await sut.applyIpPolicyAsync({ v4: [], v6: [], names: { exact: ['blocked.test', 'github.com'], wildcard: ['*.github.com', '*.corp.example'] } });
    assert.equal(await ask(query('blocked.test')), 'EPERM');
  });

  it('drops what it cannot read as a one-question query (and counts it), and keeps working after', async () => {
    const before = sut.counters().unreadable_dns_drops!;
    const hostile: [string, string][] = [
      ['header only', rawQuery(Buffer.alloc(0))],
      ['truncated in a label', rawQuery(Buffer.from([7, 0x62, 0x6c, 0x6f]))],
      ['no terminating zero in the packet', rawQuery(Buffer.from([3, 0x61, 0x62, 0x63]))],
      ['compression pointer in the question', rawQuery(Buffer.concat([Buffer.from([0xc0, 12]), TAIL]))],
      ['pointer after a label', rawQuery(Buffer.concat([Buffer.from([1, 0x61, 0xc0, 12]), TAIL]))],
      ['two questions', rawQuery(Buffer.concat([wire('allowed', 'test'), TAIL, wire('blocked', 'test'), TAIL]), 2)],
      ['zero questions', rawQuery(Buffer.alloc(0), 0)],
      ['a name longer than 255 bytes', rawQuery(Buffer.concat([wire(...Array.from({ length: 5 }, () => 'a'.repeat(63))), TAIL]))],
      ['not DNS at all', 'deadbe'],
    ];
    for (const [what, payload] of hostile) assert.equal(await ask(payload), 'EPERM', what);
    assert.equal(sut.counters().unreadable_dns_drops! - before, BigInt(hostile.length));
    // The longest legal name (253 characters) is read whole.
    const longest = [...Array.from({ length: 3 }, () => 'b'.repeat(63)), 'c'.repeat(61)].join('.');
    assert.equal(await ask(query(longest)), 'answered');
  });

  it('survives a burst of random datagrams to port 53 and still tells listed from unlisted', async () => {
    const payloads = Array.from({ length: 400 }, (_, i) => {
      const body = randomBytes(randomInt(0, 300));
      // Half with a plausible header (one question), half fully random.
      if (i % 2 === 0 && body.length >= 12) body.writeUInt16BE(1, 4);
      return body.toString('hex');
    });
    const r = await box.run({ op: 'udp_many', host: resolver.socket.address().address, port: 53, payloads, timeout: 30 });
    assert.equal(r.error, undefined);
    assert.equal(r.sent?.length, payloads.length, 'every send returned (no hang)');
    assert.equal(await ask(query('blocked.test')), 'EPERM');
    assert.equal(await ask(query('fine.test')), 'answered');
  });

  it('in audit mode lets a listed name through and counts it', async () => {
    sut.setConfig({ ...config(), mode: 'audit' });
    try {
      const audits = sut.counters().name_audits!;
      assert.equal(await ask(query('blocked.test')), 'answered');
      assert.equal(sut.counters().name_audits! - audits, 1n);
    } finally {
      sut.setConfig(config());
    }
  });

  it('refuses port-53 TCP while the proxy is dead (a stream is not read query by query) and counts it', async () => {
    const refused = sut.counters().failopen_tcp_refused!;
    const r = await box.run({ op: 'connect', host: resolver.socket.address().address, port: 53 });
    assert.equal(r.result, 'EPERM');
    assert.equal(sut.counters().failopen_tcp_refused! - refused, 1n);
  });
});
