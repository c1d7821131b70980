import { readFileSync } from 'node:fs';
import { NatsAuthError } from './auth-dir';

function pidOf(pidOrPidFile: number | string): number {
  if (typeof pidOrPidFile === 'number') return pidOrPidFile;
  let text: string;
  try {
    text = readFileSync(pidOrPidFile, 'utf8').trim();
  } catch (err) {
    throw new NatsAuthError(`cannot read pid file ${pidOrPidFile}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  if (!/^\d+$/.test(text)) throw new NatsAuthError(`pid file ${pidOrPidFile} does not hold a process id`);
  return Number(text);
}

/**
 * Makes a running nats-server re-read its configuration (what
 * `nats-server --signal reload=<pid>` does: SIGHUP). Refuses a process that is
 * not nats-server, so a stale pid file never hangs up something else. Returns
 * the pid. nats-server applies new users and permissions to open connections
 * and closes those of removed users.
 */
export function reloadNats(pidOrPidFile: number | string): number {
  const pid = pidOf(pidOrPidFile);
  if (!Number.isInteger(pid) || pid <= 1) throw new NatsAuthError(`${pid} is not a nats-server process id`);
  let comm: string | undefined;
  try {
    comm = readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new NatsAuthError(`no process ${pid} (is nats-server running?)`);
    comm = undefined; // no /proc: trust the caller
  }
  if (comm !== undefined && !comm.startsWith('nats-server')) {
    throw new NatsAuthError(`process ${pid} is ${JSON.stringify(comm)}, not nats-server; not reloading it`);
  }
  try {
    process.kill(pid, 'SIGHUP');
  } catch (err) {
    throw new NatsAuthError(`cannot signal nats-server ${pid}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  return pid;
}
