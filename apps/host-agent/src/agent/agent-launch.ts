// How the agent's process is started: the V8 and allocator settings that keep
// its memory under AGENT_MEMORY_BOUND_BYTES (dns/memory-bound.ts), applied
// wherever `cgfence agent` is started (systemd unit, `cgfence local up`, the
// test harness, a shell) by the agent's own entry: when the process lacks
// them it replaces itself (execve(2), same pid, same stdio) with a node
// that has them. Nothing else needs to know the flags: the proxy pool's
// cluster workers inherit execArgv and the environment, worker threads share
// the process's V8 flags. docs/operations.md, "Agent memory", gives the
// measurements behind each value.
import koffi from 'koffi';

/**
 * V8 flags of the agent process. `--max-semi-space-size=2` (MiB): the young
 * generation's two semi-spaces grow to 16 MiB each by default on 64-bit, and
 * under a DNS flood (every query and answer a short-lived Buffer) V8 grows them
 * and keeps them; capped at 2 MiB, scavenges are more frequent and each one
 * shorter, and the flood peaks were 40-80 MiB lower (measured, see the docs).
 */
export const AGENT_V8_FLAGS: readonly string[] = ['--max-semi-space-size=2'];

/**
 * Allocator settings of the agent process. glibc makes up to 8 malloc arenas
 * per core, one per thread that allocates concurrently (libuv's pool, V8's GC
 * helpers, the heartbeat and trie threads); each keeps its freed memory. Two
 * arenas bound that slack; the agent's malloc traffic is light (V8 manages its
 * own heap), so contention is not a concern.
 */
export const AGENT_ENV: Readonly<Record<string, string>> = { MALLOC_ARENA_MAX: '2' };

/**
 * `CGFENCE_AGENT_TUNING=off` starts the agent with node's defaults (to compare,
 * or to pass other values by hand); the entry sets `applied` after relaunching
 * so that it never relaunches twice.
 */
export const TUNING_ENV = 'CGFENCE_AGENT_TUNING';

export interface TuningPlan {
  /** V8 flags to add (none already given in execArgv or NODE_OPTIONS). */
  readonly flags: string[];
  /** Environment variables to set (none already set). */
  readonly env: Record<string, string>;
}

const flagName = (f: string): string => f.replace(/^--/, '').split('=')[0].replace(/_/g, '-');

/**
 * What the process still lacks of AGENT_V8_FLAGS and AGENT_ENV, or undefined
 * when it lacks nothing or must not be relaunched. A flag or variable the
 * operator set (to any value) is theirs: it is never overridden.
 */
export function tuningPlan(execArgv: readonly string[], env: NodeJS.ProcessEnv): TuningPlan | undefined {
  const state = env[TUNING_ENV];
  if (state === 'off' || state === 'applied') return undefined;
  const given = new Set([...execArgv, ...(env.NODE_OPTIONS ?? '').split(/\s+/)].filter((a) => a.startsWith('--')).map(flagName));
  const flags = AGENT_V8_FLAGS.filter((f) => !given.has(flagName(f)));
  const missing = Object.entries(AGENT_ENV).filter(([k]) => env[k] === undefined || env[k] === '');
  if (flags.length === 0 && missing.length === 0) return undefined;
  return { flags, env: Object.fromEntries(missing) };
}

/** The daemon is `cgfence agent [start] [options]`; `agent status|events|teardown|run` are short-lived clients. */
export function isAgentDaemon(argsAfterAgent: readonly string[]): boolean {
  const first = argsAfterAgent[0];
  return first === undefined || first === 'start' || (first.startsWith('-') && !['-h', '--help'].includes(first));
}

/** The execArgv a child node process of the agent (a proxy worker) gets: `execArgv` with AGENT_V8_FLAGS it lacks added (none with CGFENCE_AGENT_TUNING=off). */
export function withAgentFlags(execArgv: readonly string[], env: NodeJS.ProcessEnv = process.env): string[] {
  if (env[TUNING_ENV] === 'off') return [...execArgv];
  const given = new Set(execArgv.filter((a) => a.startsWith('--')).map(flagName));
  return [...execArgv, ...AGENT_V8_FLAGS.filter((f) => !given.has(flagName(f)))];
}

type Execve = (path: string, argv: Array<string | null>, envp: Array<string | null>) => number;
type Fcntl = (fd: number, cmd: number, arg: number) => number;
const F_SETFD = 2;

/** execve(2) of the running node binary with `args`; returns only on failure (with the reason). */
function execNode(args: string[], env: Record<string, string>): string {
  const modern = (process as unknown as { execve?: (file: string, args: string[], env: Record<string, string>) => never }).execve;
  if (typeof modern === 'function') {
    // Node >= 22.15 / 23.11: in place, stdio kept.
    try {
      modern(process.execPath, [process.execPath, ...args], env);
    } catch (err) {
      return (err as Error).message;
    }
  }
  try {
    const libc = koffi.load('libc.so.6');
    const execve = libc.func('int execve(const char *path, const char **argv, const char **envp)') as Execve;
    const fcntl = libc.func('int fcntl(int fd, int cmd, int arg)') as Fcntl;
    // Node marks stdin/stdout/stderr close-on-exec: the new image must keep them (logs, journald).
    for (const fd of [0, 1, 2]) fcntl(fd, F_SETFD, 0);
    execve(process.execPath, [process.execPath, ...args, null], [...Object.entries(env).map(([k, v]) => `${k}=${v}`), null]);
    return `execve failed (errno ${koffi.errno()})`;
  } catch (err) {
    return (err as Error).message;
  }
}

/**
 * Called by the `cgfence` entry before anything else loads, for
 * `cgfence agent ...`: when this is the daemon and it lacks the settings,
 * replaces the process with a node that has them (same pid, arguments and
 * stdio). If that fails the agent starts anyway, with node's defaults, and
 * says so on stderr: its memory may then exceed the documented bound.
 */
export function relaunchTunedAgent(argsAfterAgent: readonly string[]): void {
  if (!isAgentDaemon(argsAfterAgent)) return;
  const plan = tuningPlan(process.execArgv, process.env);
  if (!plan) return;
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined) env[k] = v;
  Object.assign(env, plan.env, { [TUNING_ENV]: 'applied' });
  const why = execNode([...process.execArgv, ...plan.flags, ...process.argv.slice(1)], env);
  process.stderr.write(`cgfence agent: could not restart with ${[...plan.flags, ...Object.keys(plan.env)].join(' ')} (${why}); running with node's defaults, memory may exceed the documented bound\n`);
}
