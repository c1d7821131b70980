// The batch decoder: what a batch of CGF_EVENTS messages turns into on the
// decode thread (COPY text, rollup counts, runs, rejects by index), and a
// decoder whose thread is gone starting a new one.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { RunSummary } from '@cgfence/proto';
import { BatchDecoder, decodeBatch, packMessages } from './batch-decoder';
import { copyLine, toRow } from './rows';
import { blockEvent } from './test-events';

const enc = new TextEncoder();
const at = Date.parse('2025-01-01T10:00:00Z');
const events = [blockEvent('h1', 1, at), blockEvent('h1', 2, at + 60_000), blockEvent('h1', 3, at + 3_600_000, { cohort: null })];
const run: RunSummary = {
  runId: 'r1', host: 'h1', cohort: 'canary', labels: {}, command: 'make deploy', startedAt: new Date(at).toISOString(), endedAt: null,
  exitCode: null, signal: null, overflow: 0, policyVersion: 'core v3', domains: [],
};
const messages = [
  { subject: 'cgf.events.h1.block', data: enc.encode(JSON.stringify(events[0])) },
  { subject: 'cgf.events.h1.block', data: enc.encode('{not json') },
  { subject: 'cgf.events.h1.block', data: enc.encode(JSON.stringify(events[1])) },
  { subject: 'cgf.events.h2.block', data: enc.encode(JSON.stringify(events[2])) },
  { subject: 'cgf.events.h1.run', data: enc.encode(JSON.stringify(run)) },
  { subject: 'cgf.events.h1.block', data: enc.encode(JSON.stringify(events[2])) },
];

function check(d: ReturnType<typeof decodeBatch>): void {
  assert.equal(d.events.size, 3);
  const text = Buffer.concat(d.events.chunks.map((c) => Buffer.from(c))).toString();
  assert.equal(text, events.map((e) => copyLine(toRow(e, new Date(e.time)))).join(''));
  const counts = d.events.counts.map((c) => [new Date(c.key[0]).toISOString(), c.key[2], c.n]);
  assert.deepEqual(counts, [['2025-01-01T10:00:00.000Z', 'canary', 2], ['2025-01-01T11:00:00.000Z', '', 1]]);
  assert.deepEqual(d.events.rows, []);
  assert.deepEqual(d.runs.map((r) => r.runId), ['r1']);
  assert.deepEqual(d.rejected.map((r) => [r.index, r.kind]), [[1, 'malformed'], [3, 'forged']]);
}

describe('batch decoder', () => {
  it('decodes a batch inline: COPY text, hourly counts, runs, and rejects by index', () => {
    check(decodeBatch(packMessages(messages), false));
    assert.equal(decodeBatch(packMessages(messages), true).events.rows.length, 3);
  });

  it('rejects events and run summaries with times PostgreSQL cannot hold, and keeps the rest of the batch', () => {
    const yearZero = { ...blockEvent('h1', 7, at), time: '0000-06-01T00:00:00.000Z' };
    const farFuture = { ...blockEvent('h1', 8, at), time: '+010000-01-01T00:00:00.000Z' };
    const oldRun = { ...run, runId: 'r2', startedAt: '0000-01-01T00:00:00Z' };
    const d = decodeBatch(packMessages([
      { subject: 'cgf.events.h1.block', data: enc.encode(JSON.stringify(yearZero)) },
      { subject: 'cgf.events.h1.block', data: enc.encode(JSON.stringify(events[0])) },
      { subject: 'cgf.events.h1.block', data: enc.encode(JSON.stringify(farFuture)) },
      { subject: 'cgf.events.h1.run', data: enc.encode(JSON.stringify(oldRun)) },
    ]), false);
    assert.equal(d.events.size, 1);
    assert.deepEqual(d.runs, []);
    assert.deepEqual(d.rejected.map((r) => [r.index, r.kind]), [[0, 'malformed'], [2, 'malformed'], [3, 'malformed']]);
    assert.match(d.rejected[0]!.reason, /years 1 to 9999/);
  });

  it('decodes on its thread, and starts a new thread after the old one is gone', async () => {
    const decoder = new BatchDecoder();
    assert.equal(decoder.threaded, true, 'the compiled worker file is next to the decoder');
    try {
      check(await decoder.decode(messages, false));
      await decoder.close();
      check(await decoder.decode(messages, false));
    } finally {
      await decoder.close();
    }
  });
});
