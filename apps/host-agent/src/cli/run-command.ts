import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { constants } from 'node:os';
import { RunStarted } from '@cgfence/proto';
import { lookupGroup, lookupUser } from '../runs/user-lookup';
import { callAgent, NoAgentError } from './control-client';

/** Exit codes of `cgfence run` itself, as env(1) and shells use them. */
export const RUN_FAILED = 125;
export const NOT_EXECUTABLE = 126;
export const NOT_FOUND = 127;

const FORWARDED: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2', 'SIGWINCH'];

export function parseLabels(pairs: readonly string[]): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const pair of pairs) {
    const at = pair.indexOf('=');
    if (at <= 0) throw new Error(`--label ${JSON.stringify(pair)}: expected key=value`);
    labels[pair.slice(0, at)] = pair.slice(at + 1);
  }
  return labels;
}

/** What `cgfence run` was asked to do. */
export interface RunRequest {
  readonly stateDir: string;
  readonly labels: Record<string, string>;
  readonly command: readonly string[];
  /** No "run <id>" line on stderr at start. */
  readonly quiet?: boolean;
  /** `--user NAME` (root only): run the command as this user, with its groups. */
  readonly user?: string;
  /** `--group G`: its primary group instead of the user's own. */
  readonly group?: string;
}

/** How to start a missing agent, in local and in fleet mode. */
export const NO_AGENT_HINT =
  'start one with `cgfence agent --policy-file FILE` (local policy) or `cgfence agent --server nats://HOST:4222 --server-key FILE` ' +
  '(fleet mode; as installed from docker/host-agent.service: `systemctl start cgfence-agent`); ' +
  'if it runs with another --state-dir, pass the same --state-dir or set CGFENCE_STATE_DIR';

/** The cgroup v2 path of this process ('0::' line of /proc/self/cgroup). */
function ownCgroup(): string | undefined {
  return readFileSync('/proc/self/cgroup', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('0::'))
    ?.slice(3);
}

/** The setpriv(1) prefix that runs a command as `user` (uid, gid, supplementary groups), or an error. */
function dropTo(user: string, group: string | undefined): { prefix: string[]; env: Record<string, string> } | string {
  if (process.getuid?.() !== 0) return '--user needs root (a non-root caller runs as itself)';
  const account = lookupUser(user);
  if (!account) return `--user ${user}: no such user`;
  let gid = account.gid;
  if (group !== undefined) {
    const g = lookupGroup(group);
    if (!g) return `--group ${group}: no such group`;
    gid = g.gid;
  }
  return {
    prefix: ['setpriv', `--reuid=${account.uid}`, `--regid=${gid}`, '--init-groups', '--'],
    env: { USER: account.name, LOGNAME: account.name, HOME: account.home },
  };
}

/**
 * Asks the agent for a run; the agent moves this process into the run's
 * cgroup (so everything the command spawns, daemons included, is born there).
 * Runs the command with the terminal (as `--user` if given), passes signals
 * through and returns its exit code (128 + signal number when a signal ended it).
 */
export async function runProtected(req: RunRequest, log: (l: string) => void): Promise<number> {
  const { stateDir, labels, command } = req;
  let drop: Exclude<ReturnType<typeof dropTo>, string> | undefined;
  if (req.user !== undefined) {
    const d = dropTo(req.user, req.group);
    if (typeof d === 'string') {
      log(`cgfence run: ${d}. Refusing to run ${JSON.stringify(command.join(' '))}.`);
      return RUN_FAILED;
    }
    drop = d;
  } else if (req.group !== undefined) {
    log('cgfence run: --group needs --user.');
    return RUN_FAILED;
  }
  let run: RunStarted;
  try {
    run = await callAgent<RunStarted>(stateDir, { op: 'run.start', labels, command: [...command], ...(req.user !== undefined ? { user: req.user } : {}) });
  } catch (err) {
    const why = err instanceof NoAgentError ? `${err.message}; ${NO_AGENT_HINT}` : (err as Error).message;
    log(`cgfence run: ${why}. Refusing to run ${JSON.stringify(command.join(' '))} unprotected.`);
    return RUN_FAILED;
  }
  // The agent moved this process (by its SO_PEERCRED pid); check before running anything.
  const own = ownCgroup();
  if (own === undefined || own === '/' || !run.cgroupPath.endsWith(own)) {
    log(`cgfence run: this process is in cgroup ${own ?? '(unknown)'}, not in the run cgroup ${run.cgroupPath}. Refusing to run unprotected.`);
    await callAgent(stateDir, { op: 'run.end', runId: run.runId, exitCode: null, signal: null }).catch(() => undefined);
    return RUN_FAILED;
  }
  if (!req.quiet) log(`cgfence run: run ${run.runId} as ${run.user} (uid ${run.uid}) in ${run.cgroupPath}`);
  const argv = drop ? [...drop.prefix, ...command] : [...command];
  const [file, ...args] = argv as [string, ...string[]];
  const env = { ...process.env, ...drop?.env, CGFENCE_RUN_ID: run.runId };
  const child = spawn(file, args, { stdio: 'inherit', env });
  const forward = (sig: NodeJS.Signals) => () => {
    if (child.exitCode === null) child.kill(sig);
  };
  const handlers = FORWARDED.map((sig) => [sig, forward(sig)] as const);
  for (const [sig, h] of handlers) process.on(sig, h);
  const { code, signal, spawnError } = await new Promise<{ code: number | null; signal: NodeJS.Signals | null; spawnError?: NodeJS.ErrnoException }>((resolve) => {
    child.once('error', (err: NodeJS.ErrnoException) => resolve({ code: null, signal: null, spawnError: err }));
    child.once('exit', (c, s) => resolve({ code: c, signal: s }));
  });
  for (const [sig, h] of handlers) process.off(sig, h);
  let exit: number;
  if (spawnError) {
    exit = spawnError.code === 'ENOENT' ? NOT_FOUND : NOT_EXECUTABLE;
    log(`cgfence run: ${file}: ${spawnError.code === 'ENOENT' ? 'command not found' : spawnError.message}`);
  } else if (signal) {
    exit = 128 + (constants.signals[signal] ?? 0);
  } else {
    exit = code ?? RUN_FAILED;
  }
  await callAgent(stateDir, { op: 'run.end', runId: run.runId, exitCode: spawnError ? null : code, signal }).catch((err: Error) =>
    log(`cgfence run: could not report the end of run ${run.runId}: ${err.message}`),
  );
  return exit;
}
