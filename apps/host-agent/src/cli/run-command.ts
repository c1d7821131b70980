import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { constants } from 'node:os';
import { RunStarted } from '@cgfence/proto';
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

/**
 * Asks the agent for a run, moves this process into the run's cgroup (so
 * everything the command spawns, daemons included, is born there), runs the
 * command with the terminal, passes signals through and returns its exit code
 * (128 + signal number when a signal ended it).
 */
export async function runProtected(stateDir: string, labels: Record<string, string>, command: string[], log: (l: string) => void): Promise<number> {
  let run: RunStarted;
  try {
    run = await callAgent<RunStarted>(stateDir, { op: 'run.start', labels, command, pid: process.pid });
  } catch (err) {
    const why = err instanceof NoAgentError ? `${err.message}; start one with \`cgfence agent --policy-file FILE\`` : (err as Error).message;
    log(`cgfence run: ${why}. Refusing to run ${JSON.stringify(command.join(' '))} unprotected.`);
    return RUN_FAILED;
  }
  try {
    writeFileSync(join(run.cgroupPath, 'cgroup.procs'), String(process.pid));
  } catch (err) {
    log(`cgfence run: cannot join the run cgroup ${run.cgroupPath}: ${(err as Error).message}. Refusing to run unprotected.`);
    await callAgent(stateDir, { op: 'run.end', runId: run.runId, exitCode: null, signal: null }).catch(() => undefined);
    return RUN_FAILED;
  }
  const [file, ...args] = command as [string, ...string[]];
  const child = spawn(file, args, { stdio: 'inherit', env: { ...process.env, CGFENCE_RUN_ID: run.runId } });
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
