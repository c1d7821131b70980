// The history queries through REST on a real PostgreSQL: every filter, the
// aggregates (rollup and raw agree), keyset pagination under concurrent
// inserts, exports, replay, and 400s for bad filters.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { EventsAggregateQuery, EventsSummaryQuery, type BlockEvent, type BlockEventView, type RunsPage, type RunSummary } from '@cgfence/proto';
import { BlocklistsService } from '../blocklists/blocklists.service';
import { EventsQueryService } from './events-query.service';
import { TestPolicyServer } from '../testing/test-server';
import { EventsDb } from './events-db';
import { EventsWriter } from './events-writer';
import { blockEvent } from './test-events';
import { PartitionMaintainer } from './partition-maintainer.service';
import { toRow } from './rows';
import { dayOf, partitionName } from './partitions';

const HOUR = 3_600_000;

describe('block event queries', () => {
  let env: TestPolicyServer;
  let viewer: string;
  let writer: EventsWriter;
  const now = Date.now();
  const all: BlockEvent[] = [];
  const get = (path: string) => env.http.get(path).set({ Authorization: `Bearer ${viewer}` });
  const write = async (events: BlockEvent[], runs: RunSummary[] = [], path: 'copy' | 'insert' = 'copy') => {
    await env.get(PartitionMaintainer).ensureDays(events.map((e) => Date.parse(e.time)));
    return writer.writeRows(events.map((e) => toRow(e, new Date(e.time))), runs, path);
  };

  before(async () => {
    env = await TestPolicyServer.start('events_query');
    viewer = await env.tokenFor('viewer');
    writer = env.get(EventsWriter);
    // 3 hosts × 2 cohorts, 200 events each over the last 30 hours.
    for (let h = 0; h < 3; h++) {
      for (let i = 0; i < 200; i++) {
        all.push(
          blockEvent(`h${h}`, i, now - 30 * HOUR + i * 9 * 60_000 + h, {
            cohort: h === 2 ? 'prod' : 'canary',
            qname: i % 4 === 0 ? `a${i}.cdn.github.com` : i % 4 === 1 ? 'github.com' : i % 4 === 2 ? 'notgithub.com' : `x.npmjs.org`,
            action: i % 10 === 0 ? 'audited' : 'blocked',
            method: i % 5 === 0 ? 'ip' : 'dns',
            pid: 100 + (i % 3),
            cmdline: i % 2 ? 'npm install left-pad' : 'curl 50%_off.example',
            policyVersion: i < 100 ? 'core v3' : 'core v4',
            labels: { repo: h === 0 ? 'web' : 'api', stage: i % 2 ? 'deploy' : 'test' },
          }),
        );
      }
    }
    assert.equal(await write(all.slice(0, 300), [], 'insert'), 300);
    assert.equal(await write(all.slice(300)), 300);
    // Duplicates change nothing, whichever path.
    assert.equal(await write(all.slice(0, 50)), 0);
    assert.equal(await write(all.slice(250, 400), [], 'insert'), 0);
    // A batch that is partly stored and holds one event twice: only the new
    // events are inserted and counted, in the table and in the hourly rollup.
    const fresh = [0, 1, 2].map((i) => blockEvent('h1', 200 + i, now - 2 * HOUR + i, { cohort: 'canary', policyVersion: 'core v4', labels: { repo: 'api', stage: 'test' } }));
    all.push(...fresh);
    assert.equal(await write([...all.slice(100, 120), fresh[0]!, fresh[1]!, fresh[0]!, fresh[2]!]), 3);
    const [stored] = await env.get(EventsDb).query<{ rows: number; counted: number }>(
      `select (select count(*)::int from block_events) as rows, (select sum(n)::int from block_event_counts) as counted`,
    );
    assert.deepEqual(stored, { rows: all.length, counted: all.length });
  });
  after(() => env?.stop());

  const ids = (evs: BlockEventView[]) => evs.map((e) => e.id).sort();
  const expect = (pred: (e: BlockEvent) => boolean) => all.filter(pred).map((e) => e.id).sort();
  const query = async (qs: string): Promise<BlockEventView[]> => {
    const res = await get(`/events?${qs.includes('limit=') ? '' : 'limit=1000&'}${qs}`);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    return res.body.events as BlockEventView[];
  };

  it('filters by every field', async () => {
    assert.deepEqual(ids(await query('host=h1')), expect((e) => e.host === 'h1'));
    assert.deepEqual(ids(await query('cohort=prod')), expect((e) => e.cohort === 'prod'));
    assert.deepEqual(ids(await query('run=run-h0-1')), expect((e) => e.runId === 'run-h0-1'));
    assert.deepEqual(ids(await query('label=repo=api&label=stage=test')), expect((e) => e.labels['repo'] === 'api' && e.labels['stage'] === 'test'));
    assert.deepEqual(ids(await query('domain=github.com')), expect((e) => e.qname === 'github.com'));
    assert.deepEqual(ids(await query('domain=*.github.com')), expect((e) => e.qname!.endsWith('.github.com')));
    assert.deepEqual(ids(await query('domain=*.com')), expect((e) => e.qname!.endsWith('.com')));
    assert.deepEqual(ids(await query('pid=101')), expect((e) => e.pid === 101));
    assert.deepEqual(ids(await query('cmd=50%25_off')), expect((e) => e.cmdline!.includes('50%_off')));
    assert.deepEqual(ids(await query('cmd=LEFT-PAD')), expect((e) => e.cmdline!.includes('left-pad')));
    assert.deepEqual(ids(await query('action=audited')), expect((e) => e.action === 'audited'));
    assert.deepEqual(ids(await query('method=ip&host=h2')), expect((e) => e.method === 'ip' && e.host === 'h2'));
    assert.deepEqual(ids(await query('blocklist=core&version=4')), expect((e) => e.policyVersion === 'core v4'));
    const from = new Date(now - 10 * HOUR).toISOString();
    assert.deepEqual(ids(await query(`from=${from}`)), expect((e) => Date.parse(e.time) >= now - 10 * HOUR));
    assert.deepEqual(ids(await query(`from=20h&to=${encodeURIComponent(new Date(now - 10 * HOUR).toISOString())}`)).length, expect((e) => {
      const t = Date.parse(e.time);
      return t < now - 10 * HOUR && t >= now - 20 * HOUR;
    }).length);
    const one = (await query('host=h0&limit=1'))[0]!;
    const src = all.find((e) => e.id === one.id)!;
    assert.equal(one.time, src.time.replace('Z', '000Z'));
    assert.equal(one.blocklist, 'core');
  });

  it('pages newest first with an opaque cursor, stable while newer events arrive', async () => {
    const seen: BlockEventView[] = [];
    let next: string | null = null;
    let inserted = 0;
    do {
      const res = await get(`/events?host=h0&limit=37${next ? `&after=${next}` : ''}`);
      assert.equal(res.status, 200);
      seen.push(...(res.body.events as BlockEventView[]));
      next = res.body.next;
      // Newer events land while we page (they belong before the first page).
      const fresh = [blockEvent('h0', 1000 + inserted, Date.now() + inserted)];
      inserted++;
      all.push(...fresh);
      await write(fresh);
    } while (next);
    const original = all.filter((e) => e.host === 'h0' && Date.parse(e.time) < now);
    assert.equal(seen.length, original.length);
    assert.equal(new Set(seen.map((e) => e.id)).size, seen.length);
    for (let i = 1; i < seen.length; i++) assert.ok(seen[i - 1]!.time >= seen[i]!.time);
  });

  it('streams the whole result set as NDJSON and CSV', async () => {
    const nd = await get('/events?format=ndjson&cohort=canary');
    assert.equal(nd.status, 200);
    assert.match(nd.headers['content-type']!, /ndjson/);
    const lines = nd.text.trim().split('\n').map((l) => JSON.parse(l) as BlockEventView);
    assert.deepEqual(ids(lines), all.filter((e) => e.cohort === 'canary').map((e) => e.id).sort());
    const csv = await get('/events?format=csv&host=h2&limit=5');
    assert.equal(csv.status, 200);
    const rows = csv.text.trim().split('\r\n');
    assert.equal(rows.length, 6);
    assert.match(rows[0]!, /^time,id,host,/);
    assert.match(rows[1]!, /"\{""repo"":""api""/);
  });

  it('aggregates by key and bucket, the hourly rollup agreeing with the raw rows', async () => {
    const top = await get('/events/aggregate?by=domain&host=h0&to=' + encodeURIComponent(new Date(now).toISOString()));
    assert.equal(top.status, 200, JSON.stringify(top.body));
    assert.deepEqual(top.body.rows.map((r: { key: string; count: number }) => [r.key, r.count]).slice(0, 3), [
      ['github.com', 50],
      ['notgithub.com', 50],
      ['x.npmjs.org', 50],
    ]);
    const window = `from=${encodeURIComponent(new Date(now - 25 * HOUR - 17 * 60_000).toISOString())}&to=${encodeURIComponent(new Date(now - 2 * HOUR + 5 * 60_000).toISOString())}`;
    const inWindow = (e: BlockEvent) => Date.parse(e.time) >= now - 25 * HOUR - 17 * 60_000 && Date.parse(e.time) < now - 2 * HOUR + 5 * 60_000;
    // by cohort per hour: rollup for whole hours + raw edges; by label: raw only. Both must match a count in JS.
    const byCohort = await get(`/events/aggregate?by=cohort&bucket=hour&${window}`);
    assert.equal(byCohort.status, 200);
    const expected = new Map<string, number>();
    for (const e of all.filter(inWindow)) {
      const k = `${new Date(Math.floor(Date.parse(e.time) / HOUR) * HOUR).toISOString()} ${e.cohort}`;
      expected.set(k, (expected.get(k) ?? 0) + 1);
    }
    const got = new Map<string, number>(byCohort.body.rows.map((r: { bucket: string; key: string; count: number }) => [`${r.bucket} ${r.key}`, r.count]));
    assert.deepEqual(got, expected);
    const byLabel = await get(`/events/aggregate?by=label:repo&bucket=day&${window}`);
    assert.equal(byLabel.body.rows.reduce((s: number, r: { count: number }) => s + r.count, 0), all.filter(inWindow).length);
    const byVersion = await get(`/events/aggregate?by=version&action=blocked`);
    const v = Object.fromEntries(byVersion.body.rows.map((r: { key: string; count: number }) => [r.key, r.count]));
    assert.equal(v['core v4'], all.filter((e) => e.policyVersion === 'core v4' && e.action === 'blocked').length);
    const byCmd = await get(`/events/aggregate?by=command&bucket=minute&host=h1&from=30m`);
    assert.equal(byCmd.status, 200);
  });

  it('summary: the chart and the four top-N panels in one answer, the same numbers GET /events/aggregate gives', async () => {
    for (const filter of ['host=h0', 'label=repo=api', 'cmd=npm&action=blocked', 'from=2h']) {
      const sum = await get(`/events/summary?${filter}&bucket=hour&top=3&labelKey=stage`);
      assert.equal(sum.status, 200, JSON.stringify(sum.body));
      const agg = async (qs: string) => (await get(`/events/aggregate?${filter}&${qs}`)).body as { rows: unknown[]; sampled: unknown };
      assert.deepEqual(sum.body.series.rows, (await agg('by=action&bucket=hour')).rows, filter);
      for (const [panel, by] of [['domain', 'domain'], ['host', 'host'], ['command', 'command'], ['label', 'label:stage']] as const) {
        const a = await agg(`by=${by}&limit=3`);
        assert.deepEqual(sum.body.top[panel].rows, a.rows, `${filter} ${panel}`);
        assert.equal(sum.body.top[panel].sampled, null, 'a few hundred events are counted exactly');
      }
    }
    const bad = await get('/events/summary?labelKey=a%20b');
    assert.equal(bad.status, 400);
    assert.match(bad.body.message, /labelKey/);
    assert.equal((await get('/events/summary?top=101')).status, 400);
  });

  it('past the exact limit, counts come from a page sample, scaled and marked sampled', async () => {
    const cfg = (sampleRows: number) => ({ ...env.config, eventsAggregate: { exactRows: 0, sampleRows, exactMs: 2000 } });
    const svc = (sampleRows: number) => new EventsQueryService(env.get(EventsDb), env.get(BlocklistsService), cfg(sampleRows));
    // A sample as large as the range reads every page: the exact counts, still marked.
    const whole = await svc(1_000_000).aggregate(EventsAggregateQuery.parse({ by: 'label:repo' }));
    assert.deepEqual(whole.sampled, { percent: 100, rows: all.length });
    assert.deepEqual(
      whole.rows.map((r) => [r.key, r.count]),
      [...new Set(all.map((e) => e.labels['repo']))].map((v) => [v, all.filter((e) => e.labels['repo'] === v).length]).sort((a, b) => (b[1] as number) - (a[1] as number)),
    );
    // By host the rollup answers: exact, not sampled, whatever the limit.
    assert.equal((await svc(60).aggregate(EventsAggregateQuery.parse({ by: 'host' }))).sampled, null);
    // A small sample: a share of the pages, each count scaled by 100 / percent.
    const part = await svc(60).summary(EventsSummaryQuery.parse({ label: ['repo=api'] }));
    for (const v of [part.series, part.top.domain, part.top.host, part.top.command, part.top.label]) {
      assert.ok(v.sampled && v.sampled.percent > 0 && v.sampled.percent < 100, JSON.stringify(v.sampled));
      assert.ok(v.sampled.rows <= all.filter((e) => e.labels['repo'] === 'api').length);
      for (const r of v.rows) {
        const k = (r.count * v.sampled.percent) / 100;
        assert.ok(Math.abs(k - Math.round(k)) < 0.01 && Math.round(k) >= 1, `${r.count} is not a whole number of sampled events at ${v.sampled.percent}%`);
      }
    }
    // The panels the rollup answers stay exact whatever the limit.
    const rolled = await svc(60).summary(EventsSummaryQuery.parse({ host: 'h1' }));
    assert.equal(rolled.top.host.sampled, null);
    assert.deepEqual(rolled.top.host.rows.map((r) => [r.key, r.count]), [['h1', all.filter((e) => e.host === 'h1').length]]);
  });

  it('answers 400 naming the field for bad filters', async () => {
    const cases: [string, RegExp][] = [
      ['/events?colour=red', /colour/],
      ['/events?from=yesterday', /from/],
      ['/events?from=1h&to=2h', /from .* is after to/],
      ['/events?limit=0', /limit/],
      ['/events?limit=5000', /limit/],
      ['/events?domain=*.*.x', /domain/],
      ['/events?pid=abc', /pid/],
      ['/events?action=dropped', /action/],
      ['/events?label=novalue', /label/],
      ['/events?after=AAAAAAAAAAAA', /after/],
      ['/events/aggregate?by=colour', /by/],
      ['/events/aggregate?by=host&bucket=week', /bucket/],
    ];
    for (const [path, field] of cases) {
      const res = await get(path);
      assert.equal(res.status, 400, `${path}: ${res.status}`);
      assert.match(res.body.message, field, path);
    }
  });

  it('replays a blocklist version against the domains recorded runs contacted', async () => {
    const admin = { Authorization: `Bearer ${env.adminSecret}` };
    await env.http.post('/blocklists').set(admin).send({ name: 'core' }).expect(201);
    await env.http.post('/blocklists/core/versions').set(admin).send({ entries: ['github.com', '*.npmjs.org'] }).expect(201);
    await env.http.post('/blocklists/core/versions').set(admin).send({ entries: ['*.github.com', 'evil.example'] }).expect(201);
    const run = (id: string, host: string, startedAgoH: number, names: string[]): RunSummary => ({
      runId: id, host, cohort: null, labels: {}, command: 'deploy', startedAt: new Date(now - startedAgoH * HOUR).toISOString(),
      endedAt: null, exitCode: null, signal: null, overflow: 0, policyVersion: null,
      domains: names.map((name) => ({ name, queries: 2, blocked: 0, firstSeen: new Date(now).toISOString(), lastSeen: new Date(now).toISOString() })),
    });
    await write([], [
      run('r1', 'h0', 1, ['github.com', 'api.github.com', 'npmjs.org', 'registry.npmjs.org']),
      run('r2', 'h1', 2, ['notgithub.com', 'a.b.github.com', 'EVIL.example.']),
      run('r3', 'h1', 24 * 10, ['github.com', 'evil.example']),
    ]);
    const v1 = await env.http.post('/blocklists/core/replay').set({ Authorization: `Bearer ${viewer}` }).send({ version: 1, since: '7d' });
    assert.equal(v1.status, 200, JSON.stringify(v1.body));
    assert.equal(v1.body.runsExamined, 2);
    assert.deepEqual(v1.body.runs.map((r: { runId: string; domains: { name: string; entry: string }[] }) => [r.runId, r.domains.map((d) => `${d.name}<${d.entry}`)]), [
      ['r1', ['github.com<github.com', 'registry.npmjs.org<*.npmjs.org']],
    ]);
    const v2 = await env.http.post('/blocklists/core/replay').set({ Authorization: `Bearer ${viewer}` }).send({ version: 2, since: '7d' });
    assert.deepEqual(v2.body.hosts, [
      { host: 'h0', runs: 1, domains: ['api.github.com'] },
      { host: 'h1', runs: 1, domains: ['a.b.github.com', 'evil.example'] },
    ]);
    const old = await env.http.post('/blocklists/core/replay').set({ Authorization: `Bearer ${viewer}` }).send({ version: 2, since: '30d' });
    assert.equal(old.body.runsExamined, 3);
    const bad = await env.http.post('/blocklists/core/replay').set({ Authorization: `Bearer ${viewer}` }).send({ version: 2, since: 'last week' });
    assert.equal(bad.status, 400);
    assert.equal((await env.http.post('/blocklists/core/replay').set({ Authorization: `Bearer ${viewer}` }).send({ version: 9, since: '7d' })).status, 404);
  });

  it('lists runs with exit code, duration, block and contacted-domain counts, filtered by host, label and since', async () => {
    const at = (agoH: number) => new Date(now - agoH * HOUR).toISOString();
    const names = (n: number) => Array.from({ length: n }, (_, i) => ({ name: `d${i}.example`, queries: 1, blocked: 0, firstSeen: at(1), lastSeen: at(1) }));
    const summary = (runId: string, host: string, team: string, startedAgoH: number, over: Partial<RunSummary>): RunSummary => ({
      runId, host, cohort: 'canary', labels: { team }, command: `deploy ${runId}`, startedAt: at(startedAgoH), endedAt: null,
      exitCode: null, signal: null, overflow: 0, policyVersion: 'core v4', domains: [], ...over,
    });
    const lr1End = new Date(now - HOUR + 90_000).toISOString();
    await write(
      [
        blockEvent('h7', 900, now - HOUR + 1000, { runId: 'lr1', action: 'blocked' }),
        blockEvent('h7', 901, now - HOUR + 2000, { runId: 'lr1', action: 'blocked' }),
        blockEvent('h7', 902, now - HOUR + 3000, { runId: 'lr1', action: 'audited' }),
      ],
      [
        summary('lr1', 'h7', 'listing', 1, { endedAt: lr1End, exitCode: 0, domains: names(3), overflow: 2, uid: 1001, user: 'deployer' }),
        summary('lr2', 'h8', 'listing', 2, { endedAt: at(1.5), exitCode: null, signal: 'SIGTERM' }),
        summary('lr3', 'h7', 'listing', 30, { endedAt: at(29), exitCode: 1 }),
        summary('lr4', 'h7', 'other', 0.5, { endedAt: at(0.4), exitCode: 0 }),
      ],
    );
    const list = async (qs: string) => {
      const res = await get(`/runs?${qs}`);
      assert.equal(res.status, 200, JSON.stringify(res.body));
      return res.body as RunsPage;
    };
    const page = await list('label=team=listing');
    assert.deepEqual(page.runs.map((r) => r.runId), ['lr1', 'lr2'], 'newest first, only the last 24 h by default');
    const [lr1, lr2] = page.runs;
    assert.deepEqual(
      { exit: lr1!.exitCode, duration: lr1!.durationMs, blocks: lr1!.blocks, audited: lr1!.audited, domains: lr1!.domains, host: lr1!.host, uid: lr1!.uid, user: lr1!.user },
      { exit: 0, duration: 90_000, blocks: 2, audited: 1, domains: 5, host: 'h7', uid: 1001, user: 'deployer' },
    );
    assert.deepEqual({ signal: lr2!.signal, blocks: lr2!.blocks, domains: lr2!.domains, user: lr2!.user }, { signal: 'SIGTERM', blocks: 0, domains: 0, user: null });
    assert.deepEqual((await list('label=team=listing&since=2d')).runs.map((r) => r.runId), ['lr1', 'lr2', 'lr3']);
    assert.deepEqual((await list('host=h7&since=2d&label=team=listing')).runs.map((r) => r.runId), ['lr1', 'lr3']);
    assert.deepEqual((await list('host=h7')).runs.map((r) => r.runId).filter((id) => id.startsWith('lr')), ['lr4', 'lr1']);
    assert.deepEqual((await list('label=team=listing&limit=1')).runs.map((r) => r.runId), ['lr1']);
    for (const bad of ['since=yesterday', 'limit=0', 'limit=5000', 'label=nokey', 'colour=red']) {
      const res = await get(`/runs?${bad}`);
      assert.equal(res.status, 400, `${bad}: ${res.status}`);
    }
  });

  it('keeps events outside the partitions in the default partition, moves them when their day is created, and drops expired days', async () => {
    const maint = env.get(PartitionMaintainer);
    const far = now + 20 * 24 * HOUR;
    const future = blockEvent('h9', 1, far);
    const ancient = blockEvent('h9', 2, now - 400 * 24 * HOUR);
    assert.equal(await write([future, ancient]), 2);
    const db = (sql: string) => env.get(EventsWriter)['db'].query<{ n: number }>(sql);
    assert.equal((await db(`select count(*)::int as n from block_events_default`))[0]!.n, 2);
    // The day of `future` arrives: its partition is made and the row moves into it.
    await maint.maintain(far);
    assert.equal((await db(`select count(*)::int as n from ${partitionName(dayOf(far))}`))[0]!.n, 1);
    const names = (await maint.partitions()).map((p) => p.name);
    // Seen from 20 days ahead with 30 days retention: nothing of today's partitions was dropped yet...
    assert.ok(names.includes(partitionName(dayOf(now))));
    // ...and the ancient event (past any retention) is gone from the default partition.
    assert.equal((await db(`select count(*)::int as n from block_events_default`))[0]!.n, 0);
    const r = await maint.maintain(now + 40 * 24 * HOUR);
    assert.ok(r.dropped.includes(partitionName(dayOf(now))));
  });
});
