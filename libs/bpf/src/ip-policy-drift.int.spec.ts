// Real kernel: the blocked CIDR sets read back from the pinned maps, and drift
// detection when someone else edits the inner LPM trie behind the loader's back.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { DataPlane } from './data-plane';
import { compareIpPolicy } from './ip-digest';
import { encodePolicyKeys } from './codec';
import { bulkCidrs, closedPort, innerMapId, KernelSandbox } from './testing/kernel-fixture';


/** Deletes one LPM key from a map by id with bpftool (another process, as an intruder would). */
function bpftoolDelete(mapId: number, key: Buffer): void {
  execFileSync('bpftool', ['map', 'delete', 'id', String(mapId), 'key', 'hex', ...[...key].map((b) => b.toString(16).padStart(2, '0'))]);
}

describe(`${DataPlane.name} IP policy drift`, () => {
  let box: KernelSandbox;
  let sut: DataPlane;

  before(async () => {
    box = new KernelSandbox('drift');
    sut = DataPlane.attach({
      cgroupPath: box.cgroupPath,
      pinDir: box.pinDir,
      config: { proxyPort: await closedPort(), mode: 'enforce', failMode: 'open', heartbeatTimeoutMs: 0 },
    });
  });

  after(async () => {
    sut?.close();
    await box?.destroy();
  });

  it('reads back exactly what was applied', () => {
    assert.equal(sut.appliedIpPolicyDigest(), undefined, 'nothing applied yet');
    sut.applyIpPolicy({ v4: ['10.0.0.0/8', '192.0.2.7/32', '198.51.100.0/24'], v6: ['2001:db8::/32', '::1/128'] });

    const kernel = sut.ipPolicyDigest();
    const applied = sut.appliedIpPolicyDigest()!;

    assert.equal(kernel.v4, 3);
    assert.equal(kernel.v6, 2);
    assert.deepEqual(kernel, applied);
    assert.deepEqual(compareIpPolicy(applied, kernel), { drifted: false });
  });

  it('reads back an empty policy', () => {
    sut.applyIpPolicy({ v4: [], v6: [] });

    assert.deepEqual(compareIpPolicy(sut.appliedIpPolicyDigest()!, sut.ipPolicyDigest()), { drifted: false });
    assert.equal(sut.ipPolicyDigest().v4, 0);
  });

  it('detects an entry deleted from the pinned inner trie behind its back', (t) => {
    const list = bulkCidrs(10, 100_000);
    sut.applyIpPolicy({ v4: list, v6: ['2001:db8::/32'] });
    const started = Date.now();
    assert.deepEqual(compareIpPolicy(sut.appliedIpPolicyDigest()!, sut.ipPolicyDigest()), { drifted: false });
    t.diagnostic(`100,000 v4 + 1 v6 ranges read back and compared in ${Date.now() - started} ms`);

    const victim = encodePolicyKeys(4, [list[4242]!]).keys;
    bpftoolDelete(innerMapId(join(box.pinDir, 'maps', 'cgf_block4')), victim);

    const kernel = sut.ipPolicyDigest();
    const drift = compareIpPolicy(sut.appliedIpPolicyDigest()!, kernel);
    assert.equal(kernel.v4, 99_999);
    assert.deepEqual(drift, { drifted: true, detail: 'kernel holds 99,999 v4 ranges, applied 100,000' });

    // Applying again repairs it.
    sut.applyIpPolicy({ v4: list, v6: ['2001:db8::/32'] });
    assert.deepEqual(compareIpPolicy(sut.appliedIpPolicyDigest()!, sut.ipPolicyDigest()), { drifted: false });
  });

  it('detects a v6 entry swapped for another with the same count', () => {
    sut.applyIpPolicy({ v4: ['192.0.2.0/24'], v6: ['2001:db8::/32'] });
    const mapId = innerMapId(join(box.pinDir, 'maps', 'cgf_block6'));
    bpftoolDelete(mapId, encodePolicyKeys(6, ['2001:db8::/32']).keys);
    const other = encodePolicyKeys(6, ['2001:db8:1::/48']).keys;
    execFileSync('bpftool', ['map', 'update', 'id', String(mapId), 'key', 'hex', ...[...other].map((b) => b.toString(16).padStart(2, '0')), 'value', '1', '0', '0', '0']);

    const drift = compareIpPolicy(sut.appliedIpPolicyDigest()!, sut.ipPolicyDigest());
    assert.equal(drift.drifted, true);
    assert.match(drift.detail!, /v6 ranges differ/);
  });
});
