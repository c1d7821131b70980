// Real kernel: IP blocking by CIDR and by learned address, audit mode, kernel
// events, the egress drop for sockets connected before a policy change, and
// the atomic swap of a 100,000-entry policy.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataPlane } from './data-plane';
import { KERNEL_EVENTS_PER_TURN } from './telemetry';
import { KernelEvent } from './codec';
import { bulkCidrs, closedPort, KernelSandbox, requireIPv6Loopback, sleep, UdpEcho } from './testing/kernel-fixture';


async function waitForEvent(events: KernelEvent[], match: (e: KernelEvent) => boolean, ms = 2000): Promise<KernelEvent> {
  const deadline = Date.now() + ms;
  for (;;) {
    const e = events.find(match);
    if (e) return e;
    if (Date.now() > deadline) throw new Error(`no matching kernel event within ${ms} ms; got ${JSON.stringify(events, (_, v) => (typeof v === 'bigint' ? String(v) : v))}`);
    await sleep(20);
  }
}

describe(DataPlane.name, () => {
  let box: KernelSandbox;
  let sut: DataPlane;
  let port: number;
  const events: KernelEvent[] = [];
  const config = { proxyPort: 5399, mode: 'enforce' as const, failMode: 'open' as const, heartbeatTimeoutMs: 0 };

  before(async () => {
    box = new KernelSandbox('ip');
    sut = DataPlane.attach({ cgroupPath: box.cgroupPath, pinDir: box.pinDir, config });
    // Without HOME, the fixture's shell looks its user up and glibc tries nscd:
    // the unix guard's refusals are not what these tests are about.
    sut.onEvent((e) => {
      if (e.kind !== 'unix_refused' && e.kind !== 'unix_audit') events.push(e);
    });
    port = await closedPort();
  });

  after(async () => {
    sut?.close();
    await box?.destroy();
  });

  describe('CIDR policy', () => {
    it('refuses connect() to a blocked address from inside the cgroup with EPERM and reports who tried', async () => {
      assert.deepEqual(sut.applyIpPolicy({ v4: ['127.0.0.2/32'], v6: [] }), { v4: 1, v6: 0 });

      const inside = await box.run({ op: 'connect', host: '127.0.0.2', port });
      const outside = await box.run({ op: 'connect', host: '127.0.0.2', port }, false);

      assert.equal(inside.result, 'EPERM');
      assert.equal(outside.result, 'ECONNREFUSED', 'a process outside the cgroup is not affected');
      const e = await waitForEvent(events, (ev) => ev.tgid === inside.pid);
      assert.equal(e.kind, 'ip_block');
      assert.equal(e.pid, inside.pid);
      assert.equal(e.comm, 'python3');
      assert.equal(e.family, 4);
      assert.equal(e.protocol, 'tcp');
      assert.equal(e.daddr, '127.0.0.2');
      assert.equal(e.dport, port);
      assert.ok(e.cgroupId > 0n);
      assert.equal(events.filter((ev) => ev.tgid === outside.pid).length, 0);
    });

    it('blocks a whole prefix and leaves addresses outside it alone', async () => {
      sut.applyIpPolicy({ v4: ['127.0.9.0/24'], v6: [] });

      const inPrefix = await box.run({ op: 'connect', host: '127.0.9.77', port });
      const beside = await box.run({ op: 'connect', host: '127.0.10.1', port });
      const noLongerListed = await box.run({ op: 'connect', host: '127.0.0.2', port });

      assert.equal(inPrefix.result, 'EPERM');
      assert.equal(beside.result, 'ECONNREFUSED');
      assert.equal(noLongerListed.result, 'ECONNREFUSED', 'the new policy replaced the old one');
    });

    it('allows the connect in audit mode and reports an audit event', async () => {
      sut.applyIpPolicy({ v4: ['127.0.0.2/32'], v6: [] });
      sut.setConfig({ ...config, mode: 'audit' });
      try {
        const res = await box.run({ op: 'connect', host: '127.0.0.2', port });

        assert.equal(res.result, 'ECONNREFUSED', 'audit does not block');
        const e = await waitForEvent(events, (ev) => ev.tgid === res.pid);
        assert.equal(e.kind, 'ip_audit');
        assert.equal(e.daddr, '127.0.0.2');
        assert.equal(e.comm, 'python3');
      } finally {
        sut.setConfig(config);
      }
    });

    it('blocks an IPv6 CIDR', async () => {
      requireIPv6Loopback();
      sut.applyIpPolicy({ v4: [], v6: ['::1/128'] });
      try {
        const inside = await box.run({ op: 'connect', host: '::1', port });
        const outside = await box.run({ op: 'connect', host: '::1', port }, false);

        assert.equal(inside.result, 'EPERM');
        assert.equal(outside.result, 'ECONNREFUSED');
        const e = await waitForEvent(events, (ev) => ev.tgid === inside.pid);
        assert.equal(e.family, 6);
        assert.equal(e.daddr, '::1');
      } finally {
        sut.applyIpPolicy({ v4: [], v6: [] });
      }
    });

    it('rejects a bad CIDR without touching the enforced policy', async () => {
      sut.applyIpPolicy({ v4: ['127.0.0.2/32'], v6: [] });

      assert.throws(() => sut.applyIpPolicy({ v4: ['127.0.0.2/33'], v6: [] }), /127\.0\.0\.2\/33/);
      assert.throws(() => sut.applyIpPolicy({ v4: ['2001:db8::/32'], v6: [] }), /IPv6/);

      assert.equal((await box.run({ op: 'connect', host: '127.0.0.2', port })).result, 'EPERM');
    });
  });

  describe('learned addresses', () => {
    it('blocks a learned address until its TTL runs out', async () => {
      sut.applyIpPolicy({ v4: [], v6: [] });
      const learnedAt = Date.now();
      sut.learnAddresses(['127.0.0.3'], 3);

      const during = await box.run({ op: 'connect', host: '127.0.0.3', port });
      await sleep(learnedAt + 3300 - Date.now());
      const afterwards = await box.run({ op: 'connect', host: '127.0.0.3', port });

      assert.equal(during.result, 'EPERM');
      assert.equal(afterwards.result, 'ECONNREFUSED', 'an expired entry is ignored');
    });
  });

  describe('egress drop', () => {
    it('drops packets of a socket connected before the address was blocked', async () => {
      sut.applyIpPolicy({ v4: [], v6: [] });
      const server = await UdpEcho.start('127.0.0.9');
      try {
        const dropsBefore = sut.counters().skb_drops!;
        const client = box.spawnClient({ op: 'udp_send_twice', host: '127.0.0.9', port: server.port });
        await client.nextLine(); // connected, first datagram sent
        await sleep(100);
        sut.applyIpPolicy({ v4: ['127.0.0.9/32'], v6: [] });
        client.send('go');
        const res = await client.done;
        await sleep(100);

        assert.deepEqual(
          server.received.map((r) => r.msg.toString()),
          ['one'],
          'only the datagram sent before the block arrived',
        );
        assert.equal(res.second, 'EPERM');
        assert.equal(sut.counters().skb_drops! - dropsBefore, 1n);
        const e = await waitForEvent(events, (ev) => ev.daddr === '127.0.0.9');
        assert.equal(e.kind, 'ip_block');
        assert.equal(e.protocol, 'udp');
      } finally {
        await server.close();
        sut.applyIpPolicy({ v4: [], v6: [] });
      }
    });
  });

  describe('kernel events under a hot producer', () => {
    const stop = join(tmpdir(), `cgfence-hot-stop-${process.pid}-${Date.now()}`);
    after(() => rmSync(stop, { force: true }));

    it(`hands listeners at most ${KERNEL_EVENTS_PER_TURN} events per read, the rest on later turns, however fast a process makes them`, async () => {
      sut.applyIpPolicy({ v4: ['127.0.0.2/32'], v6: [] });
      let batch = 0;
      let largest = 0;
      let total = 0;
      sut.onEvent(() => {
        // Events delivered in one synchronous go: counted until the microtask after it.
        if (batch === 0) {
          queueMicrotask(() => {
            largest = Math.max(largest, batch);
            batch = 0;
          });
        }
        batch++;
        total++;
      });
      const probe = box.spawnClient({ op: 'probe_loop', host: '127.0.0.2', port, stop });
      await probe.nextLine();
      // Hold the loop so the ring fills (it holds ~3,600 records) while the probe refuses on.
      const until = Date.now() + 400;
      while (Date.now() < until) {
        /* busy: nothing reads the ring */
      }
      await sleep(600);
      writeFileSync(stop, '');
      const { tally } = await probe.done;
      await sleep(100);
      assert.ok((tally?.EPERM ?? 0) > KERNEL_EVENTS_PER_TURN, `the probe made more refusals than one read may take: ${JSON.stringify(tally)}`);
      assert.ok(total > KERNEL_EVENTS_PER_TURN, `more events than one read may take were delivered: ${total}`);
      assert.ok(largest <= KERNEL_EVENTS_PER_TURN, `one read delivered ${largest} events`);
      assert.equal(largest, KERNEL_EVENTS_PER_TURN, 'the full ring was read in pieces of the cap');
    });
  });

  describe('atomic swap', () => {
    const stop = join(tmpdir(), `cgfence-probe-stop-${process.pid}-${Date.now()}`);
    after(() => rmSync(stop, { force: true }));

    it('loads 100,000 CIDRs and swaps policies without a moment where a listed address is reachable', async (t) => {
      const setA = [...bulkCidrs(10, 100_000), '127.0.0.2/32', '127.0.0.3/32'];
      const setB = [...bulkCidrs(11, 100_000), '127.0.0.2/32', '127.0.0.4/32'];
      const started = Date.now();
      assert.deepEqual(sut.applyIpPolicy({ v4: setA, v6: [] }), { v4: 100_002, v6: 0 });
      t.diagnostic(`100,002 CIDRs applied in ${Date.now() - started} ms`);

      // A process in the cgroup connects to 127.0.0.2 as fast as it can while
      // the policy flips between A and B; every attempt must be refused.
      const probe = box.spawnClient({ op: 'probe_loop', host: '127.0.0.2', port, stop });
      await probe.nextLine();
      const swaps = 6;
      const swapStart = Date.now();
      for (let i = 0; i < swaps; i++) sut.applyIpPolicy({ v4: i % 2 === 0 ? setB : setA, v6: [] });
      t.diagnostic(`${swaps} swaps of 100,002 CIDRs in ${Date.now() - swapStart} ms`);
      writeFileSync(stop, '');
      const { tally } = await probe.done;

      assert.ok(tally, 'the probe reported');
      assert.deepEqual(Object.keys(tally), ['EPERM'], `every probe was refused: ${JSON.stringify(tally)}`);
      assert.ok(tally.EPERM! > swaps, `the probe ran throughout (${tally.EPERM} attempts)`);
      // The last swap installed A: its own entry is enforced, B's is gone.
      assert.equal((await box.run({ op: 'connect', host: '127.0.0.3', port })).result, 'EPERM');
      assert.equal((await box.run({ op: 'connect', host: '127.0.0.4', port })).result, 'ECONNREFUSED');
    });
  });
});
