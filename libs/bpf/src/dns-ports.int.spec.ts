// Real kernel: DNS on ports other than 53 (DoT/DoQ on 853 by default) is
// refused to the deploy cgroup by the connect/sendmsg hooks and counted per port.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { DataPlane } from './data-plane';
import { KernelEvent } from './codec';
import { DnsPortGuard, validateRefusedDnsPorts } from './dns-ports';
import { KernelSandbox, requireIPv6Loopback, sleep } from './testing/kernel-fixture';

describe(DnsPortGuard.name, () => {
  let box: KernelSandbox;
  let sut: DataPlane;
  const events: KernelEvent[] = [];
  const config = { proxyPort: 5398, mode: 'enforce' as const, failMode: 'open' as const, heartbeatTimeoutMs: 0 };

  before(() => {
    box = new KernelSandbox('dnsports');
    sut = DataPlane.attach({ cgroupPath: box.cgroupPath, pinDir: box.pinDir, config });
    // Without HOME, the fixture's shell looks its user up and glibc tries nscd:
    // the unix guard's refusals are not what these tests are about.
    sut.onEvent((e) => {
      if (e.kind !== 'unix_refused' && e.kind !== 'unix_audit') events.push(e);
    });
  });
  after(async () => {
    sut?.close();
    await box?.destroy();
  });

  it('refuses TCP connect to port 853 (DoT) by default with EPERM, counts it and reports the run; outside the cgroup untouched', async () => {
    const inside = await box.run({ op: 'connect', host: '127.0.0.1', port: 853 });
    const outside = await box.run({ op: 'connect', host: '127.0.0.1', port: 853 }, false);
    assert.equal(inside.result, 'EPERM');
    assert.equal(outside.result, 'ECONNREFUSED');
    assert.equal(sut.dnsPortRefusals().get(853), 1);
    for (let i = 0; i < 100 && !events.some((e) => e.tgid === inside.pid); i++) await sleep(20);
    const e = events.find((ev) => ev.tgid === inside.pid);
    assert.ok(e, 'a kernel event names the process');
    assert.equal(e.kind, 'ip_block');
    assert.equal(e.dport, 853);
  });

  it('refuses IPv6 TCP and UDP sendto on 853 (DNS over QUIC) too', async () => {
    requireIPv6Loopback();
    const v6 = await box.run({ op: 'connect', host: '::1', port: 853 });
    assert.equal(v6.result, 'EPERM');
    const udp = await box.run({ op: 'udp_sendto', host: '127.0.0.1', port: 853, payload: '00', timeout: 0.3 });
    assert.match(udp.error ?? '', /EPERM|Operation not permitted/);
    assert.equal(sut.dnsPortRefusals().get(853), 3);
  });

  it('takes a configured set: 5353 refused, 853 no longer, counts of kept ports kept', async () => {
    sut.setConfig({ ...config, refusedDnsPorts: [853, 5353] });
    assert.equal((await box.run({ op: 'connect', host: '127.0.0.1', port: 5353 })).result, 'EPERM');
    assert.deepEqual([...sut.dnsPortRefusals()].sort(), [[5353, 1], [853, 3]]);
    sut.setConfig({ ...config, refusedDnsPorts: [5353] });
    assert.equal((await box.run({ op: 'connect', host: '127.0.0.1', port: 853 })).result, 'ECONNREFUSED');
    assert.deepEqual([...sut.dnsPortRefusals()], [[5353, 1]]);
  });

  it('lets the connect through in audit mode and counts it as would-be refused', async () => {
    sut.setConfig({ ...config, mode: 'audit', refusedDnsPorts: [853] });
    try {
      assert.equal((await box.run({ op: 'connect', host: '127.0.0.1', port: 853 })).result, 'ECONNREFUSED');
      assert.equal(sut.dnsPortRefusals().get(853), 1);
    } finally {
      sut.setConfig(config);
    }
  });

  it('refuses bad port sets with a message naming the problem', () => {
    assert.throws(() => validateRefusedDnsPorts([53]), /port 53 cannot be a refused DNS port/);
    assert.throws(() => validateRefusedDnsPorts([0]), /1\.\.65535, got 0/);
    assert.throws(() => validateRefusedDnsPorts(Array.from({ length: 17 }, (_, i) => 1000 + i)), /at most 16 refused DNS ports, got 17/);
  });
});
