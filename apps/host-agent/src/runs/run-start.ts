import { readFileSync } from 'node:fs';
import type { ControlRequest, RunStarted } from '@cgfence/proto';
import { ControlCaller, ControlPermissionError } from '../agent/control-server';
import type { RunRegistry } from './run-registry';
import type { RunsService } from './runs.service';
import { lookupUser, userNameOf } from './user-lookup';

type StartRequest = Extract<ControlRequest, { op: 'run.start' }>;

/**
 * The effective uid of a live process (second field of the Uid: line of
 * /proc/PID/status): what SO_PEERCRED reports for the connection.
 */
export function effectiveUidOf(pid: number): number | undefined {
  try {
    const m = /^Uid:\s+\d+\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * `run.start` from the control socket: makes the run cgroup and moves the
 * calling process into it, by the pid the kernel gave for the connection
 * (the caller cannot write cgroup.procs itself unless it is root, and a pid
 * it names is never trusted). The run records whom its command runs as.
 */
export function startRun(runs: Pick<RunsService, 'create' | 'finish' | 'registry'>, req: StartRequest, caller: ControlCaller): RunStarted {
  let owner: { uid: number; user: string };
  if (req.user !== undefined) {
    if (!caller.root) throw new ControlPermissionError('permission denied: --user needs root');
    const account = lookupUser(req.user);
    if (!account) throw new Error(`--user ${req.user}: no such user`);
    owner = { uid: account.uid, user: account.name };
  } else {
    owner = { uid: caller.uid, user: userNameOf(caller.uid) };
  }
  // SO_PEERCRED names the process that connected. Should it have exited and
  // its pid gone to someone else's process, that process is not moved.
  if (effectiveUidOf(caller.pid) !== caller.uid) throw new Error(`the calling process ${caller.pid} is gone or changed owner; not starting a run`);
  const run = runs.create(req.labels, req.command.join(' '), owner);
  try {
    runs.registry.addProcess(run.runId, caller.pid);
  } catch (err) {
    runs.finish(run.runId, null, null);
    throw err;
  }
  return { runId: run.runId, cgroupPath: run.cgroupPath, uid: owner.uid, user: owner.user };
}

/** `run.end`: root may end any run, others only the runs that run as them. */
export function assertMayEnd(runs: RunRegistry, runId: string, caller: ControlCaller): void {
  const run = runs.get(runId);
  if (run && !caller.root && run.uid !== caller.uid) throw new ControlPermissionError(`permission denied: run ${runId} is not yours`);
}
