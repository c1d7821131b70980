import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ANSWER_CAPS } from './dns-answer';
import { QUERY_CAPS } from './dns-query';
import { decodeClient, FORWARD_CORE_CAPS } from './forward-core';

/** A sockaddr_in6 (family, port 53, flow info, the address's groups) as the core hands it over. */
const sockaddr6 = (a: string): Buffer => {
  const raw = Buffer.alloc(28);
  raw.writeUInt16LE(10, 0);
  raw.writeUInt16BE(53, 2);
  a.split(':').forEach((g, i) => raw.writeUInt16BE(parseInt(g, 16), 8 + 2 * i));
  return raw;
};

describe('decodeClient (the client address of a datagram the core received, as node formats it)', () => {
  for (const [full, short] of [
    ['0:0:0:0:0:0:0:1', '::1'],
    ['0:0:0:0:0:0:0:0', '::'],
    ['fe80:0:0:0:0:0:0:1', 'fe80::1'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'], // the first of two equal runs
    ['2001:db8:0:1:0:0:0:1', '2001:db8:0:1::1'], // the longest run, not the first
    ['2001:db8:1:2:3:4:5:0', '2001:db8:1:2:3:4:5:0'], // a single zero group stays
    ['1:0:0:0:0:0:0:0', '1::'],
  ] as const) {
    it(`${full} -> ${short}`, () => assert.equal(decodeClient(0, sockaddr6(full)).address, short));
  }
});

describe('FORWARD_CORE_CAPS (documented in docs/operations.md)', () => {
  it('are the caps the C core is compiled with', () => {
    const source = readFileSync(join(__dirname, '..', '..', '..', 'native', 'dns-forward-core.c'), 'utf8');
    const define = (name: string): number => {
      const m = new RegExp(`^#define ${name} (.+?)(?: /\\*.*)?$`, 'm').exec(source);
      assert.ok(m, `#define ${name} in dns-forward-core.c`);
      // The values are a literal or (literal << literal).
      const v = /^\(?(\d+)(?: << (\d+))?\)?$/.exec(m[1]!.trim());
      assert.ok(v, `${name} is ${m[1]}: a literal or a shift`);
      return Number(v[1]) * 2 ** Number(v[2] ?? 0);
    };
    assert.deepEqual(
      {
        batch: define('BATCH'),
        cacheSlots: define('CACHE_SLOTS'),
        nameArenaBytes: define('NAME_ARENA'),
        queueSlots: define('QUEUE_SLOTS'),
        bigSlots: define('BIG_SLOTS'),
        noticeSlots: define('NOTICE_SLOTS'),
        maxListen: define('MAX_LISTEN'),
      },
      FORWARD_CORE_CAPS,
    );
    // The bounds it shares with the proxy's own decoders.
    assert.equal(define('MAX_MSG'), QUERY_CAPS.maxMessageBytes);
    assert.equal(define('MAX_ANSWER_RECORDS'), ANSWER_CAPS.maxRecords);
  });
});
