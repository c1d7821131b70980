import { Injectable } from '@nestjs/common';
import { DataSource, EntityManager } from 'typeorm';
import type { FindingsQuery, FindingState } from '@cgfence/proto';
import { parseTimeParam } from '@cgfence/proto';
import type { StoredEvent } from '../event-store/event-store';
import type { ReadModel } from '../read-models/read-model';
import { FINDING_STREAM_PREFIX, FindingEvent, FindingState as FindingAggregateState } from './finding';
import { mergeExamples } from './occurrences';

/** Rows a list answers when the query names no limit. */
const DEFAULT_LIMIT = 200;

export interface FindingRow {
  id: string;
  owner_key: string;
  owner: string;
  entry: string;
  state: FindingState;
  state_since: Date;
  regression: boolean;
  first_seen: Date;
  last_seen: Date;
  blocked: string;
  audited: string;
  names: string[];
  hosts: string[];
  cohorts: string[];
  runs: string[];
  commands: string[];
  versions: string[];
  fixed_at: Date | null;
  accepted_until: Date | null;
  expiry_warned_until: Date | null;
  opened_at: Date;
  updated_at: Date;
  team?: string | null;
}

const EXAMPLES = ['names', 'hosts', 'cohorts', 'runs', 'commands', 'versions'] as const;

/** Findings as the API lists them; rebuilt from the finding streams. */
@Injectable()
export class FindingsReadModel implements ReadModel {
  readonly name = 'findings';
  readonly tables = ['rm_findings'] as const;

  constructor(private readonly db: DataSource) {}

  async apply(stored: StoredEvent, m: EntityManager): Promise<void> {
    if (!stored.streamId.startsWith(FINDING_STREAM_PREFIX)) return;
    const id = stored.streamId.slice(FINDING_STREAM_PREFIX.length);
    const e = { type: stored.type, data: stored.data } as FindingEvent;
    const set = (sql: string, params: unknown[]) => m.query(`update rm_findings set ${sql}, updated_at = $2 where id = $1`, [id, stored.metadata.time, ...params]);
    switch (e.type) {
      case 'FindingOpened':
        await m.query(
          `insert into rm_findings (id, owner_key, owner, entry, state, state_since, first_seen, last_seen, opened_at, updated_at)
           values ($1, $2, $3, $4, 'new', $5, $5, $5, $5, $6)`,
          [id, e.data.ownerKey, e.data.owner, e.data.entry, e.data.at, stored.metadata.time],
        );
        return;
      case 'FindingObserved': {
        const rows: Pick<FindingRow, (typeof EXAMPLES)[number]>[] = await m.query(`select ${EXAMPLES.join(', ')} from rm_findings where id = $1`, [id]);
        const row = rows[0];
        if (!row) return;
        await set(
          `first_seen = least(first_seen, $3), last_seen = greatest(last_seen, $4), blocked = blocked + $5, audited = audited + $6,
           names = $7, hosts = $8, cohorts = $9, runs = $10, commands = $11, versions = $12`,
          [e.data.firstSeen, e.data.lastSeen, e.data.blocked, e.data.audited, ...EXAMPLES.map((k) => mergeExamples(row[k], e.data[k]))],
        );
        return;
      }
      case 'FindingAcknowledged':
        await set(`state = 'acknowledged', state_since = $3`, [e.data.at]);
        return;
      case 'FindingMarkedFixed':
        await set(`fixed_at = $3`, [e.data.at]);
        return;
      case 'FindingFixDisproved':
        await set(`fixed_at = null`, []);
        return;
      case 'FindingResolved':
        await set(`state = 'resolved', state_since = $3, fixed_at = null`, [e.data.at]);
        return;
      case 'FindingAccepted':
        await set(`state = 'accepted', state_since = $4, accepted_until = $3, fixed_at = null`, [e.data.until, e.data.at]);
        return;
      case 'FindingReopened':
        await set(`state = 'new', state_since = $4, accepted_until = null, expiry_warned_until = null, fixed_at = null, regression = (regression or $3)`, [e.data.cause === 'regression', e.data.at]);
        return;
      case 'FindingAcceptanceExpiring':
        await set(`expiry_warned_until = $3`, [e.data.until]);
        return;
    }
  }

  async get(id: string, m?: EntityManager): Promise<FindingRow | undefined> {
    const rows: FindingRow[] = await (m ?? this.db).query(
      `select f.*, o.team from rm_findings f left join rm_owners o on o.key = f.owner_key and o.value = f.owner where f.id = $1`,
      [id],
    );
    return rows[0];
  }

  async list(q: FindingsQuery, m?: EntityManager): Promise<FindingRow[]> {
    const where: string[] = [];
    const params: unknown[] = [];
    const add = (sql: string, v: unknown) => where.push(sql.replace('?', `$${params.push(v)}`));
    if (q.owner !== undefined) {
      // "api" or "service=api".
      const eq = q.owner.indexOf('=');
      if (eq > 0) {
        add('f.owner_key = ?', q.owner.slice(0, eq));
        add('f.owner = ?', q.owner.slice(eq + 1));
      } else add('f.owner = ?', q.owner);
    }
    if (q.state !== undefined) add('f.state = ?', q.state);
    if (q.entry !== undefined) add('f.entry = ?', q.entry);
    if (q.since !== undefined) add('f.last_seen >= ?', parseTimeParam(q.since)!.toISOString());
    params.push(q.limit ?? DEFAULT_LIMIT);
    return (m ?? this.db).query(
      `select f.*, o.team from rm_findings f left join rm_owners o on o.key = f.owner_key and o.value = f.owner
       ${where.length ? `where ${where.join(' and ')}` : ''} order by f.last_seen desc, f.id limit $${params.length}`,
      params,
    );
  }

  /**
   * The decider's state of each finding, from its row (kept in step with its
   * stream in the same transactions), locked until the caller's transaction
   * ends. Absent findings are not in the map.
   */
  async statesForUpdate(ids: readonly string[], m: EntityManager): Promise<Map<string, FindingAggregateState>> {
    const rows: Pick<FindingRow, 'id' | 'state' | 'state_since' | 'last_seen' | 'fixed_at' | 'accepted_until' | 'expiry_warned_until'>[] = await m.query(
      `select id, state, state_since, last_seen, fixed_at, accepted_until, expiry_warned_until from rm_findings where id = any($1::text[]) order by id for update`,
      [ids],
    );
    const iso = (d: Date | null): string | null => (d === null ? null : new Date(d).toISOString());
    return new Map(
      rows.map((r) => [
        r.id,
        { status: r.state, id: r.id, lastSeen: iso(r.last_seen)!, fixedAt: iso(r.fixed_at), acceptedUntil: iso(r.accepted_until), warnedUntil: iso(r.expiry_warned_until), since: iso(r.state_since)! },
      ]),
    );
  }

  /**
   * Findings whose time may have come: quiet long enough, accepted until a
   * time now past, or (expiryWarningMs > 0) accepted until a time that close
   * and not yet warned of.
   */
  async due(now: Date, quietMs: number, fixQuietMs: number, limit: number, m?: EntityManager, expiryWarningMs = 0): Promise<string[]> {
    const rows: { id: string }[] = await (m ?? this.db).query(
      `select id from rm_findings
        where (state in ('new', 'acknowledged') and last_seen <= $1::timestamptz - make_interval(secs => $2))
           or (fixed_at is not null and greatest(fixed_at, last_seen) <= $1::timestamptz - make_interval(secs => $3))
           or (state = 'accepted' and accepted_until <= $1)
           or ($5 > 0 and state = 'accepted' and accepted_until <= $1::timestamptz + make_interval(secs => $5)
               and expiry_warned_until is distinct from accepted_until)
        order by id limit $4`,
      [now.toISOString(), quietMs / 1000, fixQuietMs / 1000, limit, expiryWarningMs / 1000],
    );
    return rows.map((r) => r.id);
  }
}
