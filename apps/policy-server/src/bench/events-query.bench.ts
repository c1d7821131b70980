// Benchmark: queries on 10 million stored block events (issue 6).
// Targets: p95 < 100 ms for "one host, last 24 hours", < 100 ms for "one
// domain suffix, last 7 days", < 500 ms for "hourly counts per cohort for 7
// days", through EventsQueryService (the code the REST API calls). Events are
// generated in PostgreSQL (generate_series, one connection per day) over 8
// days, 500 hosts, 10 cohorts, 50,000 names under 1,000 domains; the hourly
// rollup is built from them the way ingestion builds it.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from 'pg';
import { DataSource } from 'typeorm';
import { PostgresServer, printTable, quantile, timeMs, verdict } from '@cgfence/devservices';
import { EventsAggregateQuery, EventsQuery } from '@cgfence/proto';
import { dataSourceOptions } from '../app.module';
import type { BlocklistsService } from '../blocklists/blocklists.service';
import { loadConfig } from '../config/config';
import { EventsDb } from '../events/events-db';
import { EventsQueryService } from '../events/events-query.service';
import { fillBlockEvents } from './block-events-fixture';

const TOTAL = Number(process.env.CGFENCE_BENCH_QUERY_EVENTS ?? 10_000_000);
const DAYS = 8;
const RUNS = 60;

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'cgfence-bench-query-'));
  let pg: PostgresServer | undefined;
  let edb: EventsDb | undefined;
  try {
    pg = await PostgresServer.start({ dir: join(dir, 'pg'), fast: true });
    const url = await pg.createDatabase('events_query');
    const config = loadConfig({ CGFENCE_DATABASE_URL: url });
    const ds = await new DataSource(dataSourceOptions(config)).initialize();
    await ds.runMigrations();
    await ds.destroy();

    const now = Date.now();
    const admin = new Client({ connectionString: url });
    await admin.connect();
    const { gen, rollup } = await fillBlockEvents(url, TOTAL, DAYS, now);
    const stored = ((await admin.query(`select count(*)::int8 as n from block_events`)).rows[0] as { n: string }).n;

    edb = new EventsDb(config);
    const svc = new EventsQueryService(edb, undefined as unknown as BlocklistsService, config);
    const measure = async (fn: (i: number) => Promise<unknown>, runs = RUNS): Promise<{ p50: number; p95: number; sample: unknown }> => {
      const ms: number[] = [];
      let sample: unknown;
      for (let i = -Math.min(5, runs); i < runs; i++) {
        const r = await timeMs(() => fn(i));
        if (i >= 0) ms.push(r.ms);
        sample = r.value;
      }
      return { p50: quantile(ms, 0.5), p95: quantile(ms, 0.95), sample };
    };
    const host = await measure((i) => svc.page(EventsQuery.parse({ host: `host-${(i * 37 + 500) % 500}`, from: '24h' })));
    const suffix = await measure((i) => svc.page(EventsQuery.parse({ domain: `*.dom${(i * 13 + 1000) % 1000}.example`, from: '7d' })));
    const hourly = await measure(() => svc.aggregate(EventsAggregateQuery.parse({ by: 'cohort', bucket: 'hour', from: '7d' })));
    const hourlyRaw = await measure(() => svc.aggregate(EventsAggregateQuery.parse({ by: 'cohort', bucket: 'hour', from: '7d', cmd: 'curl' })), 5);
    const rows = (s: { sample: unknown }): number => {
      const v = s.sample as { events?: unknown[]; rows?: unknown[] };
      return (v.events ?? v.rows ?? []).length;
    };
    printTable({
      title: `Block event queries on ${Number(stored).toLocaleString('en-US')} stored events (${DAYS} days, 500 hosts, 10 cohorts; ${RUNS} runs each, after 5 warm-up)`,
      head: ['query', 'rows returned', 'p50 ms', 'p95 ms', 'target p95', 'verdict'],
      rows: [
        ['one host, last 24 hours (page of 100, newest first)', rows(host), host.p50, host.p95, '< 100 ms', verdict(host.p95 < 100)],
        ['one domain suffix (*.domN.example), last 7 days (page of 100)', rows(suffix), suffix.p50, suffix.p95, '< 100 ms', verdict(suffix.p95 < 100)],
        ['hourly counts per cohort, 7 days (rollup + raw edges)', rows(hourly), hourly.p50, hourly.p95, '< 500 ms', verdict(hourly.p95 < 500)],
        ['same, with a cmd filter (raw table only, 5 runs; no target)', rows(hourlyRaw), hourlyRaw.p50, hourlyRaw.p95, '-', '-'],
      ],
      notes: [`generation: ${(gen.ms / 1000).toFixed(1)} s with ${DAYS} connections; rollup build ${(rollup.ms / 1000).toFixed(1)} s`],
    });
    const sizes = (
      await admin.query(`
        select 'block_events (all partitions)' as what, sum(pg_table_size(c.oid))::int8 as table_bytes, sum(pg_indexes_size(c.oid))::int8 as index_bytes
          from pg_inherits i join pg_class c on c.oid = i.inhrelid where i.inhparent = 'block_events'::regclass
        union all
        select 'block_event_counts', pg_table_size('block_event_counts'), pg_indexes_size('block_event_counts')`)
    ).rows as { what: string; table_bytes: string; index_bytes: string }[];
    const indexes = (
      await admin.query(`
        select regexp_replace(ci.relname, '^block_events_p\\d+_', '') as idx, sum(pg_relation_size(ci.oid))::int8 as bytes
          from pg_inherits i join pg_index x on x.indrelid = i.inhrelid join pg_class ci on ci.oid = x.indexrelid
         where i.inhparent = 'block_events'::regclass group by 1 order by 2 desc`)
    ).rows as { idx: string; bytes: string }[];
    const mib = (b: string): number => Number(b) / 1048576;
    printTable({
      title: 'Storage',
      head: ['relation', 'table MiB', 'indexes MiB', 'bytes/event (table+indexes)'],
      rows: sizes.map((s) => [s.what, mib(s.table_bytes), mib(s.index_bytes), s.what.startsWith('block_events') ? (Number(s.table_bytes) + Number(s.index_bytes)) / Number(stored) : '-']),
      notes: indexes.map((i) => `index ${i.idx}: ${mib(i.bytes).toFixed(0)} MiB over all partitions`),
    });
    await admin.end();
  } finally {
    await edb?.onApplicationShutdown();
    await pg?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
