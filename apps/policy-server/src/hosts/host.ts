/**
 * The host aggregate (stream 'host-<id>'): registration, the facts an agent
 * reports about itself (hostname, labels, kernel, agent version,
 * capabilities), and every version it applied or rejected. Heartbeats are not
 * events: they only refresh the read model; but a change of the host's
 * condition (rejecting bundles since its last apply, its kernel maps drifted
 * from what it applied) is, once per change (HostConditionChanged), and the
 * notifications reactor tells the targets that want host.rejected or
 * host.drifted.
 */
import { DomainError } from '../common/errors';
import type { Decider } from '../event-store/decider';

export const hostStreamOf = (hostId: string): string => `host-${hostId}`;

export interface HostFacts {
  hostname: string;
  labels: Record<string, string>;
  kernel: string;
  agentVersion: string;
  capabilities: string[];
}

export interface HostRegistered {
  type: 'HostRegistered';
  data: HostFacts & { hostId: string; registeredAt: string };
}

/** Only the facts that changed. */
export interface HostUpdated {
  type: 'HostUpdated';
  data: Partial<HostFacts> & { hostId: string; updatedAt: string };
}

export interface PolicyApplied {
  type: 'PolicyApplied';
  data: { hostId: string; revision: number; blocklist: string; version: number; contentHash: string; appliedAt: string };
}

export interface PolicyRejected {
  type: 'PolicyRejected';
  data: { hostId: string; revision: number | null; reason: string; message: string; rejectedAt: string };
}

/** The host enrolled with a join token: its NATS user key (the JWT issued for it is not stored: it can be re-issued). */
export interface HostEnrolled {
  type: 'HostEnrolled';
  data: { hostId: string; natsPublicKey: string; tokenId: string; labels: Record<string, string>; enrolledAt: string };
}

/**
 * A NATS user key the host held before enrollment existed (an nkey from
 * `cgfence nats add-host`, given a JWT by `cgfence nats migrate-from-nkeys`),
 * recorded by an operator: from then on it is the host's key like an enrolled
 * one (renewed at an account signing key rotation, revoked by a removal).
 */
export interface HostNatsKeyAdopted {
  type: 'HostNatsKeyAdopted';
  data: { hostId: string; natsPublicKey: string; source: 'nkeys-migration'; adoptedAt: string };
}

/** An operator removed the host: its NATS keys are revoked; it must enroll again to come back. */
export interface HostRemoved {
  type: 'HostRemoved';
  data: { hostId: string; revokedKeys: string[]; removedAt: string };
}

/**
 * The host entered or left a condition: `rejected` (its last policy update was
 * rejected and nothing was applied since) or `drifted` (its last report said
 * the kernel's maps no longer hold what it applied). One event per change,
 * not per report.
 */
export interface HostConditionChanged {
  type: 'HostConditionChanged';
  data: { hostId: string; condition: HostCondition; on: boolean; detail: string | null; at: string };
}

export type HostCondition = 'rejected' | 'drifted';

export type HostEvent = HostRegistered | HostUpdated | PolicyApplied | PolicyRejected | HostEnrolled | HostNatsKeyAdopted | HostRemoved | HostConditionChanged;

export interface HostState {
  registered: boolean;
  facts: HostFacts | null;
  applied: { revision: number; blocklist: string; version: number; contentHash: string } | null;
  lastRejection: { revision: number | null; reason: string; at: string } | null;
  /** NATS user keys of the host since the last removal (enrolled, or adopted from nkeys). */
  natsKeys: string[];
  /** Keys revoked by removals (a removal is pushed again if asked twice). */
  revokedKeys: string[];
  /** The conditions the host is in, as the last HostConditionChanged of each left them. */
  conditions: Record<HostCondition, boolean>;
}

export const initialHostState: HostState = {
  registered: false,
  facts: null,
  applied: null,
  lastRejection: null,
  natsKeys: [],
  revokedKeys: [],
  conditions: { rejected: false, drifted: false },
};

export function evolveHost(s: HostState, e: HostEvent): HostState {
  switch (e.type) {
    case 'HostRegistered': {
      const { hostname, labels, kernel, agentVersion, capabilities } = e.data;
      return { ...s, registered: true, facts: { hostname, labels, kernel, agentVersion, capabilities } };
    }
    case 'HostUpdated': {
      const { hostId: _id, updatedAt: _at, ...changed } = e.data;
      return s.facts ? { ...s, facts: { ...s.facts, ...changed } } : s;
    }
    case 'PolicyApplied':
      return { ...s, applied: { revision: e.data.revision, blocklist: e.data.blocklist, version: e.data.version, contentHash: e.data.contentHash } };
    case 'PolicyRejected':
      return { ...s, lastRejection: { revision: e.data.revision, reason: e.data.reason, at: e.data.rejectedAt } };
    case 'HostEnrolled':
      return { ...s, natsKeys: [...s.natsKeys, e.data.natsPublicKey] };
    case 'HostNatsKeyAdopted':
      return s.natsKeys.includes(e.data.natsPublicKey) ? s : { ...s, natsKeys: [...s.natsKeys, e.data.natsPublicKey] };
    case 'HostRemoved':
      return { ...initialHostState, revokedKeys: [...s.revokedKeys, ...e.data.revokedKeys] };
    case 'HostConditionChanged':
      return { ...s, conditions: { ...s.conditions, [e.data.condition]: e.data.on } };
  }
}

export interface RegisterHost {
  type: 'RegisterHost';
  hostId: string;
  facts: HostFacts;
  now: Date;
}

export interface RecordReport {
  type: 'RecordReport';
  hostId: string;
  applied: { revision: number; blocklist: string; version: number; contentHash: string; appliedAt: string } | null;
  rejection: { revision: number | null; reason: string; message: string; at: string } | null;
  /** The report's drift check (null: not checked, the condition stays as it was). */
  drift?: { drifted: boolean; detail?: string } | null;
  labels?: Record<string, string>;
  now: Date;
}

export interface EnrollHost {
  type: 'EnrollHost';
  hostId: string;
  natsPublicKey: string;
  tokenId: string;
  labels: Record<string, string>;
  now: Date;
}

export interface AdoptNatsKey {
  type: 'AdoptNatsKey';
  hostId: string;
  natsPublicKey: string;
  now: Date;
}

export interface RemoveHost {
  type: 'RemoveHost';
  hostId: string;
  now: Date;
}

export type HostCommand = RegisterHost | RecordReport | EnrollHost | AdoptNatsKey | RemoveHost;

function sameLabels(a: Record<string, string>, b: Record<string, string>): boolean {
  const ka = Object.keys(a).sort();
  const kb = Object.keys(b).sort();
  return ka.length === kb.length && ka.every((k, i) => k === kb[i] && a[k] === b[k]);
}

function changedFacts(before: HostFacts, after: HostFacts): Partial<HostFacts> {
  const out: Partial<HostFacts> = {};
  if (before.hostname !== after.hostname) out.hostname = after.hostname;
  if (!sameLabels(before.labels, after.labels)) out.labels = after.labels;
  if (before.kernel !== after.kernel) out.kernel = after.kernel;
  if (before.agentVersion !== after.agentVersion) out.agentVersion = after.agentVersion;
  if (before.capabilities.join(',') !== after.capabilities.join(',')) out.capabilities = after.capabilities;
  return out;
}

export function decideHost(c: HostCommand, s: HostState): HostEvent[] {
  switch (c.type) {
    case 'RegisterHost': {
      if (!s.registered || !s.facts) {
        return [{ type: 'HostRegistered', data: { hostId: c.hostId, ...c.facts, registeredAt: c.now.toISOString() } }];
      }
      const changed = changedFacts(s.facts, c.facts);
      if (Object.keys(changed).length === 0) return [];
      return [{ type: 'HostUpdated', data: { hostId: c.hostId, ...changed, updatedAt: c.now.toISOString() } }];
    }
    case 'RecordReport': {
      // A report from a host that never registered is dropped by the caller;
      // here only changes become events, so heartbeats add nothing to the log.
      const out: HostEvent[] = [];
      if (c.labels && s.facts && !sameLabels(s.facts.labels, c.labels)) {
        out.push({ type: 'HostUpdated', data: { hostId: c.hostId, labels: c.labels, updatedAt: c.now.toISOString() } });
      }
      const a = c.applied;
      if (a && (!s.applied || s.applied.revision !== a.revision || s.applied.contentHash !== a.contentHash)) {
        out.push({ type: 'PolicyApplied', data: { hostId: c.hostId, revision: a.revision, blocklist: a.blocklist, version: a.version, contentHash: a.contentHash, appliedAt: a.appliedAt } });
      }
      const r = c.rejection;
      if (r && (!s.lastRejection || s.lastRejection.at !== r.at || s.lastRejection.reason !== r.reason)) {
        out.push({ type: 'PolicyRejected', data: { hostId: c.hostId, revision: r.revision, reason: r.reason, message: r.message, rejectedAt: r.at } });
      }
      out.push(...conditionChanges(c, s, out));
      return out;
    }
    case 'EnrollHost':
      // A join token must not let its holder take over a host that is enrolled: remove it first.
      if (s.natsKeys.length > 0) {
        throw new DomainError('enroll.host_exists', `host ${c.hostId} is already enrolled; remove it first (cgfence hosts remove ${c.hostId}) to enroll it again`);
      }
      if (s.revokedKeys.includes(c.natsPublicKey)) throw new DomainError('enroll.key_revoked', `this NATS key was revoked for host ${c.hostId}: enroll with a new key`);
      return [{ type: 'HostEnrolled', data: { hostId: c.hostId, natsPublicKey: c.natsPublicKey, tokenId: c.tokenId, labels: c.labels, enrolledAt: c.now.toISOString() } }];
    case 'AdoptNatsKey':
      // A revoked key stays revoked: the host it belonged to was removed, and a removal is for good.
      if (s.revokedKeys.includes(c.natsPublicKey)) throw new DomainError('enroll.key_revoked', `this NATS key was revoked for host ${c.hostId}: it cannot be adopted again`);
      if (s.natsKeys.includes(c.natsPublicKey)) return []; // recorded already (a migration run again)
      return [{ type: 'HostNatsKeyAdopted', data: { hostId: c.hostId, natsPublicKey: c.natsPublicKey, source: 'nkeys-migration', adoptedAt: c.now.toISOString() } }];
    case 'RemoveHost':
      if (!s.registered && s.natsKeys.length === 0) {
        if (s.revokedKeys.length > 0) return []; // removed already
        throw new DomainError('host.not_found', `host ${c.hostId} is neither enrolled nor registered`);
      }
      return [{ type: 'HostRemoved', data: { hostId: c.hostId, revokedKeys: s.natsKeys, removedAt: c.now.toISOString() } }];
  }
}

/**
 * The conditions a report moves the host into or out of. Rejected: a
 * rejection with nothing applied after it (in the report's own events, an
 * apply then a rejection leaves it rejected). Drifted: what the report's drift
 * check says.
 */
function conditionChanges(c: RecordReport, s: HostState, decided: readonly HostEvent[]): HostConditionChanged[] {
  const at = c.now.toISOString();
  const out: HostConditionChanged[] = [];
  let rejected = s.conditions.rejected;
  for (const e of decided) {
    if (e.type === 'PolicyApplied') rejected = false;
    else if (e.type === 'PolicyRejected') rejected = true;
  }
  if (rejected !== s.conditions.rejected) {
    const detail = rejected && c.rejection ? `${c.rejection.reason}: ${c.rejection.message}` : null;
    out.push({ type: 'HostConditionChanged', data: { hostId: c.hostId, condition: 'rejected', on: rejected, detail, at } });
  }
  if (c.drift && c.drift.drifted !== s.conditions.drifted) {
    out.push({ type: 'HostConditionChanged', data: { hostId: c.hostId, condition: 'drifted', on: c.drift.drifted, detail: c.drift.detail ?? null, at } });
  }
  return out;
}

export const hostDecider: Decider<HostState, HostCommand, HostEvent> = {
  initialState: initialHostState,
  evolve: evolveHost,
  decide: decideHost,
};
