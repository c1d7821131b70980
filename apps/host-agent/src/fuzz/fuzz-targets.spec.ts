import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { FUZZ_TARGETS, REGRESSIONS, dnsUdpTarget } from './fuzz-targets';
import { expensiveMessage } from '../dns/testing/flood-client';

describe('fuzz targets', () => {
  for (const t of FUZZ_TARGETS) {
    it(`${t.name}: a short run with a fixed seed finds nothing`, () => {
      fc.assert(fc.property(t.arbitrary, (input) => t.check(input)), { seed: 20261206, numRuns: 500 });
    });

    it(`${t.name}: every input a fuzz run found still passes`, () => {
      for (const saved of REGRESSIONS[t.name] ?? []) t.check(t.revive(saved));
      assert.ok(t.name in REGRESSIONS, `REGRESSIONS has no list for ${t.name}`);
    });
  }

  it('the DNS check catches a hang: the message that stalled the old decoder passes in bounded time', () => {
    dnsUdpTarget.check(expensiveMessage(1));
  });
});
