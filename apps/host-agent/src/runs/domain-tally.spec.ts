import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DomainTally } from './domain-tally';

describe(DomainTally.name, () => {
  it('lists each run its names with counts, most queried first', () => {
    const sut = new DomainTally();
    sut.record('r1', 'github.com', 'blocked');
    sut.record('r1', 'example.com', 'allowed');
    sut.record('r1', 'example.com', 'allowed');
    sut.record('r1', 'github.com', 'blocked');
    sut.record('r1', 'api.example.com', 'audited');
    sut.record('r2', 'other.example', 'allowed');
    assert.deepEqual(sut.snapshot('r1'), {
      names: [
        { name: 'example.com', queries: 2, blocked: 0 },
        { name: 'github.com', queries: 2, blocked: 2 },
        { name: 'api.example.com', queries: 1, blocked: 1 },
      ],
      overflow: 0,
    });
    assert.equal(sut.snapshot('r2').names.length, 1);
  });

  it('counts a name whose answer chain led to a listed name as blocked, not contacted', () => {
    const sut = new DomainTally();
    sut.record('r1', 'via-cname.example', 'allowed'); // the query, tallied when it arrived
    sut.chainBlocked('r1', 'via-cname.example'); // its answer's chain, blocked
    sut.record('r1', 'via-cname.example', 'allowed');
    sut.record('r1', 'plain.example', 'allowed');
    assert.deepEqual(sut.snapshot('r1').names, [
      { name: 'via-cname.example', queries: 2, blocked: 1 },
      { name: 'plain.example', queries: 1, blocked: 0 },
    ]);
  });

  it('takes a chain block that arrives before its query was tallied, and never counts more blocks than queries', () => {
    const sut = new DomainTally();
    sut.chainBlocked('r1', 'x.example');
    sut.record('r1', 'x.example', 'allowed');
    sut.chainBlocked('r1', 'x.example'); // a duplicate report
    assert.deepEqual(sut.snapshot('r1').names, [{ name: 'x.example', queries: 1, blocked: 1 }]);
  });

  it('keeps a chain block of a name past the cap out of the list and out of the overflow count', () => {
    const sut = new DomainTally(1);
    sut.record('r1', 'a.example', 'allowed');
    sut.chainBlocked('r1', 'b.example');
    assert.deepEqual(sut.snapshot('r1'), { names: [{ name: 'a.example', queries: 1, blocked: 0 }], overflow: 0 });
  });

  it('bounds the names kept per run and counts the rest', () => {
    const sut = new DomainTally(2);
    for (const name of ['a.example', 'b.example', 'c.example', 'a.example', 'd.example']) sut.record('r1', name, 'allowed');
    const snap = sut.snapshot('r1');
    assert.deepEqual(snap.names.map((n) => n.name), ['a.example', 'b.example']);
    assert.equal(snap.overflow, 2);
  });

  it('keeps when each name was first and last asked for', () => {
    const sut = new DomainTally();
    const at = (s: number) => new Date(Date.UTC(2025, 0, 1, 0, 0, s));
    sut.record('r1', 'a.example', 'allowed', at(5));
    sut.record('r1', 'b.example', 'blocked', at(6));
    sut.record('r1', 'a.example', 'allowed', at(9));
    sut.record('r1', 'a.example', 'allowed', at(7)); // out of order: first/last still the extremes
    assert.deepEqual(sut.seen('r1'), {
      names: [
        { name: 'a.example', queries: 3, blocked: 0, firstSeen: '2025-01-01T00:00:05.000Z', lastSeen: '2025-01-01T00:00:09.000Z' },
        { name: 'b.example', queries: 1, blocked: 1, firstSeen: '2025-01-01T00:00:06.000Z', lastSeen: '2025-01-01T00:00:06.000Z' },
      ],
      overflow: 0,
    });
    assert.deepEqual(sut.seen('nope'), { names: [], overflow: 0 });
  });

  it('forgets a run', () => {
    const sut = new DomainTally();
    sut.record('r1', 'a.example', 'allowed');
    sut.forget('r1');
    assert.deepEqual(sut.snapshot('r1'), { names: [], overflow: 0 });
  });
});
