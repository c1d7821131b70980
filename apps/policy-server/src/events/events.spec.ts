import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { EventsAggregateQuery, EventsQuery, parseDomainFilter, parseTimeParam, reverseLabels } from '@cgfence/proto';
import { SuffixMatcher } from './matcher';
import { dayOf, dayOfPartition, partitionName } from './partitions';
import { containsPattern, CursorError, decodeCursor, encodeCursor, eventConditions, isoMicros, Params, splitHours, suffixRange } from './query';
import { copyLine, decodeMessage, parsePolicyVersion, toRow } from './rows';
import { blockEvent } from './test-events';

describe('block event history: pure parts', () => {
  it('round-trips the page cursor and refuses anything else', () => {
    const c = encodeCursor('1735689600123456', '01941f29-7c00-7abc-8def-0123456789ab');
    assert.match(c, /^[A-Za-z0-9_-]+$/);
    assert.deepEqual(decodeCursor(c), { timeUs: '1735689600123456', id: '01941f29-7c00-7abc-8def-0123456789ab' });
    assert.throws(() => decodeCursor('AAAAAAAAAAAA'), CursorError);
    assert.throws(() => decodeCursor(Buffer.from("1|x' or 1=1").toString('base64url')), CursorError);
    assert.equal(isoMicros('1735689600123456'), '2025-01-01T00:00:00.123456Z');
  });

  it('parses filters: times, ranges, labels, domains, unknown fields', () => {
    const now = Date.parse('2025-01-02T00:00:00Z');
    assert.equal(parseTimeParam('24h', now)?.toISOString(), '2025-01-01T00:00:00.000Z');
    assert.equal(parseTimeParam('2025-01-01T10:00:00Z')?.toISOString(), '2025-01-01T10:00:00.000Z');
    assert.equal(parseTimeParam('yesterday'), undefined);
    const ok = EventsQuery.parse({ host: 'h', label: ['a=b', 'c=d=e'], domain: '*.GitHub.com.', pid: 12, limit: 10 });
    assert.deepEqual(ok.label, [['a', 'b'], ['c', 'd=e']]);
    assert.deepEqual(ok.domain, { kind: 'suffix', suffix: 'github.com' });
    assert.equal(ok.pid, 12);
    const bad = EventsQuery.safeParse({ from: '1h', to: '2h', nope: 'x' });
    assert.equal(bad.success, false);
    assert.ok(EventsQuery.safeParse({ from: '1h', to: '2h' }).error?.issues.some((i) => i.path[0] === 'from'));
    assert.ok(EventsAggregateQuery.safeParse({ by: 'label:team' }).success);
    assert.ok(!EventsAggregateQuery.safeParse({ by: 'label:' }).success);
  });

  it('handles domain suffixes on label boundaries', () => {
    assert.deepEqual(parseDomainFilter('example.com'), { kind: 'exact', name: 'example.com' });
    assert.equal(parseDomainFilter('*.*.com'), undefined);
    assert.equal(parseDomainFilter('a..b'), undefined);
    assert.equal(reverseLabels('a.b.github.com'), 'com.github.b.a');
    const [lo, hi] = suffixRange('github.com');
    const inRange = (name: string) => {
      const r = reverseLabels(name);
      return r >= lo && r < hi;
    };
    assert.ok(inRange('a.github.com'));
    assert.ok(inRange('a.b.github.com'));
    assert.ok(!inRange('github.com'));
    assert.ok(!inRange('notgithub.com'));
    assert.ok(!inRange('github.community'));
    const m = SuffixMatcher.compile([
      { kind: 'domain', value: 'github.com' },
      { kind: 'wildcard', value: '*.npmjs.org' },
      { kind: 'cidr4', value: '10.0.0.0/8' },
    ]);
    assert.equal(m.match('GitHub.com.'), 'github.com');
    assert.equal(m.match('registry.npmjs.org'), '*.npmjs.org');
    assert.equal(m.match('npmjs.org'), undefined);
    assert.equal(m.match('notnpmjs.org'), undefined);
  });

  it('builds parameterised conditions (no value in the SQL text)', () => {
    const p = new Params();
    const c = eventConditions(EventsQuery.parse({ host: "h'; drop table x", cmd: '50%_off', label: ['a=b'] }), p);
    assert.ok(!c.join(' ').includes('drop'));
    assert.equal(containsPattern('50%_off'), '%50\\%\\_off%');
    assert.deepEqual(p.values, ["h'; drop table x", '{"a":"b"}', '%50\\%\\_off%']);
  });

  it('splits a range into rollup hours and raw edges', () => {
    const H = 3_600_000;
    const now = Date.parse('2025-01-02T12:30:00Z');
    const s = splitHours(new Date(now - 5 * H - 10 * 60_000), undefined, now);
    assert.deepEqual(s.hours?.map((d) => d?.toISOString()), ['2025-01-02T08:00:00.000Z', '2025-01-02T12:00:00.000Z']);
    assert.deepEqual(s.edges.map((e) => e.map((d) => d?.toISOString())), [
      ['2025-01-02T07:20:00.000Z', '2025-01-02T08:00:00.000Z'],
      ['2025-01-02T12:00:00.000Z', undefined],
    ]);
    assert.deepEqual(splitHours(new Date(now - 10 * 60_000), undefined, now).hours, undefined);
  });

  it('turns a message into a row and a COPY line', () => {
    const e = blockEvent('h1', 1, Date.parse('2025-01-01T00:00:00Z'), { cmdline: 'a\tb\nc\\d', qname: 'API.GitHub.com.' });
    const d = decodeMessage('cgf.events.h1.block', new TextEncoder().encode(JSON.stringify(e)));
    assert.equal(d.kind, 'block');
    const row = toRow(e, new Date(e.time));
    assert.equal(row[11], 'api.github.com');
    assert.equal(row[12], 'com.github.api');
    assert.ok(copyLine(row).includes('a\\tb\\nc\\\\d'));
    assert.equal(copyLine(row).split('\t').length, row.length);
    assert.equal(decodeMessage('cgf.events.h2.block', new TextEncoder().encode(JSON.stringify(e))).kind, 'forged');
    assert.equal(decodeMessage('cgf.events.h1.block', new TextEncoder().encode('{')).kind, 'malformed');
    assert.equal(decodeMessage('cgf.events.h1.block', new TextEncoder().encode(JSON.stringify({ ...e, time: 'soon' }))).kind, 'malformed');
    assert.deepEqual(parsePolicyVersion('core v12'), { blocklist: 'core', version: 12 });
    assert.deepEqual(parsePolicyVersion('file:/etc/x.txt'), { blocklist: null, version: null });
  });

  it("takes secrets out of an older agent's command line (no cmdlineRedacted) and stores a newer agent's as sent", () => {
    const secret = 'curl -H "Authorization: Bearer s3cr3t-value" https://ops:hunter2@api.example.com/ --password=pw1';
    const older = blockEvent('h1', 1, Date.parse('2025-01-01T00:00:00Z'), { cmdline: secret });
    assert.equal(older.cmdlineRedacted, undefined);
    const stored = toRow(older, new Date(older.time))[8] as string;
    for (const s of ['s3cr3t-value', 'hunter2', 'pw1']) assert.ok(!stored.includes(s), `${s} is gone: ${stored}`);
    assert.match(stored, /\[REDACTED\]/);
    assert.match(stored, /ops:\[REDACTED\]@api\.example\.com/, 'the user stays');
    const newer = { ...older, cmdline: 'deploy --flag=value', cmdlineRedacted: false };
    assert.equal(toRow(newer, new Date(newer.time))[8], 'deploy --flag=value');
    const marked = { ...older, cmdline: 'deploy --password=[REDACTED]', cmdlineRedacted: true };
    assert.equal(toRow(marked, new Date(marked.time))[8], 'deploy --password=[REDACTED]');
  });

  it('names daily partitions by UTC day', () => {
    const d = dayOf(Date.parse('2025-03-04T23:59:59Z'));
    assert.equal(partitionName(d), 'block_events_p20250304');
    assert.equal(dayOfPartition('block_events_p20250304'), d);
    assert.equal(dayOfPartition('block_events_default'), undefined);
  });
});
