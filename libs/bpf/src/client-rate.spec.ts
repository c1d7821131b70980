import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_CLIENT_RATE_LIMITS, encodeClientRateLimits, NO_CLIENT_RATE_LIMITS, validateClientRateLimits } from './client-rate';
import { RATE_CONFIG } from './layout';

describe('client rate limits', () => {
  it('encodes the cost of one query and a full bucket in ns, per bucket kind; off is all zero', () => {
    const b = encodeClientRateLimits({ perProcess: { ratePerSecond: 1000, window: 256 }, perRun: null });
    const fl = RATE_CONFIG.fields;
    assert.equal(b.length, RATE_CONFIG.size);
    assert.equal(b.readBigUInt64LE(fl.proc_interval_ns.offset), 1_000_000n);
    assert.equal(b.readBigUInt64LE(fl.proc_window_ns.offset), 256_000_000n);
    assert.equal(b.readBigUInt64LE(fl.cgroup_interval_ns.offset), 0n, 'per run off');
    assert.equal(b.readBigUInt64LE(fl.cgroup_window_ns.offset), 0n);
    assert.ok(encodeClientRateLimits(NO_CLIENT_RATE_LIMITS).equals(Buffer.alloc(RATE_CONFIG.size)));
  });

  it('the defaults are valid and a run holds at least one process', () => {
    validateClientRateLimits(DEFAULT_CLIENT_RATE_LIMITS);
    assert.ok(DEFAULT_CLIENT_RATE_LIMITS.perRun!.window >= DEFAULT_CLIENT_RATE_LIMITS.perProcess!.window);
  });

  it('refuses values that are not integers 1..1,000,000, naming the field', () => {
    assert.throws(() => validateClientRateLimits({ perProcess: { ratePerSecond: 0, window: 1 }, perRun: null }), /clientRate\.perProcess\.ratePerSecond must be an integer 1\.\.1000000, got 0/);
    assert.throws(() => validateClientRateLimits({ perProcess: null, perRun: { ratePerSecond: 1, window: 1.5 } }), /clientRate\.perRun\.window .* got 1\.5/);
    assert.throws(() => validateClientRateLimits({ perProcess: null, perRun: { ratePerSecond: 1, window: 1_000_001 } }), /got 1000001/);
  });
});
