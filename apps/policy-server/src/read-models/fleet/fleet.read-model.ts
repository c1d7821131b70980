import { Injectable } from '@nestjs/common';
import { DataSource, EntityManager } from 'typeorm';
import type { StoredEvent } from '../../event-store/event-store';
import { FLEET_STREAM_ID, type FleetEvent } from '../../fleet/fleet';
import { ReadModel } from '../read-model';

export interface FleetRow {
  revision: number;
  baseline: { blocklist: string; version: number; contentHash: string } | null;
  auditFleet: boolean;
  auditCohorts: string[];
  /** Set when the change that made this revision was a rollback. */
  rollback: { blocklist: string; toVersion: number } | null;
  updatedAt: string;
  updatedBy: string;
}

interface Row {
  revision: number;
  baseline_blocklist: string | null;
  baseline_version: number | null;
  baseline_hash: string | null;
  audit_fleet: boolean;
  audit_cohorts: string[];
  rollback: { blocklist: string; toVersion: number } | null;
  updated_at: Date;
  updated_by: string;
}

/** The fleet's desired state, one row; its revision is the fleet stream's version. */
@Injectable()
export class FleetReadModel implements ReadModel {
  readonly name = 'fleet';
  readonly tables = ['rm_fleet'] as const;

  constructor(private readonly db: DataSource) {}

  async apply(stored: StoredEvent, m: EntityManager): Promise<void> {
    if (stored.streamId !== FLEET_STREAM_ID) return;
    const e = { type: stored.type, data: stored.data } as FleetEvent;
    const at = stored.metadata.time;
    await m.query(
      `insert into rm_fleet (id, revision, updated_at, updated_by) values (1, $1, $2, $3)
       on conflict (id) do update set revision = excluded.revision, updated_at = excluded.updated_at, updated_by = excluded.updated_by`,
      [stored.streamVersion, at, stored.metadata.actor],
    );
    switch (e.type) {
      case 'BaselineAssigned':
        await m.query(
          `update rm_fleet set baseline_blocklist = $1, baseline_version = $2, baseline_hash = $3, rollback = $4 where id = 1`,
          [e.data.blocklist, e.data.version, e.data.contentHash, e.data.rollback ? JSON.stringify({ blocklist: e.data.blocklist, toVersion: e.data.version }) : null],
        );
        return;
      case 'RolloutChanged':
        // Hosts that took the rollout's version may go back only under a signed order.
        await m.query(`update rm_fleet set rollback = $1 where id = 1`, [
          e.data.rollbackTo !== undefined ? JSON.stringify({ blocklist: e.data.blocklist, toVersion: e.data.rollbackTo }) : null,
        ]);
        return;
      case 'AuditModeSet':
        if (e.data.cohort === null) {
          await m.query(`update rm_fleet set audit_fleet = $1, rollback = null where id = 1`, [e.data.on]);
        } else if (e.data.on) {
          await m.query(
            `update rm_fleet set audit_cohorts = (select array_agg(distinct c order by c) from unnest(audit_cohorts || $1::text) c), rollback = null where id = 1`,
            [e.data.cohort],
          );
        } else {
          await m.query(`update rm_fleet set audit_cohorts = array_remove(audit_cohorts, $1), rollback = null where id = 1`, [e.data.cohort]);
        }
        return;
    }
  }

  async get(m?: EntityManager): Promise<FleetRow | undefined> {
    const rows: Row[] = await (m ?? this.db).query(`select * from rm_fleet where id = 1`);
    const r = rows[0];
    if (!r) return undefined;
    return {
      revision: r.revision,
      baseline: r.baseline_blocklist !== null && r.baseline_version !== null && r.baseline_hash !== null
        ? { blocklist: r.baseline_blocklist, version: r.baseline_version, contentHash: r.baseline_hash }
        : null,
      auditFleet: r.audit_fleet,
      auditCohorts: r.audit_cohorts,
      rollback: r.rollback,
      updatedAt: r.updated_at.toISOString(),
      updatedBy: r.updated_by,
    };
  }
}
