import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { encodePolicyKeys } from './codec';
import { compareIpPolicy, ipPolicyDigest, sortLpmKeys } from './ip-digest';

const v4 = (list: string[]) => encodePolicyKeys(4, list);
const v6 = (list: string[]) => encodePolicyKeys(6, list);

describe(ipPolicyDigest.name, () => {
  it('does not depend on the order of the keys', () => {
    const a = ipPolicyDigest(v4(['10.0.0.0/8', '192.0.2.1/32', '198.51.100.0/24']), v6(['2001:db8::/32', '::1/128']));
    const b = ipPolicyDigest(v4(['198.51.100.0/24', '10.0.0.0/8', '192.0.2.1/32']), v6(['::1/128', '2001:db8::/32']));

    assert.deepEqual(a, b);
    assert.equal(a.v4, 3);
    assert.equal(a.v6, 2);
    assert.match(a.digest, /^sha256:[0-9a-f]{64}$/);
  });

  it('tells the families apart and sees a changed prefix length', () => {
    const base = ipPolicyDigest(v4(['10.0.0.0/8']), v6([]));

    assert.notEqual(ipPolicyDigest(v4(['10.0.0.0/9']), v6([])).digest, base.digest);
    assert.notEqual(ipPolicyDigest(v4([]), v6(['::ffff:10.0.0.0/104'])).digest, base.digest);
    assert.equal(ipPolicyDigest(v4([]), v6([])).v4, 0);
  });
});

describe(sortLpmKeys.name, () => {
  it('sorts 20-byte IPv6 keys bytewise and leaves the input alone', () => {
    const keys = v6(['2001:db8::2/128', '2001:db8::1/128']);
    const before = Buffer.from(keys.keys);
    const sorted = sortLpmKeys(6, keys);

    assert.deepEqual(keys.keys, before);
    assert.equal(sorted.length, 40);
    assert.ok(Buffer.compare(sorted.subarray(0, 20), sorted.subarray(20, 40)) < 0);
  });

  it('refuses a buffer shorter than the count says', () => {
    assert.throws(() => sortLpmKeys(4, { keys: Buffer.alloc(8), count: 2 }), /2 v4 keys need 16 bytes/);
  });
});

describe(compareIpPolicy.name, () => {
  const applied = ipPolicyDigest(v4(['10.0.0.1/32', '10.0.0.2/32', '10.0.0.3/32']), v6(['::1/128']));

  it('finds no drift when the kernel holds the same sets', () => {
    assert.deepEqual(compareIpPolicy(applied, ipPolicyDigest(v4(['10.0.0.3/32', '10.0.0.2/32', '10.0.0.1/32']), v6(['::1/128']))), {
      drifted: false,
    });
  });

  it('names the family and both counts when an entry went missing', () => {
    const kernel = ipPolicyDigest(v4(['10.0.0.1/32', '10.0.0.2/32']), v6(['::1/128']));

    assert.deepEqual(compareIpPolicy(applied, kernel), { drifted: true, detail: 'kernel holds 2 v4 ranges, applied 3' });
  });

  it('sees a replaced entry even when the counts match', () => {
    const kernel = ipPolicyDigest(v4(['10.0.0.1/32', '10.0.0.2/32', '10.0.0.4/32']), v6(['::2/128']));
    const drift = compareIpPolicy(applied, kernel);

    assert.equal(drift.drifted, true);
    assert.equal(drift.detail, "kernel's 3 v4 ranges differ from the 3 applied; kernel's 1 v6 ranges differ from the 1 applied");
  });

  it('formats large counts with separators', () => {
    const big = (n: number) => Array.from({ length: n }, (_, i) => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}/32`);
    const drift = compareIpPolicy(ipPolicyDigest(v4(big(100_000)), v6([])), ipPolicyDigest(v4(big(99_999)), v6([])));

    assert.equal(drift.detail, 'kernel holds 99,999 v4 ranges, applied 100,000');
  });
});
