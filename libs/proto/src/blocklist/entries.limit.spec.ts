import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { canonicalise, compareEntries, MAX_ENTRIES_PER_VERSION } from './entries';

/** The i-th of many distinct entries: mostly domains, some IPv4 and IPv6 addresses. */
function generated(i: number): string {
  if (i % 10 === 0) return `10.${(i >>> 16) & 0xff}.${(i >>> 8) & 0xff}.${i & 0xff}`;
  if (i % 10 === 1) return `2001:db8::${(i >>> 16).toString(16)}:${(i & 0xffff).toString(16)}`;
  return `Host-${i}.Example.com.`;
}

describe(`${canonicalise.name} at the ${MAX_ENTRIES_PER_VERSION} entry limit`, () => {
  const sut = canonicalise;

  it(`canonicalises ${MAX_ENTRIES_PER_VERSION} distinct entries (and merges duplicates before counting)`, () => {
    const inputs: string[] = [];
    for (let i = 0; i < MAX_ENTRIES_PER_VERSION; i++) inputs.push(generated(i));
    // Duplicates in other spellings: merged, so the list is still at the limit, not over it.
    inputs.push('host-2.example.com', 'HOST-3.EXAMPLE.COM', '10.0.0.0/32', '2001:db8:0:0:0:0:0:1');

    const result = sut(inputs);

    assert.deepEqual(result.errors, []);
    assert.equal(result.merged, 4);
    assert.equal(result.entries.length, MAX_ENTRIES_PER_VERSION);
    const byKind = { domain: 0, wildcard: 0, cidr4: 0, cidr6: 0 };
    for (const entry of result.entries) byKind[entry.kind]++;
    assert.deepEqual(byKind, { domain: 800_000, wildcard: 0, cidr4: 100_000, cidr6: 100_000 });
    for (let i = 1; i < result.entries.length; i++) {
      if (compareEntries(result.entries[i - 1], result.entries[i]) >= 0) {
        assert.fail(`entries ${i - 1} and ${i} are out of order: ${result.entries[i - 1].value}, ${result.entries[i].value}`);
      }
    }
    assert.equal(result.entries[0].value, 'host-100002.example.com');
    assert.deepEqual(result.entries.find((entry) => entry.value === 'host-999999.example.com'), { kind: 'domain', value: 'host-999999.example.com' });
    assert.equal(result.entries[800_000].value, '10.0.0.0/32');
    assert.equal(result.entries[MAX_ENTRIES_PER_VERSION - 1].value, `${generated(999_991)}/128`);
  });

  it(`reports ${MAX_ENTRIES_PER_VERSION + 1} distinct entries as one error, without throwing`, () => {
    const inputs: string[] = [];
    for (let i = 0; i <= MAX_ENTRIES_PER_VERSION; i++) inputs.push(`h${i}.example`);

    const result = sut(inputs);

    assert.deepEqual(result.errors, [{ line: 0, entry: '', reason: `too many entries: ${MAX_ENTRIES_PER_VERSION + 1} (limit ${MAX_ENTRIES_PER_VERSION})` }]);
    assert.equal(result.entries.length, MAX_ENTRIES_PER_VERSION + 1);
  });
});
