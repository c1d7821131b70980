import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compressV6 } from './forward-core';

const groups = (a: string): string[] => a.split(':');

describe('compressV6 (the client address of a datagram the core received, as node formats it)', () => {
  for (const [full, short] of [
    ['0:0:0:0:0:0:0:1', '::1'],
    ['0:0:0:0:0:0:0:0', '::'],
    ['fe80:0:0:0:0:0:0:1', 'fe80::1'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'], // the first of two equal runs
    ['2001:db8:0:1:0:0:0:1', '2001:db8:0:1::1'], // the longest run, not the first
    ['2001:db8:1:2:3:4:5:0', '2001:db8:1:2:3:4:5:0'], // a single zero group stays
    ['1:0:0:0:0:0:0:0', '1::'],
  ] as const) {
    it(`${full} -> ${short}`, () => assert.equal(compressV6(groups(full)), short));
  }
});
