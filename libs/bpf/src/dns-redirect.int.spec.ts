// Real kernel: DNS redirection to the proxy, source restoration on replies,
// attribution of queries to processes, and fail mode.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import dnsPacket from 'dns-packet';
import { DataPlane } from './data-plane';
import { ProcessInfo } from './codec';
import { FakeProxy, KernelSandbox, requireIPv6Loopback, sleep, UdpEcho, uniqueLoopback4 } from './testing/kernel-fixture';

function query(id: number): string {
  return dnsPacket
    .encode({ type: 'query', id, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: 'A', name: 'deploy.example.test' }] })
    .toString('hex');
}

describe(DataPlane.name, () => {
  let box: KernelSandbox;
  let proxy: FakeProxy;
  let sut: DataPlane;
  const config = () => ({ proxyPort: proxy.port, mode: 'enforce' as const, failMode: 'open' as const, heartbeatTimeoutMs: 0 });

  before(async () => {
    box = new KernelSandbox('dns');
    proxy = await FakeProxy.start();
    sut = DataPlane.attach({ cgroupPath: box.cgroupPath, pinDir: box.pinDir, config: config() });
  });

  after(async () => {
    sut?.close();
    await proxy?.close();
    await box?.destroy();
  });

  describe('IPv4 redirect', () => {
    it('sends a connected UDP query for 127.0.0.53:53 to the proxy and the reply comes back', async () => {
      const before = proxy.udp4.received.length;
      const q = query(randomInt(1, 0xffff));

      const res = await box.run({ op: 'udp_connected', host: '127.0.0.53', port: 53, payload: q });

      assert.equal(res.error, undefined);
      assert.equal(res.reply, q, 'the proxy echo came back to the client');
      assert.equal(proxy.udp4.received.length, before + 1, 'the proxy on 127.0.0.1 got the query');
      assert.deepEqual(res.from, ['127.0.0.53', 53], 'recvfrom on the connected socket shows the resolver it asked');
    });

    it('restores 127.0.0.53:53 as the source of the reply for an unconnected sendto/recvfrom client', async () => {
      const before = proxy.udp4.received.length;
      const q = query(randomInt(1, 0xffff));

      const res = await box.run({ op: 'udp_sendto', host: '127.0.0.53', port: 53, payload: q });

      assert.equal(res.error, undefined);
      assert.equal(res.reply, q);
      assert.deepEqual(res.from, ['127.0.0.53', 53]);
      assert.equal(proxy.udp4.received.length, before + 1);
    });

    it('sends a TCP query for 127.0.0.53:53 to the proxy', async () => {
      const before = proxy.tcp4.received.length;
      const q = query(randomInt(1, 0xffff));

      const res = await box.run({ op: 'tcp_dns', host: '127.0.0.53', port: 53, payload: q });

      assert.equal(res.error, undefined);
      assert.equal(res.reply, q);
      assert.equal(proxy.tcp4.received.length, before + 1);
    });

    it('leaves a process outside the cgroup alone: its query reaches the real resolver', async () => {
      const resolver = await UdpEcho.start(uniqueLoopback4(), 53);
      try {
        const before = proxy.total;
        const q = query(randomInt(1, 0xffff));

        const res = await box.run({ op: 'udp_sendto', host: resolver.socket.address().address, port: 53, payload: q }, false);

        assert.equal(res.error, undefined);
        assert.equal(resolver.received.length, 1, 'the resolver got the query');
        assert.equal(proxy.total, before, 'the proxy got nothing');
      } finally {
        await resolver.close();
      }
    });

    it('does not redirect 127.0.0.53:53 for a process outside the cgroup (nothing answers there)', async () => {
      const before = proxy.total;

      const res = await box.run({ op: 'udp_sendto', host: '127.0.0.53', port: 53, payload: query(7), timeout: 0.5 }, false);

      assert.ok(res.error === 'timeout' || res.error === 'ECONNREFUSED', `expected no answer, got ${JSON.stringify(res)}`);
      assert.equal(proxy.total, before);
    });
  });

  describe('IPv6 redirect', () => {
    before(() => requireIPv6Loopback());

    it('sends an unconnected UDP query for [::1]:53 to [::1]:proxyPort and restores the source', async () => {
      const before = proxy.udp6.received.length;
      const q = query(randomInt(1, 0xffff));

      const res = await box.run({ op: 'udp_sendto', host: '::1', port: 53, payload: q });

      assert.equal(res.error, undefined);
      assert.equal(res.reply, q);
      assert.equal(proxy.udp6.received.length, before + 1, 'the proxy on ::1 got the query');
      assert.deepEqual(res.from, ['::1', 53]);
    });

    it('sends a connected UDP and a TCP query for [::1]:53 to the proxy', async () => {
      const udpBefore = proxy.udp6.received.length;
      const tcpBefore = proxy.tcp6.received.length;

      const udp = await box.run({ op: 'udp_connected', host: '::1', port: 53, payload: query(11) });
      const tcp = await box.run({ op: 'tcp_dns', host: '::1', port: 53, payload: query(12) });

      assert.equal(udp.error, undefined);
      assert.equal(tcp.error, undefined);
      assert.equal(proxy.udp6.received.length, udpBefore + 1);
      assert.equal(proxy.tcp6.received.length, tcpBefore + 1);
    });

    it('keeps a dual-stack socket asking ::ffff:127.0.0.53 on IPv4 and restores the mapped source', async () => {
      const before = proxy.udp4.received.length;

      const res = await box.run({ op: 'udp_sendto', host: '::ffff:127.0.0.53', port: 53, payload: query(13) });

      assert.equal(res.error, undefined);
      assert.equal(proxy.udp4.received.length, before + 1);
      assert.deepEqual(res.from, ['::ffff:127.0.0.53', 53]);
    });
  });

  describe('attribution', () => {
    it('tells the proxy which process sent a UDP query (by client port and DNS id)', async () => {
      const id = randomInt(1, 0xffff);
      let seen: ProcessInfo | undefined;
      proxy.udp4.onMessage = (msg, from) => {
        if (msg.readUInt16BE(0) === id) seen = sut.lookupDnsOrigin(from.port, id);
      };

      const res = await box.run({ op: 'udp_sendto', host: '127.0.0.53', port: 53, payload: query(id) });
      proxy.udp4.onMessage = undefined;

      assert.equal(res.error, undefined);
      assert.ok(seen, 'lookupDnsOrigin found the query while the proxy handled it');
      assert.equal(seen.tgid, res.pid);
      assert.equal(seen.pid, res.pid, 'single-threaded client: thread id = process id');
      assert.equal(seen.comm, 'python3');
      assert.equal(seen.uid, 0);
      assert.ok(seen.cgroupId > 0n);
    });

    it('tells the proxy which process sent a TCP query (DNS id after the length prefix)', async () => {
      const id = randomInt(1, 0xffff);
      let seen: ProcessInfo | undefined;
      proxy.tcp4.onMessage = (msg, remotePort) => {
        if (msg.readUInt16BE(0) === id) seen = sut.lookupDnsOrigin(remotePort, id);
      };

      const res = await box.run({ op: 'tcp_dns', host: '127.0.0.53', port: 53, payload: query(id) });
      proxy.tcp4.onMessage = undefined;

      assert.equal(res.error, undefined);
      assert.ok(seen, 'lookupDnsOrigin found the TCP query');
      assert.equal(seen.tgid, res.pid);
      assert.equal(seen.comm, 'python3');
    });

    it('lets queries to the proxy through and attributes them even when the proxy address is listed', async () => {
      const id = randomInt(1, 0xffff);
      let seen: ProcessInfo | undefined;
      sut.applyIpPolicy({ v4: ['127.0.0.1/32'], v6: [] });
      try {
        const drops = sut.counters().skb_drops!;
        proxy.udp4.onMessage = (msg, from) => {
          if (msg.readUInt16BE(0) === id) seen = sut.lookupDnsOrigin(from.port, id);
        };
        const udp = await box.run({ op: 'udp_sendto', host: '127.0.0.53', port: 53, payload: query(id) });
        proxy.udp4.onMessage = undefined;
        const tcp = await box.run({ op: 'tcp_dns', host: '127.0.0.53', port: 53, payload: query(randomInt(1, 0xffff)) });

        assert.equal(udp.error, undefined);
        assert.equal(seen?.tgid, udp.pid, 'attributed: the egress hook handles proxy traffic before any blocked lookup');
        assert.equal(tcp.error, undefined);
        assert.equal(sut.counters().skb_drops! - drops, 0n, 'no packet to the proxy was dropped');
      } finally {
        proxy.udp4.onMessage = undefined;
        sut.applyIpPolicy({ v4: [], v6: [] });
      }
    });

    it('knows nothing about a query it never saw', () => {
      assert.equal(sut.lookupDnsOrigin(1, 1), undefined);
    });

    it('counts redirects, restored replies and attributions', () => {
      const c = sut.counters();

      assert.ok(c.dns_redirects! >= 8n, `dns_redirects=${c.dns_redirects}`);
      assert.ok(c.recv_restored! >= 4n, `recv_restored=${c.recv_restored}`);
      assert.ok(c.dns_attributed! >= 2n, `dns_attributed=${c.dns_attributed}`);
    });
  });

  describe('fail mode', () => {
    let resolver: UdpEcho;
    before(async () => {
      resolver = await UdpEcho.start(uniqueLoopback4(), 53);
    });
    after(async () => {
      await resolver?.close();
      sut.setConfig(config());
    });

    it('open: with a stale heartbeat a query goes to its original resolver, and one proxy_down event says so', async () => {
      const events: string[] = [];
      sut.onEvent((e) => {
        // the fixture's shell may try nscd (no HOME): the unix guard's refusals are not this test's
        if (e.kind !== 'unix_refused' && e.kind !== 'unix_audit') events.push(`${e.kind} ${e.daddr}:${e.dport} ${e.comm}`);
      });
      sut.setConfig({ ...config(), failMode: 'open', heartbeatTimeoutMs: 200 });
      sut.heartbeat();
      await sleep(400);
      const proxyBefore = proxy.total;
      const bypassBefore = sut.counters().failopen_bypass!;

      const first = await box.run({ op: 'udp_sendto', host: resolver.socket.address().address, port: 53, payload: query(21) });
      const second = await box.run({ op: 'udp_sendto', host: resolver.socket.address().address, port: 53, payload: query(22) });
      await sleep(200);

      assert.equal(first.error, undefined);
      assert.equal(second.error, undefined);
      assert.equal(resolver.received.length, 2, 'both queries reached the real resolver');
      assert.equal(proxy.total, proxyBefore, 'none went to the proxy');
      assert.equal(sut.counters().failopen_bypass! - bypassBefore, 2n);
      assert.deepEqual(events, [`proxy_down ${resolver.socket.address().address}:53 python3`], 'one event per outage');
    });

    it('closed: with a stale heartbeat queries are still redirected to the (dead) proxy', async () => {
      sut.setConfig({ ...config(), failMode: 'closed', heartbeatTimeoutMs: 200 });
      await sleep(400);
      const resolverBefore = resolver.received.length;
      const proxyBefore = proxy.udp4.received.length;

      const res = await box.run({ op: 'udp_sendto', host: resolver.socket.address().address, port: 53, payload: query(23) });

      assert.equal(res.error, undefined);
      assert.equal(proxy.udp4.received.length, proxyBefore + 1);
      assert.equal(resolver.received.length, resolverBefore);
      assert.ok(sut.counters().failclosed_redirects! >= 1n);
    });

    it('open: a fresh heartbeat brings redirection back', async () => {
      sut.setConfig({ ...config(), failMode: 'open', heartbeatTimeoutMs: 10_000 });
      sut.heartbeat();
      const proxyBefore = proxy.udp4.received.length;

      const res = await box.run({ op: 'udp_sendto', host: resolver.socket.address().address, port: 53, payload: query(24) });

      assert.equal(res.error, undefined);
      assert.equal(proxy.udp4.received.length, proxyBefore + 1);
    });
  });
});
