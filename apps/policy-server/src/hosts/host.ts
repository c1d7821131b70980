/**
 * The host aggregate (stream 'host-<id>'): registration, the facts an agent
 * reports about itself (hostname, labels, kernel, agent version,
 * capabilities), and every version it applied or rejected. Heartbeats are not
 * events: they only refresh the read model.
 */
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

export type HostEvent = HostRegistered | HostUpdated | PolicyApplied | PolicyRejected;

export interface HostState {
  registered: boolean;
  facts: HostFacts | null;
  applied: { revision: number; blocklist: string; version: number; contentHash: string } | null;
  lastRejection: { revision: number | null; reason: string; at: string } | null;
}

export const initialHostState: HostState = { registered: false, facts: null, applied: null, lastRejection: null };

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
  labels?: Record<string, string>;
  now: Date;
}

export type HostCommand = RegisterHost | RecordReport;

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
      return out;
    }
  }
}

export const hostDecider: Decider<HostState, HostCommand, HostEvent> = {
  initialState: initialHostState,
  evolve: evolveHost,
  decide: decideHost,
};
