import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { FirstOfEach } from './first-of-each';

describe(FirstOfEach.name, () => {
  it('admits a key once', () => {
    const f = new FirstOfEach(8);
    assert.equal(f.admit('a'), true);
    assert.equal(f.admit('a'), false);
    assert.equal(f.admit('b'), true);
    assert.equal(f.admit('a'), false);
  });

  it('never holds more than max keys: past the cap it starts over', () => {
    const f = new FirstOfEach(3);
    for (const k of ['a', 'b', 'c']) assert.equal(f.admit(k), true);
    assert.equal(f.size, 3);
    assert.equal(f.admit('d'), true, 'a new key past the cap is admitted');
    assert.equal(f.size, 1, 'the others were forgotten');
    assert.equal(f.admit('a'), true, 'a forgotten key is admitted again');
    for (let i = 0; i < 10_000; i++) f.admit(`k${i}`);
    assert.ok(f.size <= 3);
  });

  it('refuses a cap that is not a positive integer', () => {
    assert.throws(() => new FirstOfEach(0), /max must be a positive integer, got 0/);
    assert.throws(() => new FirstOfEach(1.5), /positive integer/);
  });
});
