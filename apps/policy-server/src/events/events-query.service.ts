import { Inject, Injectable } from '@nestjs/common';
import { SERVER_CONFIG, ServerConfig } from '../config/config';
import { findingIdOf } from '../findings/occurrences';
import type { Writable } from 'node:stream';
import type {
  AggregateView,
  BlockEventView,
  EventFilter,
  EventsAggregateQuery,
  EventsPage,
  EventsQuery,
  EventsSummaryQuery,
  EventsSummaryView,
  ReplayView,
  RunsPage,
  RunsQuery,
  RunView,
} from '@cgfence/proto';
import { parseTimeParam } from '@cgfence/proto';
import { BlocklistsService } from '../blocklists/blocklists.service';
import { DomainError } from '../common/errors';
import { EventsDb } from './events-db';
import {
  aggregateKey,
  csvLine,
  CSV_COLUMNS,
  CursorError,
  decodeCursor,
  encodeCursor,
  EventDbRow,
  eventConditions,
  filtersUsed,
  Params,
  SELECT_EVENT,
  splitHours,
  suffixRange,
  timeConditions,
  toView,
} from './query';

const DEFAULT_PAGE = 100;
const EXPORT_PAGE = 5000;
const ROLLUP_FILTERS = new Set(['time', 'host', 'cohort', 'action', 'method', 'blocklist', 'version']);

const where = (c: string[]): string => (c.length > 0 ? `where ${c.join(' and ')}` : '');

/** The queries of the block-event history; the REST API and the benchmarks both call these. */
@Injectable()
export class EventsQueryService {
  constructor(
    private readonly db: EventsDb,
    private readonly blocklists: BlocklistsService,
    @Inject(SERVER_CONFIG) private readonly config: ServerConfig,
  ) {}

  /** One page, newest first, after the cursor of the previous page. */
  async page(q: EventsQuery): Promise<EventsPage> {
    const limit = q.limit ?? DEFAULT_PAGE;
    const { rows } = await this.fetch(q, q.after, limit);
    const last = rows[rows.length - 1];
    return { events: rows.map(toView), next: rows.length === limit && last ? encodeCursor(last.time_us, last.id) : null };
  }

  private async fetch(f: EventFilter, after: string | undefined, limit: number): Promise<{ rows: EventDbRow[] }> {
    const p = new Params();
    const c = [...timeConditions(f.from, f.to, p), ...eventConditions(f, p)];
    if (after !== undefined) {
      let cur: { timeUs: string; id: string };
      try {
        cur = decodeCursor(after);
      } catch (err) {
        if (err instanceof CursorError) throw new DomainError('validation.failed', err.message, [{ field: 'after', reason: err.message }]);
        throw err;
      }
      c.push(`(time, id) < (timestamptz 'epoch' + ${p.add(cur.timeUs, 'int8')} * interval '1 microsecond', ${p.add(cur.id, 'uuid')})`);
    }
    const lim = p.add(limit, 'int4');
    if (f.domain?.kind === 'suffix') {
      // Many names under one suffix, each with many events: walk the distinct
      // names on the (qname_rev, time) index (a loose index scan), take each
      // name's newest rows from the same index, and merge. Reading every row
      // under the suffix and sorting them was the slow plan.
      const [lo, hi] = suffixRange(f.domain.suffix);
      const range = (prev: string | null) =>
        [prev === null ? `qname_rev ~>=~ ${p.add(lo)}` : `qname_rev ~>~ ${prev}`, `qname_rev ~<~ ${p.add(hi)}`, ...timeConditions(f.from, f.to, p)].join(' and ');
      const rows = await this.db.query<EventDbRow>(
        `with recursive names(n) as (
           (select qname_rev from block_events where ${range(null)} order by qname_rev using ~<~ limit 1)
           union all
           select (select qname_rev from block_events where ${range('names.n')} order by qname_rev using ~<~ limit 1) from names where names.n is not null
         )
         select e.* from names cross join lateral (
           select ${SELECT_EVENT} from block_events ${where([...c, 'qname_rev = names.n'])} order by time desc, id desc limit ${lim}
         ) e
         where names.n is not null
         order by e.time desc, e.id desc limit ${lim}`,
        p.values,
      );
      return { rows };
    }
    const rows = await this.db.query<EventDbRow>(`select ${SELECT_EVENT} from block_events ${where(c)} order by time desc, id desc limit ${lim}`, p.values);
    return { rows };
  }

  /**
   * The whole result set (up to `limit` rows), newest first, as NDJSON or CSV,
   * in keyset pages of a few thousand rows: memory stays flat whatever the
   * size, and the writer's back-pressure is respected.
   */
  async export(q: EventsQuery, format: 'ndjson' | 'csv', out: Writable): Promise<number> {
    const write = (text: string): Promise<void> =>
      new Promise((resolve, reject) => {
        if (out.destroyed) return reject(new Error('client went away'));
        if (out.write(text)) resolve();
        else {
          out.once('drain', resolve);
          out.once('close', () => reject(new Error('client went away')));
        }
      });
    if (format === 'csv') await write(`${CSV_COLUMNS.join(',')}\r\n`);
    let after = q.after;
    let total = 0;
    const max = q.limit ?? Infinity;
    for (;;) {
      const { rows } = await this.fetch(q, after, Math.min(EXPORT_PAGE, max - total));
      let chunk = '';
      for (const r of rows) {
        const v: BlockEventView = toView(r);
        chunk += format === 'csv' ? csvLine(v) : `${JSON.stringify(v)}\n`;
      }
      if (chunk) await write(chunk);
      total += rows.length;
      const last = rows[rows.length - 1];
      if (!last || rows.length < EXPORT_PAGE || total >= max) return total;
      after = encodeCursor(last.time_us, last.id);
    }
  }

  /**
   * Counts by a key, optionally per time bucket. Whole hours come from the
   * hourly rollup when the key and filters allow it; the ragged edges from
   * block_events. Every other query reads block_events: exactly when the
   * planner expects at most CGFENCE_EVENTS_AGGREGATE_EXACT_ROWS matching
   * events (and the count ends within CGFENCE_EVENTS_AGGREGATE_EXACT_MS),
   * else from a page sample of the range sized to read about
   * CGFENCE_EVENTS_AGGREGATE_SAMPLE_ROWS events, scaled up and marked
   * `sampled`. A broad filter over millions of events thus costs a bounded
   * read instead of a scan of the range.
   */
  async aggregate(q: EventsAggregateQuery, now = Date.now()): Promise<AggregateView> {
    const bucket = q.bucket ?? null;
    const probe = aggregateKey(q.by, new Params());
    const canRollup = probe.rollup !== undefined && bucket !== 'minute' && filtersUsed(q).every((f) => ROLLUP_FILTERS.has(f));
    if (canRollup) return this.aggregateSql(q, now, 'rollup');
    const { exactRows, sampleRows, exactMs } = this.config.eventsAggregate;
    const matching = await this.estimateRows(q, true);
    if (matching <= exactRows) {
      try {
        return await this.aggregateSql(q, now, 'raw', undefined, exactMs);
      } catch (err) {
        // 57014: cancelled by the statement timeout (the planner underestimated): answer from the sample.
        if ((err as { code?: string }).code !== '57014') throw err;
      }
    }
    const inRange = await this.estimateRows(q, false);
    const percent = Math.min(100, Math.max(0.001, Number(((100 * sampleRows) / Math.max(1, inRange)).toPrecision(3))));
    return this.aggregateSql(q, now, 'raw', percent);
  }

  /**
   * The History page's chart and top-N panels. Panels the rollup answers come
   * from it (as aggregate() would); the others share one read of
   * block_events (materialized once, then grouped per panel), exact or
   * sampled by the same rule as aggregate().
   */
  async summary(q: EventsSummaryQuery, now = Date.now()): Promise<EventsSummaryView> {
    const { bucket: chartBucket, top: topN, labelKey, ...filter } = q;
    const top = topN ?? 10;
    const panels: EventsAggregateQuery[] = [
      { ...filter, by: 'action', bucket: chartBucket ?? 'hour' },
      { ...filter, by: 'domain', limit: top },
      { ...filter, by: 'host', limit: top },
      { ...filter, by: 'command', limit: top },
      { ...filter, by: `label:${labelKey ?? 'job'}`, limit: top },
    ];
    const rollup = (a: EventsAggregateQuery): boolean =>
      aggregateKey(a.by, new Params()).rollup !== undefined && a.bucket !== 'minute' && filtersUsed(a).every((f) => ROLLUP_FILTERS.has(f));
    const raw = panels.filter((a) => !rollup(a));
    const fromRaw = async (): Promise<AggregateView[]> => {
      if (raw.length === 0) return [];
      const { exactRows, sampleRows, exactMs } = this.config.eventsAggregate;
      if ((await this.estimateRows(filter, true)) <= exactRows) {
        try {
          return await this.sharedRead(filter, raw, undefined, exactMs);
        } catch (err) {
          if ((err as { code?: string }).code !== '57014') throw err;
        }
      }
      const inRange = await this.estimateRows(filter, false);
      return this.sharedRead(filter, raw, Math.min(100, Math.max(0.001, Number(((100 * sampleRows) / Math.max(1, inRange)).toPrecision(3)))));
    };
    const [rawViews, ...rollupViews] = await Promise.all([fromRaw(), ...panels.filter(rollup).map((a) => this.aggregateSql(a, now, 'rollup'))]);
    const answers = new Map<EventsAggregateQuery, AggregateView>();
    raw.forEach((a, i) => answers.set(a, rawViews[i]!));
    panels.filter(rollup).forEach((a, i) => answers.set(a, rollupViews[i]!));
    const [series, domain, host, command, label] = panels.map((a) => answers.get(a)!);
    return { series: series!, top: { domain: domain!, host: host!, command: command!, label: label! } };
  }

  /**
   * Several aggregates of one filter from one read of block_events (a sample
   * of `samplePercent` % of its pages, or all of it): the read keeps only
   * each panel's bucket and key, and each panel groups that.
   */
  private async sharedRead(filter: EventFilter, panels: EventsAggregateQuery[], samplePercent?: number, timeoutMs?: number): Promise<AggregateView[]> {
    const p = new Params();
    const from = samplePercent === undefined ? 'block_events' : `block_events tablesample system (${samplePercent}) repeatable (16)`;
    const scale = samplePercent === undefined ? '' : ` * 100 / ${samplePercent}`;
    const cols = panels.map((a, i) => `${a.bucket ? `date_trunc('${a.bucket}', time, 'UTC')` : 'null::timestamptz'} as b${i}, ${aggregateKey(a.by, p).raw} as k${i}`);
    const reads = `select ${cols.join(', ')} from ${from} ${where([...timeConditions(filter.from, filter.to, p), ...eventConditions(filter, p)])}`;
    const selects = panels.map((a, i) => {
      const order = a.bucket ? 'bucket, n desc, key' : 'n desc, key';
      return `(select ${i} as panel, bucket, key, n, row_number() over (order by ${order}) as rank
                 from (select b${i} as bucket, k${i} as key, count(*) as n from s group by 1, 2) g
                order by ${order} limit ${p.add(a.limit ?? (a.bucket ? 10_000 : 100), 'int4')})`;
    });
    const sql = `with s as materialized (${reads})
                 select panel, bucket, key, round(n${scale})::int8 as n, (select count(*) from s)::int8 as matched from (${selects.join(' union all ')}) x
                  order by panel, rank`;
    type Row = { panel: number; bucket: Date | null; key: string | null; n: string; matched: string };
    const rows = await this.db.tx(async (c) => {
      // The read (a few tens of thousands of short rows) and its groupings stay in memory.
      await c.query(`set local work_mem = '32MB'`);
      if (timeoutMs !== undefined) await c.query(`set local statement_timeout = ${Math.floor(timeoutMs)}`);
      return (await c.query(sql, p.values)).rows as Row[];
    });
    const matched = Number(rows[0]?.matched ?? 0);
    return panels.map((a, i) => ({
      by: a.by,
      bucket: a.bucket ?? null,
      rows: rows.filter((r) => r.panel === i).map((r) => ({ bucket: r.bucket ? r.bucket.toISOString() : null, key: r.key, count: Number(r.n) })),
      sampled: samplePercent === undefined ? null : { percent: samplePercent, rows: matched },
    }));
  }

  /** The planner's estimate of the events in the query's time range (with its filters, or not). */
  private async estimateRows(q: EventFilter, filtered: boolean): Promise<number> {
    const p = new Params();
    const c = [...timeConditions(q.from, q.to, p), ...(filtered ? eventConditions(q, p) : [])];
    const [row] = await this.db.query<{ 'QUERY PLAN': [{ Plan: { 'Plan Rows': number } }] }>(`explain (format json) select 1 from block_events ${where(c)}`, p.values);
    return row!['QUERY PLAN'][0].Plan['Plan Rows'];
  }

  private async aggregateSql(q: EventsAggregateQuery, now: number, source: 'rollup' | 'raw', samplePercent?: number, timeoutMs?: number): Promise<AggregateView> {
    const p = new Params();
    const key = aggregateKey(q.by, p);
    const bucket = q.bucket ?? null;
    const bucketExpr = (col: string): string => (bucket ? `date_trunc('${bucket}', ${col}, 'UTC')` : 'null::timestamptz');
    const parts: string[] = [];
    // A sampled read: whole pages (SYSTEM), the same pages for every panel of one filter (REPEATABLE).
    const from = samplePercent === undefined ? 'block_events' : `block_events tablesample system (${samplePercent}) repeatable (16)`;
    const raw = (lo: Date | undefined, hi: Date | undefined): string =>
      `select ${bucketExpr('time')} as bucket, ${key.raw} as key, count(*) as n from ${from}
        ${where([...timeConditions(lo, hi, p), ...eventConditions(q, p)])} group by 1, 2`;
    if (source === 'rollup') {
      const split = splitHours(q.from, q.to, now);
      if (split.hours) {
        const c = timeConditions(split.hours[0], split.hours[1], p, 'hour');
        if (q.host !== undefined) c.push(`host = ${p.add(q.host)}`);
        if (q.cohort !== undefined) c.push(`cohort = ${p.add(q.cohort)}`);
        if (q.action !== undefined) c.push(`action = ${p.add(q.action)}`);
        if (q.method !== undefined) c.push(`method = ${p.add(q.method)}`);
        if (q.blocklist !== undefined) c.push(`blocklist = ${p.add(q.blocklist)}`);
        if (q.version !== undefined) c.push(`version = ${p.add(q.version, 'int4')}`);
        parts.push(`select ${bucketExpr('hour')} as bucket, ${key.rollup!} as key, sum(n) as n from block_event_counts ${where(c)} group by 1, 2`);
      }
      for (const [lo, hi] of split.edges) parts.push(raw(lo, hi));
    } else {
      parts.push(raw(q.from, q.to));
    }
    const limit = p.add(q.limit ?? (bucket ? 10_000 : 100), 'int4');
    const order = bucket ? 'bucket, n desc, key' : 'n desc, key';
    const scale = samplePercent === undefined ? '' : ` * 100 / ${samplePercent}`;
    const sql = `select bucket, key, round(sum(n)${scale})::int8 as n, sum(sum(n)) over ()::int8 as matched
                   from (${parts.join(' union all ')}) x group by 1, 2 order by ${order} limit ${limit}`;
    type Row = { bucket: Date | null; key: string | null; n: string; matched: string };
    const rows =
      timeoutMs === undefined
        ? await this.db.query<Row>(sql, p.values)
        : await this.db.tx(async (c) => {
            await c.query(`set local statement_timeout = ${Math.floor(timeoutMs)}`);
            return (await c.query(sql, p.values)).rows as Row[];
          });
    return {
      by: q.by,
      bucket,
      rows: rows.map((r) => ({ bucket: r.bucket ? r.bucket.toISOString() : null, key: r.key, count: Number(r.n) })),
      sampled: samplePercent === undefined ? null : { percent: samplePercent, rows: Number(rows[0]?.matched ?? 0) },
    };
  }

  /** Runs started since `q.since` (default 24 h), newest first, with their block and contacted-domain counts. */
  async runs(q: RunsQuery, now = Date.now()): Promise<RunsPage> {
    const since = q.since ?? new Date(now - 24 * 3_600_000);
    const p = new Params();
    const c = [`r.started_at >= ${p.add(since.toISOString(), 'timestamptz')}`];
    if (q.host !== undefined) c.push(`r.host = ${p.add(q.host)}`);
    if (q.cohort !== undefined) c.push(`r.cohort = ${p.add(q.cohort)}`);
    for (const [k, v] of q.label ?? []) c.push(`r.labels ->> ${p.add(k)} = ${p.add(v)}`);
    const limit = p.add(q.limit ?? 100, 'int4');
    // Counts per run on the (run_id, time) index of block_events, from the run's start.
    const rows = await this.db.query<{
      run_id: string; host: string; cohort: string | null; labels: Record<string, string>; command: string | null; started_at: Date;
      ended_at: Date | null; exit_code: number | null; signal: string | null; blocks: string; audited: string; domains: string;
      uid: number | null; run_user: string | null;
    }>(
      `select r.run_id, r.host, r.cohort, r.labels, r.command, r.started_at, r.ended_at, r.exit_code, r.signal, r.uid, r.run_user,
              coalesce(e.blocks, 0) as blocks, coalesce(e.audited, 0) as audited,
              (select count(*) from run_domains d where d.run_id = r.run_id) + r.overflow as domains
         from runs r
         left join lateral (
           select count(*) filter (where action = 'blocked') as blocks, count(*) filter (where action = 'audited') as audited
             from block_events b where b.run_id = r.run_id and b.time >= r.started_at - interval '1 minute'
         ) e on true
        ${where(c)}
        order by r.started_at desc, r.run_id desc
        limit ${limit}`,
      p.values,
    );
    return {
      since: since.toISOString(),
      runs: rows.map((r) => ({
        runId: r.run_id,
        host: r.host,
        cohort: r.cohort,
        labels: r.labels,
        command: r.command,
        startedAt: r.started_at.toISOString(),
        endedAt: r.ended_at?.toISOString() ?? null,
        durationMs: r.ended_at ? r.ended_at.getTime() - r.started_at.getTime() : null,
        exitCode: r.exit_code,
        signal: r.signal,
        blocks: Number(r.blocks),
        audited: Number(r.audited),
        domains: Number(r.domains),
        uid: r.uid,
        user: r.run_user,
      })),
    };
  }

  async run(runId: string): Promise<RunView> {
    const [runs, counts, latest, domains] = await Promise.all([
      this.db.query<{
        run_id: string; host: string; cohort: string | null; labels: Record<string, string>; command: string | null; started_at: Date;
        ended_at: Date | null; exit_code: number | null; signal: string | null; overflow: number; policy_version: string | null;
      }>(`select * from runs where run_id = $1`, [runId]),
      this.db.query<{ action: string; n: string; first: Date }>(`select action, count(*) as n, min(time) as first from block_events where run_id = $1 group by 1`, [runId]),
      this.db.query<EventDbRow>(`select ${SELECT_EVENT} from block_events where run_id = $1 order by time desc, id desc limit 20`, [runId]),
      this.db.query<{ name: string; queries: number; blocked: number; first_seen: Date; last_seen: Date }>(
        `select name, queries, blocked, first_seen, last_seen from run_domains where run_id = $1 order by blocked desc, queries desc, name`,
        [runId],
      ),
    ]);
    const run = runs[0];
    const newest = latest[0];
    if (!run && !newest) throw new DomainError('run.not_found', `no run ${runId} is recorded (no summary and no block events)`);
    const by = (a: string): number => Number(counts.find((c) => c.action === a)?.n ?? 0);
    const events = { total: by('blocked') + by('audited') + by('alert'), blocked: by('blocked'), audited: by('audited'), alert: by('alert') };
    const firstEvent = counts.reduce<Date | undefined>((m, c) => (!m || c.first < m ? c.first : m), undefined);
    return {
      runId,
      // A run still going has no summary yet: what its events say.
      host: run?.host ?? newest!.host,
      cohort: run ? run.cohort : newest!.cohort,
      labels: run?.labels ?? newest!.labels,
      command: run?.command ?? null,
      startedAt: (run?.started_at ?? firstEvent!).toISOString(),
      endedAt: run?.ended_at?.toISOString() ?? null,
      exitCode: run?.exit_code ?? null,
      signal: run?.signal ?? null,
      policyVersion: run?.policy_version ?? newest?.policy_version ?? null,
      overflow: run?.overflow ?? 0,
      events,
      latest: latest.map(toView),
      domains: domains.map((d) => ({ name: d.name, queries: d.queries, blocked: d.blocked, firstSeen: d.first_seen.toISOString(), lastSeen: d.last_seen.toISOString() })),
    };
  }

  /** Which names resolved by runs since `since` version N of a blocklist would have blocked, per run and per host. */
  async replay(name: string, version: number, since: string, now = Date.now()): Promise<ReplayView> {
    const sinceAt = parseTimeParam(since, now);
    if (!sinceAt) throw new DomainError('validation.failed', `since must be an ISO 8601 time or a duration back from now (7d)`, [{ field: 'since', reason: 'not a time' }]);
    // The version's entries are read, compiled and matched against the names runs resolved on a
    // worker thread: a 1,000,000-entry version never reaches the event loop, only the hits come back.
    const hit = new Map(await this.blocklists.replayMatch(name, version, sinceAt.toISOString()));
    const [{ n: runsExamined }] = await this.db.query<{ n: number }>(`select count(*)::int as n from runs where started_at >= $1`, [sinceAt.toISOString()]);
    const rows =
      hit.size === 0
        ? []
        : await this.db.query<{ run_id: string; host: string; started_at: Date; name: string; queries: number; owner: string | null }>(
            `select r.run_id, r.host, r.started_at, d.name, d.queries, r.labels->>$3 as owner from run_domains d join runs r using (run_id)
              where r.started_at >= $1 and d.name = any($2::text[]) order by r.started_at desc, r.run_id, d.name`,
            [sinceAt.toISOString(), [...hit.keys()], this.config.findingsOwnerLabel],
          );
    const runs = new Map<string, ReplayView['runs'][number]>();
    const hosts = new Map<string, { runs: Set<string>; domains: Set<string> }>();
    const domains = new Map<string, { runs: Set<string>; hosts: Set<string> }>();
    /** Per (owner, entry): the finding the version would make or add to. */
    const byOwner = new Map<string, { owner: string; entry: string; runs: Set<string>; hosts: Set<string> }>();
    for (const r of rows) {
      const entry = hit.get(r.name)!;
      const owner = r.owner ?? '';
      const ok = `${owner}\u0000${entry}`;
      const f = byOwner.get(ok) ?? { owner, entry, runs: new Set(), hosts: new Set() };
      f.runs.add(r.run_id);
      f.hosts.add(r.host);
      byOwner.set(ok, f);
      let run = runs.get(r.run_id);
      if (!run) runs.set(r.run_id, (run = { runId: r.run_id, host: r.host, startedAt: r.started_at.toISOString(), domains: [] }));
      run.domains.push({ name: r.name, queries: r.queries, entry });
      const h = hosts.get(r.host) ?? { runs: new Set(), domains: new Set() };
      h.runs.add(r.run_id);
      h.domains.add(r.name);
      hosts.set(r.host, h);
      const d = domains.get(r.name) ?? { runs: new Set(), hosts: new Set() };
      d.runs.add(r.run_id);
      d.hosts.add(r.host);
      domains.set(r.name, d);
    }
    return {
      blocklist: name,
      version,
      since: sinceAt.toISOString(),
      runsExamined,
      owners: await this.replayOwners([...byOwner.values()]),
      runs: [...runs.values()],
      hosts: [...hosts].map(([host, h]) => ({ host, runs: h.runs.size, domains: [...h.domains].sort() })).sort((a, b) => b.runs - a.runs || a.host.localeCompare(b.host)),
      domains: [...domains]
        .map(([n, d]) => ({ name: n, entry: hit.get(n)!, runs: d.runs.size, hosts: d.hosts.size }))
        .sort((a, b) => b.runs - a.runs || a.name.localeCompare(b.name)),
    };
  }

  /** The replay's hits per owner: which would be new findings, and which add to one that exists (in what state). */
  private async replayOwners(hits: { owner: string; entry: string; runs: Set<string>; hosts: Set<string> }[]): Promise<ReplayView['owners']> {
    const key = this.config.findingsOwnerLabel;
    const ids = hits.map((h) => findingIdOf(key, h.owner, h.entry));
    const known = new Map(
      ids.length === 0
        ? []
        : (await this.db.query<{ id: string; state: string }>(`select id, state from rm_findings where id = any($1::text[])`, [ids])).map((r) => [r.id, r.state]),
    );
    const teams = new Map(
      (await this.db.query<{ value: string; team: string | null }>(`select value, team from rm_owners where key = $1`, [key])).map((r) => [r.value, r.team]),
    );
    const owners = new Map<string, NonNullable<ReplayView['owners']>[number]>();
    hits.forEach((h, i) => {
      const o = owners.get(h.owner) ?? { ownerKey: key, owner: h.owner, team: teams.get(h.owner) ?? null, newFindings: 0, findings: [] };
      const state = known.get(ids[i]!) ?? null;
      if (state === null) o.newFindings++;
      o.findings.push({ id: ids[i]!, entry: h.entry, existing: state, runs: h.runs.size, hosts: h.hosts.size });
      owners.set(h.owner, o);
    });
    return [...owners.values()]
      .map((o) => ({ ...o, findings: o.findings.sort((a, b) => b.runs - a.runs || a.entry.localeCompare(b.entry)) }))
      .sort((a, b) => b.newFindings - a.newFindings || a.owner.localeCompare(b.owner));
  }
}
