/**
 * The fleet aggregate (one stream, 'fleet'): which blocklist version every
 * host enforces by default (the baseline) and the audit switches. Its stream
 * version is the fleet's desired-state revision: every change here is a new
 * revision the agents converge to.
 */
import { DomainError } from '../common/errors';
import type { Decider } from '../event-store/decider';

export const FLEET_STREAM_ID = 'fleet';

export interface BaselineAssigned {
  type: 'BaselineAssigned';
  data: { blocklist: string; version: number; contentHash: string; rollback: boolean; assignedAt: string };
}

export interface AuditModeSet {
  type: 'AuditModeSet';
  /** cohort null: the whole fleet (the kill switch). */
  data: { on: boolean; cohort: string | null; setAt: string };
}

/** A rollout changed which hosts get what (a stage started, or it ended); the fleet gets a new revision. */
export interface RolloutChanged {
  type: 'RolloutChanged';
  data: { rolloutId: string; blocklist: string; status: string; stage: number; at: string; rollbackTo?: number };
}

export type FleetEvent = BaselineAssigned | AuditModeSet | RolloutChanged;

export interface FleetState {
  baseline: { blocklist: string; version: number; contentHash: string } | null;
  auditFleet: boolean;
  auditCohorts: readonly string[];
}

export const initialFleetState: FleetState = { baseline: null, auditFleet: false, auditCohorts: [] };

export function evolveFleet(s: FleetState, e: FleetEvent): FleetState {
  switch (e.type) {
    case 'BaselineAssigned':
      return { ...s, baseline: { blocklist: e.data.blocklist, version: e.data.version, contentHash: e.data.contentHash } };
    case 'RolloutChanged':
      return s;
    case 'AuditModeSet':
      if (e.data.cohort === null) return { ...s, auditFleet: e.data.on };
      return {
        ...s,
        auditCohorts: e.data.on ? [...new Set([...s.auditCohorts, e.data.cohort])].sort() : s.auditCohorts.filter((c) => c !== e.data.cohort),
      };
  }
}

export interface AssignBaseline {
  type: 'AssignBaseline';
  blocklist: string;
  version: number;
  contentHash: string;
  /** Going back to an older version of the same blocklist must be said. */
  rollback: boolean;
  now: Date;
}

export interface SetAuditMode {
  type: 'SetAuditMode';
  on: boolean;
  cohort: string | null;
  now: Date;
}

export interface RecordRollout {
  type: 'RecordRollout';
  rolloutId: string;
  blocklist: string;
  status: string;
  stage: number;
  /** A completed rollout makes its version the baseline. */
  completed?: { version: number; contentHash: string };
  /** An aborted or rolled-back rollout orders hosts back to this (older) version. */
  rollbackTo?: number;
  now: Date;
}

export type FleetCommand = AssignBaseline | SetAuditMode | RecordRollout;

export function decideFleet(c: FleetCommand, s: FleetState): FleetEvent[] {
  switch (c.type) {
    case 'AssignBaseline': {
      const b = s.baseline;
      if (b && b.blocklist === c.blocklist && b.version === c.version) return [];
      if (b && b.blocklist === c.blocklist && c.version < b.version && !c.rollback) {
        throw new DomainError(
          'fleet.rollback_required',
          `the baseline is ${b.blocklist} v${b.version}; assigning the older v${c.version} is a rollback: say so (rollback: true, or --rollback)`,
        );
      }
      const rollback = b !== null && b.blocklist === c.blocklist && c.version < b.version;
      return [
        {
          type: 'BaselineAssigned',
          data: { blocklist: c.blocklist, version: c.version, contentHash: c.contentHash, rollback, assignedAt: c.now.toISOString() },
        },
      ];
    }
    case 'RecordRollout': {
      const at = c.now.toISOString();
      const changed: FleetEvent = {
        type: 'RolloutChanged',
        data: { rolloutId: c.rolloutId, blocklist: c.blocklist, status: c.status, stage: c.stage, at, ...(c.rollbackTo !== undefined ? { rollbackTo: c.rollbackTo } : {}) },
      };
      if (!c.completed) return [changed];
      return [
        changed,
        { type: 'BaselineAssigned', data: { blocklist: c.blocklist, version: c.completed.version, contentHash: c.completed.contentHash, rollback: false, assignedAt: at } },
      ];
    }
    case 'SetAuditMode': {
      const current = c.cohort === null ? s.auditFleet : s.auditCohorts.includes(c.cohort);
      if (current === c.on) return [];
      return [{ type: 'AuditModeSet', data: { on: c.on, cohort: c.cohort, setAt: c.now.toISOString() } }];
    }
  }
}

export const fleetDecider: Decider<FleetState, FleetCommand, FleetEvent> = {
  initialState: initialFleetState,
  evolve: evolveFleet,
  decide: decideFleet,
};
