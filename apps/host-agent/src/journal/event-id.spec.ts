import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { EventIdGenerator, eventIdTime, isEventId, newEventId } from './event-id';

function assertStrictlyIncreasing(ids: readonly string[]): void {
  for (let i = 1; i < ids.length; i++) assert.ok(ids[i - 1] < ids[i], `id ${i} (${ids[i]}) does not sort after ${ids[i - 1]}`);
}

describe(EventIdGenerator.name, () => {
  it('makes UUIDv7 ids that carry the time they were made', () => {
    const sut = new EventIdGenerator(() => Date.UTC(2026, 3, 16, 12, 0, 0, 123));
    const id = sut.next();
    assert.ok(isEventId(id), id);
    assert.equal(eventIdTime(id).toISOString(), '2026-04-16T12:00:00.123Z');
  });

  it('orders ids made in a burst in the order they were made, without duplicates', () => {
    const ids = Array.from({ length: 20_000 }, () => newEventId());
    assertStrictlyIncreasing(ids);
    assert.equal(new Set(ids).size, ids.length);
  });

  it('stays ordered when the clock stands still for more ids than a millisecond holds', () => {
    const sut = new EventIdGenerator(() => 1_700_000_000_000);
    const ids = Array.from({ length: 10_000 }, () => sut.next());
    assertStrictlyIncreasing(ids);
    assert.ok(eventIdTime(ids[ids.length - 1]).getTime() > 1_700_000_000_000, 'timestamp carried forward');
  });

  it('stays ordered when the clock steps back', () => {
    let now = 1_700_000_100_000;
    const sut = new EventIdGenerator(() => now);
    const before = sut.next();
    now -= 60_000;
    const after = sut.next();
    assert.ok(before < after);
  });

  it('refuses to read a time out of something that is not an event id', () => {
    assert.throws(() => eventIdTime('not-an-id'), /not a UUIDv7/);
    assert.equal(isEventId('01890a5d-ac96-4ed8-8a1f-3c2b4f5e6a7b'), false); // version 4
  });
});
