import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { formatDuration } from './events';

describe(formatDuration.name, () => {
  it('writes run durations for the runs list: ms, seconds, minutes, hours', () => {
    assert.deepEqual([0, 850, 12_340, 59_999, 245_000, 7_380_000].map(formatDuration), ['0 ms', '850 ms', '12.3 s', '1m00s', '4m05s', '2h03m']);
  });
});
