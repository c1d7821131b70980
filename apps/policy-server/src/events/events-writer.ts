import { Injectable } from '@nestjs/common';
import type { PoolClient } from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { once } from 'node:events';
import { finished } from 'node:stream/promises';
import type { RunSummary } from '@cgfence/proto';
import { EventsDb } from './events-db';
import { findingIdOf, OccurrenceGroup, OccurrenceGrouper } from '../findings/occurrences';
import { addOccurrence, EventBatch, PreparedEvents, RollupCount, RollupCounter } from './event-batch';
import { EVENT_COLUMNS, EVENT_TYPES, EventRow } from './rows';

export type WritePath = 'copy' | 'insert';

const COLS = EVENT_COLUMNS.join(', ');
/** Rows per multi-row INSERT statement (23 parameters each, under the 65,535 limit). */
const INSERT_CHUNK = 1000;

/** What an ON CONFLICT DO NOTHING insert returns of each row it really inserted: the rollup's grouping. */
const RETURNING_ROLLUP = 'returning time, host, cohort, action, method, blocklist, version';

interface InsertedRow {
  time: Date;
  host: string;
  cohort: string | null;
  action: string;
  method: string;
  blocklist: string | null;
  version: number | null;
}

/** With findings on, what they need of each inserted row as well. */
const RETURNING_FINDINGS = ', entry, qname, labels, run_id, cmdline, comm, policy_version';

/**
 * Runs an insert … ON CONFLICT DO NOTHING RETURNING_ROLLUP and counts the
 * rows it inserted (and groups them into finding occurrences, when a
 * grouper is given: only rows really inserted make findings).
 */
async function insertCounting(c: PoolClient, sql: string, params: unknown[], counts: RollupCounter, findings?: OccurrenceGrouper): Promise<number> {
  const r = await c.query(`${sql} on conflict do nothing ${RETURNING_ROLLUP}${findings ? RETURNING_FINDINGS : ''}`, params);
  for (const x of r.rows as (InsertedRow & Record<string, unknown>)[]) {
    counts.add(x.time.getTime(), x.host, x.cohort, x.action, x.method, x.blocklist, x.version);
    if (findings) {
      // Columns not returned are null here; findings need none of them.
      const row = EVENT_COLUMNS.map((k) => (k === 'time' ? x.time.toISOString() : ((x[k] ?? null) as string | number | null)));
      addOccurrence(findings, row, x.time.getTime(), x['labels'] as Record<string, string>);
    }
  }
  return r.rows.length;
}

/**
 * Queues a batch's finding occurrences, in the batch's transaction: one row
 * per (owner, entry), turned into finding events by the findings feeder
 * after the commit.
 */
async function addOccurrences(c: PoolClient, groups: readonly OccurrenceGroup[]): Promise<void> {
  if (groups.length === 0) return;
  const rows = groups.map((g) => ({
    finding_id: findingIdOf(g.ownerKey, g.owner, g.entry), owner_key: g.ownerKey, owner: g.owner, entry: g.entry,
    first_seen: new Date(g.firstMs).toISOString(), last_seen: new Date(g.lastMs).toISOString(), blocked: g.blocked, audited: g.audited,
    names: g.names, hosts: g.hosts, cohorts: g.cohorts, runs: g.runs, commands: g.commands, versions: g.versions,
  }));
  await c.query(
    `insert into finding_occurrences (finding_id, owner_key, owner, entry, first_seen, last_seen, blocked, audited, names, hosts, cohorts, runs, commands, versions)
     select finding_id, owner_key, owner, entry, first_seen, last_seen, blocked, audited, names, hosts, cohorts, runs, commands, versions
       from jsonb_to_recordset($1::jsonb) as o(finding_id text, owner_key text, owner text, entry text, first_seen timestamptz, last_seen timestamptz,
            blocked int, audited int, names text[], hosts text[], cohorts text[], runs text[], commands text[], versions text[])`,
    [JSON.stringify(rows).replace(/\\u0000/g, '')],
  );
}

const UNIQUE_VIOLATION = '23505';

/** Streams a batch's COPY text into a table with COPY … FROM STDIN (text format). */
async function copyBatch(c: PoolClient, table: string, batch: PreparedEvents): Promise<void> {
  const stream = c.query(copyFrom(`copy ${table} (${COLS}) from stdin`));
  const done = finished(stream);
  for (const chunk of batch.chunks) {
    if (!stream.write(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength))) await Promise.race([once(stream, 'drain'), done]);
  }
  stream.end();
  await done;
}

/**
 * Adds counted rows to the hourly rollup, once per batch right before its
 * commit: one upsert in key order, so concurrent batches lock rollup rows in
 * the same order. Every path counts only rows it really inserted, so
 * duplicates never count twice.
 */
async function addCounts(c: PoolClient, counts: readonly RollupCount[]): Promise<void> {
  const cols: unknown[][] = [[], [], [], [], [], [], [], []];
  for (const { key, n } of counts) {
    cols[0]!.push(new Date(key[0]).toISOString());
    for (let i = 1; i < 7; i++) cols[i]!.push(key[i]);
    cols[7]!.push(n);
  }
  await c.query(
    `insert into block_event_counts (hour, host, cohort, action, method, blocklist, version, n)
     select * from unnest($1::timestamptz[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::int[], $8::bigint[])
      order by 1, 2, 3, 4, 5, 6, 7
     on conflict (hour, host, cohort, action, method, blocklist, version) do update set n = block_event_counts.n + excluded.n`,
    cols,
  );
}

/** Writes batches of block events (and run summaries) in one transaction each. */
@Injectable()
export class EventsWriter {
  constructor(private readonly db: EventsDb) {}

  /**
   * Returns how many events were new (the rest were already stored).
   *
   * The COPY path first tries the common case — none of the events is stored
   * yet — with a plain COPY into block_events and the rollup counted here. A
   * key collision (a redelivery after a crash, an agent's repeat) aborts that
   * transaction with a unique violation, and the batch is written again
   * through a staging table whose INSERT … ON CONFLICT DO NOTHING skips what
   * is stored and counts only the rows really inserted.
   */
  async write(batch: PreparedEvents, runs: readonly RunSummary[], path: WritePath = 'copy'): Promise<number> {
    if (path === 'copy' && batch.size > 0) {
      try {
        return await this.db.tx(async (c) => {
          await copyBatch(c, 'block_events', batch);
          await addCounts(c, batch.counts);
          await addOccurrences(c, batch.findings);
          if (runs.length > 0) await this.runs(c, runs);
          return batch.size;
        });
      } catch (err) {
        if ((err as { code?: string }).code !== UNIQUE_VIOLATION) throw err;
      }
    }
    return this.db.tx(async (c) => {
      let inserted = 0;
      const findings = batch.ownerKey === null ? undefined : new OccurrenceGrouper(batch.ownerKey);
      if (batch.size > 0) inserted = path === 'copy' ? await this.copyStaged(c, batch, findings) : await this.insert(c, batch.rows, findings);
      if (findings) await addOccurrences(c, findings.values());
      if (runs.length > 0) await this.runs(c, runs);
      return inserted;
    });
  }

  /** write() for rows at hand (tests, tools). */
  writeRows(rows: readonly EventRow[], runs: readonly RunSummary[] = [], path: WritePath = 'copy', ownerKey: string | null = null): Promise<number> {
    return this.write(EventBatch.of(rows, path === 'insert', ownerKey), runs, path);
  }

  /** COPY into a per-connection staging table, then one INSERT … SELECT … ON CONFLICT DO NOTHING. */
  private async copyStaged(c: PoolClient, batch: PreparedEvents, findings?: OccurrenceGrouper): Promise<number> {
    await c.query(`create temp table if not exists block_events_stage on commit delete rows as select ${COLS} from block_events with no data`);
    await copyBatch(c, 'block_events_stage', batch);
    const counts = new RollupCounter();
    const inserted = await insertCounting(c, `insert into block_events (${COLS}) select ${COLS} from block_events_stage`, [], counts, findings);
    if (inserted > 0) await addCounts(c, counts.values());
    return inserted;
  }

  /** Multi-row INSERT … VALUES (…), (…) ON CONFLICT DO NOTHING, in chunks (the comparison path). */
  private async insert(c: PoolClient, rows: readonly EventRow[], findings?: OccurrenceGrouper): Promise<number> {
    const counts = new RollupCounter();
    let inserted = 0;
    for (let i = 0; i < rows.length; i += INSERT_CHUNK) {
      const params: unknown[] = [];
      const values = rows.slice(i, i + INSERT_CHUNK).map((row) => `(${row.map((v, j) => `$${params.push(v)}::${EVENT_TYPES[EVENT_COLUMNS[j]!]}`).join(', ')})`);
      inserted += await insertCounting(c, `insert into block_events (${COLS}) values ${values.join(', ')}`, params, counts, findings);
    }
    if (inserted > 0) await addCounts(c, counts.values());
    return inserted;
  }

  /** Upserts runs by id and their contacted domains by (run, name); a repeated summary changes nothing. */
  private async runs(c: PoolClient, runs: readonly RunSummary[]): Promise<void> {
    const byId = new Map(runs.map((r) => [r.runId, r]));
    const list = [...byId.values()].sort((a, b) => (a.runId < b.runId ? -1 : 1));
    await c.query(
      `insert into runs (run_id, host, cohort, labels, command, started_at, ended_at, exit_code, signal, overflow, policy_version, uid, run_user)
       select run_id, host, cohort, labels, command, started_at, ended_at, exit_code, signal, overflow, policy_version, uid, run_user
         from jsonb_to_recordset($1::jsonb) as r(run_id text, host text, cohort text, labels jsonb, command text, started_at timestamptz,
              ended_at timestamptz, exit_code int, signal text, overflow int, policy_version text, uid int, run_user text)
       on conflict (run_id) do update set host = excluded.host, cohort = excluded.cohort, labels = excluded.labels, command = excluded.command,
         started_at = excluded.started_at, ended_at = excluded.ended_at, exit_code = excluded.exit_code, signal = excluded.signal,
         overflow = excluded.overflow, policy_version = excluded.policy_version, uid = excluded.uid, run_user = excluded.run_user`,
      [
        JSON.stringify(
          list.map((r) => ({
            run_id: r.runId, host: r.host, cohort: r.cohort, labels: r.labels, command: r.command, started_at: r.startedAt, ended_at: r.endedAt,
            exit_code: r.exitCode, signal: r.signal, overflow: r.overflow, policy_version: r.policyVersion, uid: r.uid ?? null, run_user: r.user ?? null,
          })),
        ).replace(/\\u0000/g, ''),
      ],
    );
    const domains = list.flatMap((r) => {
      const byName = new Map(r.domains.map((d) => [d.name.toLowerCase().replace(/\.$/, ''), d]));
      return [...byName].map(([name, d]) => ({ run_id: r.runId, name, queries: d.queries, blocked: d.blocked, first_seen: d.firstSeen, last_seen: d.lastSeen }));
    });
    if (domains.length === 0) return;
    await c.query(
      `insert into run_domains (run_id, name, queries, blocked, first_seen, last_seen)
       select run_id, name, queries, blocked, first_seen, last_seen
         from jsonb_to_recordset($1::jsonb) as d(run_id text, name text, queries int, blocked int, first_seen timestamptz, last_seen timestamptz)
       on conflict (run_id, name) do update set queries = excluded.queries, blocked = excluded.blocked, first_seen = excluded.first_seen, last_seen = excluded.last_seen`,
      [JSON.stringify(domains).replace(/\\u0000/g, '')],
    );
  }
}
