// Benchmark: block events from simulated agents through JetStream into
// PostgreSQL. Target (issue 6): ≥ 50,000 events/s sustained.
//
// Real PostgreSQL, real nats-server, the real policy server as its own
// process. For each case (the COPY path and the multi-row INSERT baseline on
// the tests' PostgreSQL with fsync off, and the COPY path on a durable
// PostgreSQL), each on its own fresh database: simulated agents (8 NATS
// connections, JetStream publish with msgID = event id, 1,000 in flight each)
// fill the stream with ingestion off, then a server with ingestion on drains
// it; its rate is the events committed per second from the first to the last
// commit. Findings are on (the default) in every case but one, which is the
// COPY case again with CGFENCE_FINDINGS=false: the cost of findings on
// ingestion, measured in the same run. The events carry a `service` label
// from 50 values, so each batch feeds about 50 findings.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from 'pg';
import { connect } from '@nats-io/transport-node';
import { jetstream } from '@nats-io/jetstream';
import { freePort, ManagedProcess, median, NatsServer, PostgresServer, printTable, startPolicyServer, verdict, waitFor } from '@cgfence/devservices';
import { EVENT_SUBJECTS } from '@cgfence/proto';
import { blockEvent } from '../events/test-events';

const N = Number(process.env.CGFENCE_BENCH_EVENTS ?? 300_000);
const AGENTS = 8;
const IN_FLIGHT = 1000;
const TARGET = 50_000;
/** Drains per COPY case: one drain lasts a few seconds, and the machine's other load moves it by ±10%. */
const ROUNDS = 3;

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'cgfence-bench-ingest-'));
  const stops: (() => Promise<unknown>)[] = [];
  const rows: (string | number)[][] = [];
  try {
    // Two PostgreSQL clusters: the tests' (fsync and synchronous commit off)
    // and a durable one, set as production must be (the server acks JetStream
    // after the commit, so a commit that is not on disk could lose events).
    const fastPg = await PostgresServer.start({ dir: join(dir, 'pg'), fast: true });
    stops.push(() => fastPg.stop());
    const durablePg = await PostgresServer.start({ dir: join(dir, 'pg-durable') });
    stops.push(() => durablePg.stop());
    const nats = await NatsServer.start({ dir: join(dir, 'nats') });
    stops.push(() => nats.stop());
    let copyRate = NaN;
    let noFindingsRate = NaN;
    let durableRate = NaN;
    const only = process.env.CGFENCE_BENCH_CASES?.split(',');
    const cases = [
      { name: 'COPY (staging on a key collision)', path: 'copy', pg: fastPg, durable: false, rounds: ROUNDS, findings: true },
      { name: 'COPY, findings off', path: 'copy', pg: fastPg, durable: false, rounds: ROUNDS, findings: false },
      { name: 'multi-row INSERT (baseline)', path: 'insert', pg: fastPg, durable: false, rounds: 1, findings: true },
      { name: 'COPY, durable PostgreSQL', path: 'copy', pg: durablePg, durable: true, rounds: ROUNDS, findings: true },
    ].filter((_, i) => !only || only.includes(String(i + 1)));
    // Rounds are interleaved across cases (round 1 of each, then round 2, …), so a
    // change in the machine's other load hits every case alike.
    type Run = { stored: number; pubRate: number; rate: number; wall: number; findings: number };
    const results = new Map<(typeof cases)[number], Run[]>(cases.map((c) => [c, []]));
    const maxRounds = Math.max(...cases.map((c) => c.rounds));
    for (let round = 1; round <= maxRounds; round++) {
      for (const c of cases) {
        if (round > c.rounds) continue;
        const { path: writePath, pg, durable, findings } = c;
        const runs = results.get(c)!;
        const path = `${writePath}${durable ? '_durable' : ''}${findings ? '' : '_nofindings'}_${round}`;
        const databaseUrl = await pg.createDatabase(`ingest_${path}`);
        const startServer = async (ingest: boolean): Promise<ManagedProcess> =>
          startPolicyServer({
            name: `policy-server-${path}`,
            main: join(__dirname, '..', 'main.js'),
            port: await freePort(),
            log: join(dir, `server-${path}-${ingest}.log`),
            nats: true,
            // CGFENCE_BENCH_CPU_PROF=<dir>: CPU profiles of the ingesting servers (a look at where time goes; not a result).
            nodeArgs: ingest && process.env['CGFENCE_BENCH_CPU_PROF'] ? ['--cpu-prof', `--cpu-prof-dir=${process.env['CGFENCE_BENCH_CPU_PROF']}/${path}`] : [],
            env: {
              ...process.env,
              CGFENCE_DATABASE_URL: databaseUrl,
              CGFENCE_STATE_DIR: join(dir, `state-${path}`),
              CGFENCE_NATS_URL: nats.url(),
              CGFENCE_LOG_LEVEL: 'warn',
              CGFENCE_EVENTS_WRITE_PATH: writePath,
              CGFENCE_EVENTS_INGEST: String(ingest),
              CGFENCE_FINDINGS: String(findings),
            },
          });
        // Phase 1 (ingestion off): the agents fill the stream. Phase 2: a server
        // with ingestion on drains the backlog; its rate is the server's capacity,
        // not the publishers'.
        let server = await startServer(false);
        const db = new Client({ connectionString: databaseUrl });
        await db.connect();

        const t0 = Date.now();
        let publishedAt = 0;
        const publish = (async () => {
          const per = Math.ceil(N / AGENTS);
          await Promise.all(
            Array.from({ length: AGENTS }, async (_, a) => {
              const nc = await connect({ servers: nats.url() });
              const js = jetstream(nc);
              const host = `bench-${path}-${a}`;
              for (let i = 0; i < per; i += IN_FLIGHT) {
                const batch: Promise<unknown>[] = [];
                for (let j = i; j < Math.min(per, i + IN_FLIGHT); j++) {
                  const e = blockEvent(host, j, t0 - 3_600_000 + j, { labels: { service: `svc${j % 50}`, stage: 'deploy' } });
                  batch.push(js.publish(EVENT_SUBJECTS.block(host), JSON.stringify(e), { msgID: e.id, timeout: 30_000 }));
                }
                await Promise.all(batch);
              }
              await nc.close();
            }),
          );
          publishedAt = Date.now();
        })();
        await publish;
        await server.stop();
        server = await startServer(true);
        await waitFor(`${N} events stored (${path})`, async () => ((await db.query(`select count(*)::int as n from block_events`)).rows[0] as { n: number }).n >= N, 240_000);
        const r = (await db.query(`select count(*)::int as n, extract(epoch from max(received_at) - min(received_at))::float8 as s from block_events`)).rows[0] as { n: number; s: number };
        const rate = r.n / r.s;
        // Findings are fed after each batch's commit; wait until every occurrence has become a finding event.
        if (findings) await waitFor(`findings fed (${path})`, async () => ((await db.query(`select count(*)::int as n from finding_occurrences`)).rows[0] as { n: number }).n === 0, 240_000);
        const counted = ((await db.query(`select coalesce(sum(blocked), 0)::int as n from rm_findings`)).rows[0] as { n: number }).n;
        if (findings && counted !== r.n) throw new Error(`findings counted ${counted} blocks of ${r.n}`);
        runs.push({ stored: r.n, pubRate: N / ((publishedAt - t0) / 1000), rate, wall: (Date.now() - t0) / 1000, findings: counted });
        await db.end();
        await server.stop();
        // Its autovacuum (vacuum and analyze after 300,000 inserts) must not take CPU from the next case.
        await pg.dropDatabase(`ingest_${path}`);
      }
    }
    for (const [{ name, path: writePath, durable, findings }, runs] of results) {
      const rate = median(runs.map((x) => x.rate));
      if (writePath === 'copy' && !durable && findings) copyRate = rate;
      if (!findings) noFindingsRate = rate;
      if (durable) durableRate = rate;
      rows.push([
        name, durable ? 'on' : 'off', findings ? 'on' : 'off', Math.min(...runs.map((x) => x.stored)), Math.min(...runs.map((x) => x.findings)), Math.round(median(runs.map((x) => x.pubRate))), Math.round(rate),
        runs.map((x) => `${Math.round(x.rate / 1000)}k`).join(' '), runs.reduce((t, x) => t + x.wall, 0).toFixed(1),
      ]);
    }
    printTable({
      title: `Block event ingestion: ${N.toLocaleString('en-US')} events from ${AGENTS} simulated agents through JetStream into PostgreSQL`,
      head: ['write path', 'PG fsync', 'findings', 'events stored', 'blocks in findings', 'published/s', 'ingested/s (median, first→last commit)', 'runs', 'wall s'],
      rows,
      notes: [
        `target: ≥ ${TARGET.toLocaleString('en-US')} events/s ingested with the COPY path: ${verdict(copyRate >= TARGET)} with the tests' PostgreSQL (fsync off); ${verdict(durableRate >= TARGET)} with a durable one (${Math.round(durableRate).toLocaleString('en-US')}/s)`,
        `findings on vs off (COPY, fsync off, same run): ${Number.isNaN(noFindingsRate) || Number.isNaN(copyRate) ? 'not measured' : `${Math.round(copyRate).toLocaleString('en-US')}/s vs ${Math.round(noFindingsRate).toLocaleString('en-US')}/s (${(((copyRate - noFindingsRate) / noFindingsRate) * 100).toFixed(1)}%)`}; with findings on, the blocks counted in findings equal the events stored`,
        'each event is validated (zod) and checked against its subject host on the decode thread, written with its hourly rollup in one transaction per batch (up to 5,000 events), acked after commit',
        'PostgreSQL, nats-server, the server and the publishers share this 2-core machine; PostgreSQL runs with its default settings apart from fsync',
        'published/s: the simulated agents (8 connections in one node process, JetStream publish with ack) filling the stream with ingestion off; ingested/s: a server with ingestion on draining that backlog',
      ],
    });
  } finally {
    for (const stop of stops.reverse()) await stop().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
