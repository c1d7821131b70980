import { existsSync, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { GroupEntry } from '../runs/user-lookup';
import type { ClientRateLimits } from '@cgfence/bpf';

export type Mode = 'enforce' | 'audit';
export type FailMode = 'open' | 'closed';

/** Everything `cgfence agent` is started with, validated by the CLI. */
export interface AgentConfig {
  /**
   * Blocklist file (the policy store's format); reloaded on SIGHUP and on
   * change. Absent in fleet mode: the policy comes from the policy server
   * (FleetClient → Agent.fleetSink()).
   */
  readonly policyFile?: string;
  /** How long the policy file must stay unchanged before a reload applies it (default POLICY_SETTLE_MS). */
  readonly policySettleMs?: number;
  /** Fleet mode: the NATS server(s) the policy comes from (for status). */
  readonly fleetServer?: string;
  /** How often the kernel's IP maps are compared with what was applied (fleet mode); 0: never. */
  readonly driftCheckMs?: number;
  /** HOST:PORT of the resolver allowed queries are forwarded to. */
  readonly upstream: string;
  readonly mode: Mode;
  readonly failMode: FailMode;
  /** Name of the deploy cgroup under the cgroup v2 root. */
  readonly cgroupName: string;
  /** Where the control socket, journal, runs and pid file live. */
  readonly stateDir: string;
  /** DNS proxy port on 127.0.0.1 and ::1; 0 picks a free one. */
  readonly proxyPort: number;
  /** DNS proxy processes answering UDP (ProxyPool, 'node' engine only); 1 (default): the proxy runs in the agent process. */
  readonly proxyWorkers?: number;
  /** Who does the proxy's UDP: 'core' (default), the C forwarding core on a thread of its own; 'node', JavaScript (DnsProxyOptions.udpEngine). */
  readonly dnsUdpEngine?: 'core' | 'node';
  readonly host: string;
  readonly cohort?: string;
  /** cgroup v2 resource limits of the deploy cgroup, as the kernel files take them. */
  readonly limits: { readonly 'cpu.max'?: string; readonly 'memory.max'?: string; readonly 'pids.max'?: string };
  /** How stale the proxy heartbeat may get before the kernel applies the fail mode. */
  readonly heartbeatTimeoutMs: number;
  readonly upstreamTimeoutMs: number;
  readonly logLevel: string;
  /** Where the Prometheus endpoint (/metrics, /healthz, /readyz) listens; undefined: nowhere (--metrics-listen none). */
  readonly metricsListen?: { readonly host: string; readonly port: number };
  /** `--run-group`: members may start runs through the control socket (root always can). */
  readonly runGroup?: GroupEntry;
  /** `--protect-cgroup` (and fleet mode's labels file): existing cgroups, relative to the cgroup v2 root, under the same programs. */
  readonly protectCgroups?: readonly string[];
  /** Ports other than 53 refused to the deploy cgroup (DoT/DoQ); undefined: the data plane's default, [853]. */
  readonly refusedDnsPorts?: readonly number[];
  /** `--dns-client-limit` / `--dns-run-limit`: per-process and per-run limit of UDP queries to the proxy; undefined: the data plane's defaults. */
  readonly clientRate?: ClientRateLimits;
  /** Hosts file whose entries for listed names are blocked by address (default /etc/hosts); undefined: not read. */
  readonly hostsFile?: string;
  /** `--learned-per-entry`: the most learned addresses one '!resolve' entry may hold (LearnedAddressBudget); default 4096. */
  readonly learnedPerEntry?: number;
  /** `--resolve-ttl-min`: floor (seconds) of the TTL learned addresses are blocked for; default 30. */
  readonly resolveTtlMinSeconds?: number;
  /** Unix sockets of resolving daemons refused to the deploy cgroup (kernel 6.7+); undefined: the data plane's defaults; []: off. */
  readonly refusedUnixSockets?: readonly string[];
  /** Diagnostics only (hidden flag): attach types the unix guard loads with; a value the kernel refuses shows the no-hook path. */
  readonly unixGuardAttachTypes?: { readonly connect: number; readonly sendmsg: number };
  /** `--redact-pattern`: extra secret shapes (regex sources, checked by compileRedactPatterns) taken out of command lines. */
  readonly redactPatterns?: readonly string[];
}

export const DEFAULT_STATE_DIR = '/var/lib/cgfence';
export const DEFAULT_CGROUP = 'cgfence-deploy';
export const PID_FILE = 'agent.pid';
export const DEFAULT_METRICS_LISTEN = '127.0.0.1:9464';

/** --metrics-listen: HOST:PORT ([v6]:PORT), or 'none'. Throws a message naming what is wrong. */
export function parseMetricsListen(value: string): { host: string; port: number } | undefined {
  const v = value.trim();
  if (v === 'none') return undefined;
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s]+)):(\d{1,5})$/.exec(v);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new Error(`--metrics-listen must be HOST:PORT ([IPv6]:PORT) or none, got ${JSON.stringify(value)}`);
  return { host: (m[1] ?? m[2])!, port };
}

/** Pid of the agent that owns `stateDir`, if one is alive. */
export function runningAgentPid(stateDir: string): number | undefined {
  const pidFile = join(stateDir, PID_FILE);
  if (!existsSync(pidFile)) return undefined;
  const pid = Number(readFileSync(pidFile, 'utf8').trim());
  return Number.isInteger(pid) && pid > 0 && existsSync(`/proc/${pid}`) ? pid : undefined;
}

/** bpffs directory holding this agent's pinned links and maps. */
export function pinDirFor(bpffs: string, cgroupName: string): string {
  return join(bpffs, 'cgfence', cgroupName);
}

export function defaultHost(): string {
  return hostname();
}
