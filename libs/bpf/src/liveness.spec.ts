import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { heartbeatIntervalFor } from './liveness';

describe(heartbeatIntervalFor.name, () => {
  it('stamps eight times per timeout, at most every 250 ms and at least every 10 ms', () => {
    assert.equal(heartbeatIntervalFor(2000), 250);
    assert.equal(heartbeatIntervalFor(800), 100);
    assert.equal(heartbeatIntervalFor(300), 37);
    assert.equal(heartbeatIntervalFor(20), 10);
    assert.equal(heartbeatIntervalFor(0), 250, 'no timeout: the stamps only serve a later timeout');
  });
});
