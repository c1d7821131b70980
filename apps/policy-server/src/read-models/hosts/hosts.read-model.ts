import { Injectable } from '@nestjs/common';
import { DataSource, EntityManager } from 'typeorm';
import type { HostReport } from '@cgfence/proto';
import type { StoredEvent } from '../../event-store/event-store';
import type { HostEvent } from '../../hosts/host';
import { ReadModel } from '../read-model';

const HANDLES = new Set(['HostRegistered', 'HostUpdated', 'PolicyApplied', 'PolicyRejected', 'HostRemoved', 'HostConditionChanged']);

export interface HostRow {
  host_id: string;
  hostname: string;
  labels: Record<string, string>;
  cohort: string | null;
  kernel: string;
  agent_version: string;
  capabilities: string[];
  registered_at: Date;
  updated_at: Date;
  applied: { revision: number; blocklist: string; version: number; contentHash: string; appliedAt: string } | null;
  last_error: { revision: number | null; reason: string; message: string; at: string } | null;
  seen_revision: number | null;
  last_seen: Date | null;
  mode: string | null;
  fail_mode: string | null;
  health: HostReport['health'] | null;
  drift: HostReport['drift'] | null;
  /** 'rejected', 'drifted': as the host's HostConditionChanged events left them. */
  conditions: string[];
}

/** What SQL narrows a host listing by (HostsService applies the rest, and re-checks the state, on the views). */
export interface HostRowFilter {
  cohort?: string;
  labels?: [string, string][];
  agentVersion?: string;
  applied?: { blocklist: string; version?: number };
  /** With staleBefore: true keeps hosts never seen or seen before it, false those seen since. */
  stale?: boolean;
  staleBefore?: Date;
  drifted?: boolean;
  rejected?: boolean;
  /** Keyset paging: host ids after this one, in host id order. */
  after?: string;
  limit?: number;
}

/**
 * Hosts as operators list them. Event columns come from the host streams;
 * heartbeat columns (last_seen, mode, fail mode, health, drift, seen
 * revision) are written by `touch` from each report.
 */
@Injectable()
export class HostsReadModel implements ReadModel {
  readonly name = 'hosts';
  readonly tables = ['rm_hosts'] as const;

  constructor(private readonly db: DataSource) {}

  async apply(stored: StoredEvent, m: EntityManager): Promise<void> {
    if (!HANDLES.has(stored.type)) return;
    const e = { type: stored.type, data: stored.data } as HostEvent;
    switch (e.type) {
      case 'HostRegistered':
        await m.query(
          `insert into rm_hosts (host_id, hostname, labels, cohort, kernel, agent_version, capabilities, registered_at, updated_at)
           values ($1, $2, $3, $4, $5, $6, $7, $8, $8)`,
          [e.data.hostId, e.data.hostname, JSON.stringify(e.data.labels), e.data.labels['cohort'] ?? null, e.data.kernel, e.data.agentVersion, JSON.stringify(e.data.capabilities), e.data.registeredAt],
        );
        return;
      case 'HostUpdated': {
        const d = e.data;
        await m.query(
          `update rm_hosts set
             hostname = coalesce($2, hostname),
             labels = coalesce($3::jsonb, labels),
             cohort = case when $3::jsonb is null then cohort else $3::jsonb->>'cohort' end,
             kernel = coalesce($4, kernel),
             agent_version = coalesce($5, agent_version),
             capabilities = coalesce($6::jsonb, capabilities),
             updated_at = $7
           where host_id = $1`,
          [d.hostId, d.hostname ?? null, d.labels ? JSON.stringify(d.labels) : null, d.kernel ?? null, d.agentVersion ?? null, d.capabilities ? JSON.stringify(d.capabilities) : null, d.updatedAt],
        );
        return;
      }
      case 'PolicyApplied': {
        const { hostId, ...applied } = e.data;
        // A successful apply ends the error that came before it.
        await m.query(`update rm_hosts set applied = $2, last_error = null where host_id = $1`, [hostId, JSON.stringify(applied)]);
        return;
      }
      case 'PolicyRejected': {
        const d = e.data;
        await m.query(`update rm_hosts set last_error = $2 where host_id = $1`, [
          d.hostId,
          JSON.stringify({ revision: d.revision, reason: d.reason, message: d.message, at: d.rejectedAt }),
        ]);
        return;
      }
      case 'HostRemoved':
        // Gone from the list until it enrolls and registers again.
        await m.query(`delete from rm_hosts where host_id = $1`, [e.data.hostId]);
        return;
      case 'HostEnrolled':
        return;
      case 'HostConditionChanged':
        await m.query(
          `update rm_hosts set conditions = case when $3 then array(select distinct c from unnest(conditions || $2::text) c order by c) else array_remove(conditions, $2::text) end
            where host_id = $1`,
          [e.data.hostId, e.data.condition, e.data.on],
        );
        return;
    }
  }

  /**
   * A batch of reports confirming applied versions is the common case (a
   * fleet converging): one statement when every event is a PolicyApplied for
   * a different host, event by event otherwise (order then matters).
   */
  async applyMany(events: readonly StoredEvent[], m: EntityManager): Promise<void> {
    const mine = events.filter((e) => HANDLES.has(e.type));
    const hosts = new Set(mine.map((e) => (e.data as { hostId: string }).hostId));
    if (mine.length < 2 || hosts.size !== mine.length || mine.some((e) => e.type !== 'PolicyApplied')) {
      for (const e of mine) await this.apply(e, m);
      return;
    }
    const rows = mine.map((e) => {
      const { hostId, ...applied } = (e as StoredEvent<'PolicyApplied', Extract<HostEvent, { type: 'PolicyApplied' }>['data']>).data;
      return { host_id: hostId, applied };
    });
    await m.query(
      `update rm_hosts h set applied = x.applied, last_error = null
       from jsonb_to_recordset($1::jsonb) as x(host_id text, applied jsonb) where h.host_id = x.host_id`,
      [JSON.stringify(rows)],
    );
  }

  /** Heartbeat columns of many reports in one statement. */
  async touchMany(reports: readonly HostReport[], seenAt: Date, m: EntityManager): Promise<void> {
    if (reports.length === 0) return;
    const rows = reports.map((r) => ({ host_id: r.hostId, seen_revision: r.seenRevision, mode: r.mode, fail_mode: r.failMode, health: r.health, drift: r.drift }));
    await m.query(
      `update rm_hosts h set last_seen = $2, seen_revision = x.seen_revision, mode = x.mode, fail_mode = x.fail_mode, health = x.health, drift = x.drift
       from jsonb_to_recordset($1::jsonb) as x(host_id text, seen_revision int, mode text, fail_mode text, health jsonb, drift jsonb)
       where h.host_id = x.host_id`,
      [JSON.stringify(rows), seenAt],
    );
  }

  /** Block counters of reports, for the block-rate gate (not a read model table: samples are telemetry). */
  async sampleBlocks(reports: readonly HostReport[], at: Date, m?: EntityManager): Promise<void> {
    const withBlocks = reports.filter((r) => r.blocks !== undefined);
    if (withBlocks.length === 0) return;
    await (m ?? this.db).query(
      `insert into host_block_samples (host_id, at, total)
       select h, $2, t from unnest($1::text[], $3::bigint[]) as x(h, t)
       on conflict (host_id, at) do update set total = excluded.total`,
      [withBlocks.map((r) => r.hostId), at, withBlocks.map((r) => r.blocks)],
    );
  }

  /** Heartbeat columns from a report (not events: they change every few seconds). */
  async touch(r: HostReport, seenAt: Date, m?: EntityManager): Promise<void> {
    await (m ?? this.db).query(
      `update rm_hosts set last_seen = $2, seen_revision = $3, mode = $4, fail_mode = $5, health = $6, drift = $7 where host_id = $1`,
      [r.hostId, seenAt, r.seenRevision, r.mode, r.failMode, JSON.stringify(r.health), r.drift ? JSON.stringify(r.drift) : null],
    );
  }

  async seen(hostId: string, at: Date): Promise<void> {
    await this.db.query(`update rm_hosts set last_seen = $2 where host_id = $1`, [hostId, at]);
  }

  async list(filter: HostRowFilter = {}): Promise<HostRow[]> {
    const c: string[] = [];
    const v: unknown[] = [];
    const add = (x: unknown): string => {
      v.push(x);
      return `$${v.length}`;
    };
    if (filter.cohort !== undefined) c.push(`cohort = ${add(filter.cohort)}`);
    if (filter.labels && filter.labels.length > 0) c.push(`labels @> ${add(JSON.stringify(Object.fromEntries(filter.labels)))}::jsonb`);
    if (filter.agentVersion !== undefined) c.push(`agent_version = ${add(filter.agentVersion)}`);
    if (filter.applied) {
      c.push(`applied ->> 'blocklist' = ${add(filter.applied.blocklist)}`);
      if (filter.applied.version !== undefined) c.push(`(applied ->> 'version')::int4 = ${add(filter.applied.version)}::int4`);
    }
    if (filter.staleBefore) {
      // Stale: never seen, or last seen before the limit (the view's rule).
      const at = add(filter.staleBefore);
      if (filter.stale === true) c.push(`(last_seen is null or last_seen < ${at}::timestamptz)`);
      if (filter.stale === false) c.push(`last_seen >= ${at}::timestamptz`);
    }
    const drifted = `coalesce((drift ->> 'drifted')::boolean, false)`;
    if (filter.drifted === true) c.push(drifted);
    if (filter.drifted === false) c.push(`not ${drifted}`);
    const noError = `(last_error is null or last_error = 'null'::jsonb)`;
    if (filter.rejected === true) c.push(`not ${noError}`);
    if (filter.rejected === false) c.push(noError);
    if (filter.after !== undefined) c.push(`host_id > ${add(filter.after)}`);
    const limit = filter.limit !== undefined ? ` limit ${add(filter.limit)}::int4` : '';
    return this.db.query(`select * from rm_hosts ${c.length > 0 ? `where ${c.join(' and ')}` : ''} order by host_id${limit}`, v);
  }

  async get(hostId: string): Promise<HostRow | undefined> {
    const rows: HostRow[] = await this.db.query(`select * from rm_hosts where host_id = $1`, [hostId]);
    return rows[0];
  }
}
