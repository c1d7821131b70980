import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { encodeNameKeys, nameHash, nameHashBig, nameKey, nameKeyHex, nameWire } from './name-backstop';

describe('name backstop keys', () => {
  it('encodes a name in lower-cased wire form without the terminating zero', () => {
    assert.deepEqual([...nameWire('GitHub.COM.')], [6, ...Buffer.from('github'), 3, ...Buffer.from('com')]);
    assert.deepEqual(nameWire('*.github.com'), nameWire('github.com'), 'a wildcard is keyed by its suffix');
  });

  it('refuses what cannot be a wire name, naming the entry', () => {
    assert.throws(() => nameWire(''), /"" is not a listable/);
    assert.throws(() => nameWire('a..b'), /empty label/);
    assert.throws(() => nameWire(`${'a'.repeat(64)}.com`), /longer than 63/);
    assert.throws(() => nameWire(Array.from({ length: 60 }, () => 'abcd').join('.')), /longer than 255/);
    assert.throws(() => nameWire('bücher.de'), /not ASCII/);
  });

  it('the fast 32-bit hash equals FNV-1a 64 over the reversed bytes (BigInt reference)', () => {
    for (let i = 0; i < 500; i++) {
      const wire = randomBytes(1 + (i % 200));
      const [hi, lo] = nameHash(wire);
      assert.equal((BigInt(hi) << 32n) | BigInt(lo), nameHashBig(wire), wire.toString('hex'));
    }
  });

  it('keys a name from its characters exactly as from its wire form, and refuses the same names', () => {
    for (const n of ['github.com', 'GitHub.COM.', '*.a.b.c', 'x', `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(61)}`, 'a_b-c.d9']) {
      assert.deepEqual(nameKey(n), nameHash(nameWire(n)), n);
    }
    for (const bad of ['', '*.', '.', 'a..b', '.a', `${'a'.repeat(64)}.com`, Array.from({ length: 60 }, () => 'abcd').join('.'), 'bücher.de']) {
      assert.throws(() => nameKey(bad), /cgfence bpf: applyIpPolicy names/, JSON.stringify(bad));
    }
  });

  it('a known value: FNV-1a 64 of the empty input is the offset basis', () => {
    assert.equal(nameKeyHex('a').length, 16);
    assert.equal(nameHashBig(new Uint8Array(0)), 0xcbf29ce484222325n);
  });

  it('merges a name listed both exactly and as a wildcard into one key with both bits', () => {
    const k = encodeNameKeys({ exact: ['github.com', 'GitHub.com', 'x.test'], wildcard: ['*.github.com'] });
    assert.equal(k.count, 2);
    assert.equal(k.keys.length, 16);
    assert.deepEqual([...k.values], [3, 1]);
    assert.equal(k.keys.readBigUInt64LE(0).toString(16).padStart(16, '0'), nameKeyHex('github.com'));
  });
});
