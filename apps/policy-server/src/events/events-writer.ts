import { Injectable } from '@nestjs/common';
import type { PoolClient } from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import type { RunSummary } from '@cgfence/proto';
import { EventsDb } from './events-db';
import { copyLine, EVENT_COLUMNS, EVENT_TYPES, EventRow } from './rows';

export type WritePath = 'copy' | 'insert';

const COLS = EVENT_COLUMNS.join(', ');
/** Rows per multi-row INSERT statement (23 parameters each, under the 65,535 limit). */
const INSERT_CHUNK = 1000;

/**
 * The hourly rollup follows from the rows really inserted (the RETURNING of
 * the ON CONFLICT DO NOTHING insert), so duplicates never count twice. Rows
 * are grouped in key order so two replicas lock rollup rows in the same order.
 */
const withRollup = (insert: string): string => `
  with ins as (${insert} on conflict do nothing returning time, host, cohort, action, method, blocklist, version),
  agg as (
    insert into block_event_counts (hour, host, cohort, action, method, blocklist, version, n)
    select date_trunc('hour', time, 'UTC'), host, coalesce(cohort, ''), action, method, coalesce(blocklist, ''), coalesce(version, 0), count(*)
      from ins group by 1, 2, 3, 4, 5, 6, 7 order by 1, 2, 3, 4, 5, 6, 7
    on conflict (hour, host, cohort, action, method, blocklist, version) do update set n = block_event_counts.n + excluded.n
  )
  select count(*)::int as n from ins`;

/** Writes batches of block events (and run summaries) in one transaction each. */
@Injectable()
export class EventsWriter {
  constructor(private readonly db: EventsDb) {}

  /** Returns how many events were new (the rest were already stored). */
  async write(rows: readonly EventRow[], runs: readonly RunSummary[], path: WritePath = 'copy'): Promise<number> {
    return this.db.tx(async (c) => {
      let inserted = 0;
      if (rows.length > 0) inserted = path === 'copy' ? await this.copy(c, rows) : await this.insert(c, rows);
      if (runs.length > 0) await this.runs(c, runs);
      return inserted;
    });
  }

  /** COPY into a per-connection staging table, then one INSERT … SELECT … ON CONFLICT DO NOTHING. */
  private async copy(c: PoolClient, rows: readonly EventRow[]): Promise<number> {
    await c.query(`create temp table if not exists block_events_stage on commit delete rows as select ${COLS} from block_events with no data`);
    const stream = c.query(copyFrom(`copy block_events_stage (${COLS}) from stdin`));
    const CHUNK = 500;
    await pipeline(
      Readable.from(
        (function* () {
          for (let i = 0; i < rows.length; i += CHUNK) {
            let text = '';
            for (const r of rows.slice(i, i + CHUNK)) text += copyLine(r);
            yield text;
          }
        })(),
      ),
      stream,
    );
    const r = await c.query(withRollup(`insert into block_events (${COLS}) select ${COLS} from block_events_stage`));
    return (r.rows[0] as { n: number }).n;
  }

  /** Multi-row INSERT … VALUES (…), (…) ON CONFLICT DO NOTHING, in chunks (the comparison path). */
  private async insert(c: PoolClient, rows: readonly EventRow[]): Promise<number> {
    let inserted = 0;
    for (let i = 0; i < rows.length; i += INSERT_CHUNK) {
      const chunk = rows.slice(i, i + INSERT_CHUNK);
      const params: unknown[] = [];
      const values = chunk.map((row) => `(${row.map((v, j) => `$${params.push(v)}::${EVENT_TYPES[EVENT_COLUMNS[j]!]}`).join(', ')})`);
      const r = await c.query(withRollup(`insert into block_events (${COLS}) values ${values.join(', ')}`), params);
      inserted += (r.rows[0] as { n: number }).n;
    }
    return inserted;
  }

  /** Upserts runs by id and their contacted domains by (run, name); a repeated summary changes nothing. */
  private async runs(c: PoolClient, runs: readonly RunSummary[]): Promise<void> {
    const byId = new Map(runs.map((r) => [r.runId, r]));
    const list = [...byId.values()].sort((a, b) => (a.runId < b.runId ? -1 : 1));
    await c.query(
      `insert into runs (run_id, host, cohort, labels, command, started_at, ended_at, exit_code, signal, overflow, policy_version)
       select run_id, host, cohort, labels, command, started_at, ended_at, exit_code, signal, overflow, policy_version
         from jsonb_to_recordset($1::jsonb) as r(run_id text, host text, cohort text, labels jsonb, command text, started_at timestamptz,
              ended_at timestamptz, exit_code int, signal text, overflow int, policy_version text)
       on conflict (run_id) do update set host = excluded.host, cohort = excluded.cohort, labels = excluded.labels, command = excluded.command,
         started_at = excluded.started_at, ended_at = excluded.ended_at, exit_code = excluded.exit_code, signal = excluded.signal,
         overflow = excluded.overflow, policy_version = excluded.policy_version`,
      [
        JSON.stringify(
          list.map((r) => ({
            run_id: r.runId, host: r.host, cohort: r.cohort, labels: r.labels, command: r.command, started_at: r.startedAt, ended_at: r.endedAt,
            exit_code: r.exitCode, signal: r.signal, overflow: r.overflow, policy_version: r.policyVersion,
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
