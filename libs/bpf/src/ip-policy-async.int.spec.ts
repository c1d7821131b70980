// Real kernel: the IP policy built on the trie builder thread
// (prepareIpPolicy / applyIpPolicyAsync) enforces exactly what the
// synchronous applyIpPolicy does, keeps the event loop free while it builds,
// and changes nothing when the build fails or the prepared tries are dropped.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { DataPlane, DataPlaneError } from './data-plane';
import { AddressError } from './addr';
import { compareIpPolicy } from './ip-digest';
import { bulkCidrs, closedPort, innerMapId, KernelSandbox } from './testing/kernel-fixture';


describe(`${DataPlane.name} IP policy built off the event loop`, () => {
  let box: KernelSandbox;
  let sut: DataPlane;
  let port: number;
  const config = { proxyPort: 5399, mode: 'enforce' as const, failMode: 'open' as const, heartbeatTimeoutMs: 0 };

  before(async () => {
    box = new KernelSandbox('ipasync');
    sut = DataPlane.attach({ cgroupPath: box.cgroupPath, pinDir: box.pinDir, config });
    port = await closedPort();
  });

  after(async () => {
    sut?.close();
    await box?.destroy();
  });

  it('refuses connect() to a listed address with EPERM, as the synchronous apply does', async () => {
    assert.deepEqual(await sut.applyIpPolicyAsync({ v4: ['127.0.0.2/32', '127.0.9.0/24'], v6: ['2001:db8::/32'] }), { v4: 2, v6: 1 });

    const listed = await box.run({ op: 'connect', host: '127.0.0.2', port });
    const inPrefix = await box.run({ op: 'connect', host: '127.0.9.77', port });
    const beside = await box.run({ op: 'connect', host: '127.0.10.1', port });
    const outside = await box.run({ op: 'connect', host: '127.0.0.2', port }, false);

    assert.equal(listed.result, 'EPERM');
    assert.equal(inPrefix.result, 'EPERM');
    assert.equal(beside.result, 'ECONNREFUSED');
    assert.equal(outside.result, 'ECONNREFUSED', 'a process outside the cgroup is not affected');
  });

  it('leaves the kernel holding the same keys as the synchronous path, and its digest knows them', async () => {
    const policy = { v4: ['10.0.0.0/8', '192.0.2.7/32', '192.0.2.7', '198.51.100.9/24'], v6: ['2001:db8::/32', '::1/128'] };
    sut.applyIpPolicy(policy);
    const viaSync = sut.ipPolicyDigest();
    await sut.applyIpPolicyAsync(policy);
    const viaAsync = sut.ipPolicyDigest();

    assert.deepEqual(viaAsync, viaSync);
    assert.equal(compareIpPolicy(sut.appliedIpPolicyDigest()!, viaAsync).drifted, false);
  });

  it('keeps the event loop running while 100,000 CIDRs are built', async () => {
    let ticks = 0;
    const ticker = setInterval(() => ticks++, 1);
    try {
      const prepared = sut.prepareIpPolicy({ v4: [...bulkCidrs(10, 100_000), '127.0.0.2/32'], v6: [] });
      const ready = await prepared.ready;
      assert.ok(ticks > 0, 'timers fired while the tries were being built');
      assert.equal(ready.v4, 100_001);
      assert.ok(ready.buildMs > 0);
      assert.deepEqual(await prepared.commit(), { v4: 100_001, v6: 0 });
    } finally {
      clearInterval(ticker);
    }
    assert.equal((await box.run({ op: 'connect', host: '127.0.0.2', port })).result, 'EPERM');
  });

  it('rejects a bad list with the synchronous path\'s error and leaves the previous tries in force', async () => {
    await sut.applyIpPolicyAsync({ v4: ['127.0.0.2/32'], v6: [] });
    const before = sut.ipPolicyDigest();
    const applied = sut.appliedIpPolicyDigest();

    await assert.rejects(sut.applyIpPolicyAsync({ v4: ['127.0.0.3/32', '127.0.0.2/33'], v6: [] }), (err: unknown) => {
      assert.ok(err instanceof AddressError, `an AddressError, got ${String(err)}`);
      assert.match(err.message, /127\.0\.0\.2\/33/);
      return true;
    });
    await assert.rejects(sut.applyIpPolicyAsync({ v4: ['2001:db8::/32'], v6: [] }), /IPv6/);
    const bad = sut.prepareIpPolicy({ v4: ['127.0.0.3/32'], v6: ['::1/129'] });
    await assert.rejects(bad.ready, /::1\/129/);
    await assert.rejects(bad.commit(), /::1\/129/);

    assert.deepEqual(sut.ipPolicyDigest(), before, 'the kernel still holds the previous tries');
    assert.equal(sut.appliedIpPolicyDigest(), applied, 'and the DataPlane still knows it applied them');
    assert.equal((await box.run({ op: 'connect', host: '127.0.0.2', port })).result, 'EPERM');
    assert.equal((await box.run({ op: 'connect', host: '127.0.0.3', port })).result, 'ECONNREFUSED');
  });

  it('changes nothing when prepared tries are discarded, and refuses a second commit', async () => {
    await sut.applyIpPolicyAsync({ v4: ['127.0.0.2/32'], v6: [] });
    const before = sut.ipPolicyDigest();

    const dropped = sut.prepareIpPolicy({ v4: ['127.0.0.3/32'], v6: [] });
    await dropped.ready;
    dropped.discard();
    const once = sut.prepareIpPolicy({ v4: ['127.0.0.4/32'], v6: [] });
    await once.commit(); // before the build is done: it swaps as soon as it is

    await assert.rejects(once.commit(), DataPlaneError);
    assert.notDeepEqual(sut.ipPolicyDigest(), before);
    assert.equal((await box.run({ op: 'connect', host: '127.0.0.3', port })).result, 'ECONNREFUSED');
    assert.equal((await box.run({ op: 'connect', host: '127.0.0.4', port })).result, 'EPERM');
  });

  it('swaps a family only when something changes: an empty list over an empty trie is left as it is', async () => {
    const v4Pin = join(box.pinDir, 'maps', 'cgf_block4');
    const v6Pin = join(box.pinDir, 'maps', 'cgf_block6');
    await sut.applyIpPolicyAsync({ v4: ['127.0.0.2/32'], v6: [] });
    const [v4Before, v6Before] = [innerMapId(v4Pin), innerMapId(v6Pin)];

    await sut.applyIpPolicyAsync({ v4: ['127.0.0.2/32'], v6: [] });
    assert.notEqual(innerMapId(v4Pin), v4Before, 'a non-empty list always gets a fresh trie');
    assert.equal(innerMapId(v6Pin), v6Before, 'empty over empty: no swap');

    sut.applyIpPolicy({ v4: ['127.0.0.2/32'], v6: ['2001:db8::/32'] });
    const v6Listed = innerMapId(v6Pin);
    assert.notEqual(v6Listed, v6Before);
    await sut.applyIpPolicyAsync({ v4: ['127.0.0.2/32'], v6: [] });
    assert.notEqual(innerMapId(v6Pin), v6Listed, 'an empty list over a non-empty trie is swapped in');
    assert.equal(sut.ipPolicyDigest().v6, 0);
    assert.equal(compareIpPolicy(sut.appliedIpPolicyDigest()!, sut.ipPolicyDigest()).drifted, false);
  });

  it('refuses to build or swap once the DataPlane is closed, and the pinned policy stays', async () => {
    const other = DataPlane.attach({ cgroupPath: box.cgroupPath, pinDir: box.pinDir, config });
    await other.applyIpPolicyAsync({ v4: ['127.0.0.5/32'], v6: [] });
    const inFlight = other.prepareIpPolicy({ v4: bulkCidrs(12, 50_000), v6: [] });
    other.close();

    await assert.rejects(inFlight.ready, /closed/);
    await assert.rejects(inFlight.commit(), /closed/);
    assert.throws(() => other.prepareIpPolicy({ v4: [], v6: [] }), /closed/);
    await assert.rejects(other.applyIpPolicyAsync({ v4: [], v6: [] }), /closed/);
    assert.equal((await box.run({ op: 'connect', host: '127.0.0.5', port })).result, 'EPERM');
  });
});
