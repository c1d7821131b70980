// Messages between a ProxyPool (the agent, node:cluster primary) and its DNS
// proxy worker processes (proxy-worker.ts), over the cluster IPC channel with
// 'advanced' serialization (structured clone: Dates and bigints survive).
import type { BlocklistEntry } from '../policy/entry-types';
import { createPolicy, type Policy } from '../policy/policy';
import type { DnsPolicyEvent, DnsProxyStats, DnsQueryNotice, ProxyMode } from './dns-events';

/** The part of a policy a proxy uses: its name entries, one per line, kind (and '!resolve') in the first character. */
export interface WirePolicy {
  readonly version: string;
  readonly hash: string;
  readonly names: string;
}

export interface WorkerConfig {
  readonly upstream: string;
  readonly port: number;
  readonly listenAddresses: readonly string[];
  readonly mode: ProxyMode;
  readonly policy?: WirePolicy;
  readonly policySeq: number;
  readonly upstreamTimeoutMs?: number;
  readonly maxInFlight?: number;
  readonly resolveTtl?: { readonly minSeconds?: number; readonly maxSeconds?: number };
  /** The agent's pin dir: the worker opens the pinned attribution map there. */
  readonly attributionPinDir?: string;
  /** Send query notices (the attributed ones) to the primary. */
  readonly reportQueries: boolean;
  readonly logLevel: string;
  readonly logBase: Record<string, unknown>;
}

export type ToWorker =
  | { readonly type: 'init'; readonly config: WorkerConfig }
  | { readonly type: 'policy'; readonly policy: WirePolicy; readonly seq: number }
  | { readonly type: 'mode'; readonly mode: ProxyMode }
  | { readonly type: 'attribution'; readonly pinDir: string }
  | { readonly type: 'queries'; readonly report: boolean }
  | { readonly type: 'stats'; readonly id: number }
  | { readonly type: 'stop' };

export type FromWorker =
  | { readonly type: 'ready'; readonly port: number }
  | { readonly type: 'failed'; readonly message: string; readonly code?: string }
  | { readonly type: 'events'; readonly events: readonly DnsPolicyEvent[] }
  | { readonly type: 'queries'; readonly notices: readonly DnsQueryNotice[] }
  | { readonly type: 'learn'; readonly addrs: readonly string[]; readonly ttlSeconds: number; readonly entry: string }
  | { readonly type: 'stats'; readonly id: number; readonly stats: DnsProxyStats }
  | { readonly type: 'policy-applied'; readonly seq: number };

const KIND_CODE = { domain: 'd', wildcard: 'w' } as const;

/** A policy's name entries for a worker: one string, cheap to send and to take apart. */
export function toWirePolicy(policy: Policy): WirePolicy {
  const lines: string[] = [];
  for (const e of policy.entries) {
    if (e.kind !== 'domain' && e.kind !== 'wildcard') continue;
    const code = KIND_CODE[e.kind];
    lines.push(`${e.resolve === true ? code.toUpperCase() : code}${e.value}`);
  }
  return { version: policy.version, hash: policy.hash, names: lines.join('\n') };
}

/** The worker's Policy: the name entries (no CIDRs: the kernel enforces those), same version and hash. */
export function fromWirePolicy(w: WirePolicy): Policy {
  const entries: BlocklistEntry[] = [];
  if (w.names !== '') {
    for (const line of w.names.split('\n')) {
      const code = line.charAt(0);
      const kind = code === 'd' || code === 'D' ? 'domain' : 'wildcard';
      entries.push(code === 'D' || code === 'W' ? { kind, value: line.slice(1), resolve: true } : { kind, value: line.slice(1) });
    }
  }
  return createPolicy(entries, { version: w.version, hash: w.hash });
}

/** Adds every counter of `b` to `a` (inFlight too: the sum of gauges is the pool's gauge). */
export function addStats(a: DnsProxyStats, b: DnsProxyStats): DnsProxyStats {
  const out = { ...a, latencyBuckets: a.latencyBuckets.map((n, i) => n + (b.latencyBuckets?.[i] ?? 0)) };
  for (const k of Object.keys(out) as (keyof DnsProxyStats)[]) if (k !== 'latencyBuckets') out[k] += b[k] ?? 0;
  return out;
}

export { zeroStats } from './dns-proxy';
