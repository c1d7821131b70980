import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { bucketFor, seriesOf, timeOf } from './buckets';

describe('History chart buckets', () => {
  const now = Date.parse('2026-12-06T12:00:00Z');

  it('reads a time filter as the API does: a duration back from now or an ISO time', () => {
    assert.equal(timeOf('24h', now), now - 86_400_000);
    assert.equal(timeOf('2w', now), now - 14 * 86_400_000);
    assert.equal(timeOf('2026-12-01T00:00:00Z', now), Date.parse('2026-12-01T00:00:00Z'));
    assert.equal(timeOf('yesterday', now), undefined);
    assert.equal(timeOf(undefined, now), undefined);
  });

  it('picks minutes up to 6 hours, hours up to 14 days, days beyond', () => {
    assert.equal(bucketFor(now - 6 * 3_600_000, now), 'minute');
    assert.equal(bucketFor(now - 7 * 86_400_000, now), 'hour');
    assert.equal(bucketFor(now - 30 * 86_400_000, now), 'day');
  });

  it('spans the whole range with a zero where no row is, and places each row in its bucket by key', () => {
    const rows = [
      { bucket: '2026-12-06T10:00:00.000Z', key: 'blocked', count: 5 },
      { bucket: '2026-12-06T11:00:00.000Z', key: 'audited', count: 2 },
      { bucket: '2026-12-06T11:00:00.000Z', key: 'alert', count: 9 },
    ];
    const { x, values } = seriesOf(rows, ['blocked', 'audited'], now - 3 * 3_600_000, now, 'hour');
    assert.deepEqual(x.map((t) => new Date(t * 1000).toISOString().slice(11, 16)), ['09:00', '10:00', '11:00', '12:00']);
    assert.deepEqual(values, [[0, 5, 0, 0], [0, 0, 2, 0]]);
  });

  it('never draws more than 5,000 buckets, keeping the newest end of a range too wide for its bucket', () => {
    const { x } = seriesOf([], ['blocked'], now - 365 * 86_400_000, now, 'minute');
    assert.ok(x.length <= 5001);
    assert.equal(x[x.length - 1]! * 1000, now);
  });
});
