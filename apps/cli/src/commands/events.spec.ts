import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { eventTarget, formatDuration } from './events';

describe(formatDuration.name, () => {
  it('writes run durations for the runs list: ms, seconds, minutes, hours', () => {
    assert.deepEqual([0, 850, 12_340, 59_999, 245_000, 7_380_000].map(formatDuration), ['0 ms', '850 ms', '12.3 s', '1m00s', '4m05s', '2h03m']);
  });
});

describe(eventTarget.name, () => {
  it('shows the name, the destination of an IP block, or asked -> listed for a CNAME chain', () => {
    assert.equal(eventTarget({ qname: 'github.com', destination: null, cnameTarget: null }), 'github.com');
    assert.equal(eventTarget({ qname: null, destination: '10.1.2.3:443', cnameTarget: null }), '10.1.2.3:443');
    assert.equal(
      eventTarget({ qname: 'releases.internal.example', destination: null, cnameTarget: 'objects.githubusercontent.com' }),
      'releases.internal.example -> objects.githubusercontent.com',
    );
  });
});
