import { z } from 'zod';

/**
 * The host agent's control socket: a unix stream socket at
 * `<state-dir>/agent.sock` (mode 0600, root only), one JSON object per line in
 * each direction. Each request gets exactly one response line, except
 * `events.follow`, which answers with event lines until the client hangs up.
 */

export const CONTROL_SOCKET = 'agent.sock';

const LabelKey = z.string().regex(/^[a-zA-Z0-9_.\-/]{1,63}$/, 'label keys are 1-63 of letters, digits, "_", ".", "-", "/"');
export const RunLabels = z.record(LabelKey, z.string().max(256));
export type RunLabels = z.infer<typeof RunLabels>;

export const ControlRequest = z.discriminatedUnion('op', [
  z.object({ op: z.literal('status') }),
  z.object({ op: z.literal('run.start'), labels: RunLabels, command: z.array(z.string()).min(1), pid: z.number().int().positive() }),
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
}

export type ControlResponse<T = unknown> = { ok: true; result: T } | { ok: false; error: string };
