// Issue 19's prototypes on real sockets (loopback, a local upstream): they
// must decide as the proxy does before their benchmark rows mean anything.
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { after, before, describe, it } from 'node:test';
import { makeQuery, udpQuery } from '../../dns/testing/dns-client';
import { LoopbackUpstream } from '../../dns/testing/loopback-upstream';
import { MmsgForwarder, type PrototypeStats } from './mmsg-forwarder';
import { coreRecords as records } from '../../dns/testing/core-records';

const LIST = '*.bad.test\n';

interface Running {
  readonly port: number;
  stats(): Promise<PrototypeStats>;
  close(): Promise<void>;
}


async function startPrototype(host: string, upstream: LoopbackUpstream, timeoutMs = 2000): Promise<Running> {
  const f = await MmsgForwarder.start({ listenHost: host, upstreamHost: upstream.host, upstreamPort: upstream.port, blocklistText: LIST, timeoutMs });
  return { port: f.port, stats: () => f.stats(), close: () => f.close() };
}

const rcode = async (host: string, port: number, name: string, opts: { edns?: boolean } = {}): Promise<{ rcode: string; data: string[]; name: string }> => {
  const ex = await udpQuery(host, port, makeQuery(name, 'A', opts), 2000);
  return { rcode: ex.answer.rcode ?? '?', data: (ex.answer.answers ?? []).map((a) => `${a.type} ${String((a as { data?: unknown }).data)}`), name: ex.answer.questions?.[0]?.name ?? '' };
};

{
  describe('issue 19 prototype (recvmmsg/sendmmsg on a worker) on loopback', () => {
    let upstream: LoopbackUpstream;
    let proto: Running;
    const H = '127.0.0.1';

    before(async () => {
      upstream = await LoopbackUpstream.start(records);
      proto = await startPrototype(H, upstream);
    });
    after(async () => {
      await proto.close();
      await upstream.close();
    });

    it('forwards an allowed name (twice) and keeps the case the client sent', async () => {
      assert.deepEqual(await rcode(H, proto.port, 'a.allowed.test'), { rcode: 'NOERROR', data: ['A 192.0.2.7'], name: 'a.allowed.test' });
      assert.deepEqual(await rcode(H, proto.port, 'A.aLLowed.Test', { edns: true }), { rcode: 'NOERROR', data: ['A 192.0.2.7'], name: 'A.aLLowed.Test' });
      const s = await proto.stats();
      assert.equal(s.forwarded, 2);
    });

    it('answers a listed name NXDOMAIN without asking the upstream', async () => {
      const asked = upstream.log.length;
      assert.equal((await rcode(H, proto.port, 'deep.x.bad.test')).rcode, 'NXDOMAIN');
      assert.equal(upstream.log.length, asked);
    });

    it('refuses an allowed name whose answer chains to a listed name, also once the name is cached as allowed', async () => {
      assert.equal((await rcode(H, proto.port, 'chain.allowed.test')).rcode, 'NXDOMAIN');
      assert.equal((await rcode(H, proto.port, 'chain.allowed.test')).rcode, 'NXDOMAIN');
      const s = await proto.stats();
      assert.equal(s.answersRefused, 2);
    });

    it('drops garbage from a careless process and keeps answering', async () => {
      const junk = dgram.createSocket('udp4');
      await new Promise<void>((r) => junk.bind(0, H, () => r()));
      const response = makeQuery('a.allowed.test', 'A');
      response[2] |= 0x80; // a response sent to the proxy: never answered
      const big = Buffer.alloc(9000, 7); // over the 4 KiB cap: truncated by the kernel, dropped
      for (const m of [Buffer.alloc(3), response, big, Buffer.from([0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0x3f])]) {
        await new Promise<void>((r) => junk.send(m, proto.port, H, () => r()));
      }
      junk.close();
      assert.equal((await rcode(H, proto.port, 'after-junk.allowed.test')).rcode, 'NOERROR');
    });

    it('passes an answer larger than the 4 KiB query buffers (EDNS), twice', async () => {
      for (let i = 0; i < 2; i++) {
        const ex = await udpQuery(H, proto.port, makeQuery('big.allowed.test', 'TXT', { edns: true }), 2000);
        assert.equal(ex.answer.rcode, 'NOERROR');
        assert.ok(ex.raw.length > 6000, `answer of ${ex.raw.length} bytes`);
        assert.equal(ex.answer.answers?.length, 24);
      }
    });

    it('passes a large answer whose CNAME chain needs the check', async () => {
      const before = await proto.stats();
      const ex = await udpQuery(H, proto.port, makeQuery('big-chain.allowed.test', 'TXT', { edns: true }), 2000);
      assert.equal(ex.answer.rcode, 'NOERROR');
      assert.equal(ex.answer.answers?.length, 25);
      const after = await proto.stats();
      assert.equal(after.answersScreened - before.answersScreened, 1);
    });

    it('frees the upstream id of a query never answered after its timeout', async () => {
      const quiet = await LoopbackUpstream.start(records);
      quiet.behaviour = 'silent';
      const p = await startPrototype(H, quiet, 200);
      try {
        await assert.rejects(udpQuery(H, p.port, makeQuery('b.allowed.test', 'A'), 300));
        const deadline = Date.now() + 3000;
        while ((await p.stats()).timeouts < 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
        assert.equal((await p.stats()).timeouts, 1);
      } finally {
        await p.close();
        await quiet.close();
      }
    });

    it('listens and forwards over IPv6', async () => {
      const up6 = await LoopbackUpstream.start(records, '::1');
      const p = await startPrototype('::1', up6);
      try {
        assert.equal((await rcode('::1', p.port, 'v6.allowed.test')).rcode, 'NOERROR');
        assert.equal((await rcode('::1', p.port, 'v6.allowed.test')).rcode, 'NOERROR');
        assert.equal((await rcode('::1', p.port, 'v6.bad.test')).rcode, 'NXDOMAIN');
      } finally {
        await p.close();
        await up6.close();
      }
    });

  });
}
