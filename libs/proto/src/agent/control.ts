import { z } from 'zod';
import type { Applied, ApplyError } from '../fleet/documents';

/**
 * The host agent's control socket: a unix stream socket at
 * `<state-dir>/agent.sock` (mode 0600, root only; root:GROUP 0660 with
 * `--run-group GROUP`), one JSON object per line in each direction. The agent
 * identifies callers by the kernel's SO_PEERCRED, never by what they send. Each request gets exactly one response line, except
 * `events.follow`, which answers with event lines until the client hangs up.
 */

export const CONTROL_SOCKET = 'agent.sock';

const LabelKey = z.string().regex(/^[a-zA-Z0-9_.\-/]{1,63}$/, 'label keys are 1-63 of letters, digits, "_", ".", "-", "/"');
export const RunLabels = z.record(LabelKey, z.string().max(256));
export type RunLabels = z.infer<typeof RunLabels>;

export const ControlRequest = z.discriminatedUnion('op', [
  z.object({ op: z.literal('status') }),
  z.object({
    op: z.literal('run.start'),
    labels: RunLabels,
    command: z.array(z.string()).min(1),
    /**
     * `cgfence run --user NAME`: the user the command will run as (root
     * callers only). The agent moves the calling process (SO_PEERCRED pid)
     * into the run; a pid in the request is ignored.
     */
    user: z.string().min(1).max(64).optional(),
  }),
  z.object({
    op: z.literal('run.end'),
    runId: z.string(),
    exitCode: z.number().int().nullable(),
    signal: z.string().nullable(),
  }),
  z.object({ op: z.literal('reload') }),
]);
export type ControlRequest = z.infer<typeof ControlRequest>;

export interface RunStarted {
  runId: string;
  cgroupPath: string;
  /** Whom the run is recorded as: the caller, or the `--user` it runs as. */
  uid: number;
  user: string;
}

export interface AgentStatus {
  host: string;
  pid: number;
  startedAt: string;
  cgroup: { path: string; controllers: string[]; limits: Record<string, string>; limitsNote?: string };
  programs: string[];
  adoptedPins: boolean;
  pinDir: string;
  policy: { source: string; version: string; hash: string; domains: number; wildcards: number; cidr4: number; cidr6: number; loadedAt: string; lastError?: string };
  mode: 'enforce' | 'audit';
  failMode: 'open' | 'closed';
  proxy: { port: number; upstream: string; healthy: boolean };
  counters: Record<string, string>;
  runs: { active: number };
  /** `--protect-cgroup`: existing cgroups under the same programs. */
  protectedCgroups?: ProtectedCgroupStatus[];
  /**
   * `--refused-unix-sockets`: whether the kernel refuses the deploy cgroup's
   * connects to resolving daemons' sockets (active), was told not to (off),
   * or cannot (unavailable: a kernel before 6.7; reason says why).
   */
  unixGuard?: { state: 'active' | 'off' | 'unavailable'; paths?: string[]; reason?: string };
  /** Present when the agent takes its policy from the policy server (`cgfence agent --server`). */
  fleet?: FleetAgentStatus;
  /** The event spool (fleet mode): what is not shipped to the central history yet. */
  spool?: SpoolStatus;
}

/** One `--protect-cgroup` cgroup in `cgfence agent status`. */
export interface ProtectedCgroupStatus {
  /** Relative to the cgroup v2 root, with a leading slash (as /proc/PID/cgroup shows it). */
  path: string;
  /** The systemd unit, when the last path element is one (deployd.service). */
  unit: string | null;
  /** protected: programs attached; waiting: no such cgroup now (service stopped); failed: attaching failed (error). */
  state: 'protected' | 'waiting' | 'failed';
  cgroupId: string | null;
  /** The synthetic run of this start of the service (`cgroup-<cgroup id>`); events carry it. */
  runId: string | null;
  error?: string;
}

/** The agent's disk spool of events on their way to JetStream. */
export interface SpoolStatus {
  /** Events (and run summaries) not acked by JetStream yet. */
  pending: number;
  /** Bytes of the spool files, and their bound (--spool-max-bytes). */
  bytes: number;
  maxBytes: number;
  /** Events dropped unshipped (oldest first) because the spool was full, since it was created. */
  dropped: number;
  /** Acked since the agent started. */
  shipped: number;
  lastShippedAt: string | null;
  lastError: { at: string; message: string } | null;
}

/** The agent's side of the fleet protocol, for `cgfence agent status`. */
export interface FleetAgentStatus {
  /** NATS server URL(s) as configured. */
  server: string;
  connected: boolean;
  hostId: string;
  labels: Record<string, string>;
  /** The last desired revision acted on (applied, or rejected for good); null: none yet. */
  seenRevision: number | null;
  /** The bundle in force; null: none (empty policy). */
  applied: Applied | null;
  /** Why this host got its bundle ('baseline', an assignment's reason), or why none. */
  target: string | null;
  /** The policy server put this host in audit mode (kill switch, cohort or assignment). */
  auditOverride: boolean;
  lastError: ApplyError | null;
  /** The kernel's IP maps compared with what was applied; null: not checked yet. */
  drift: { drifted: boolean; detail?: string; checkedAt: string } | null;
  lastSync: { at: string; ok: boolean; revision?: number; error?: string } | null;
  /** What the agent enforced at boot before hearing from the server. */
  boot: string;
}

/** PERMISSION_DENIED: the caller is not root or in the run group, or asked for a root-only op. */
export type ControlErrorCode = 'PERMISSION_DENIED';

export type ControlResponse<T = unknown> = { ok: true; result: T } | { ok: false; error: string; code?: ControlErrorCode };
