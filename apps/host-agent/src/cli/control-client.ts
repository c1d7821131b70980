import { statSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { CONTROL_SOCKET, ControlRequest, ControlResponse } from '@cgfence/proto';
import { permissionDeniedMessage } from '../agent/control-server';
import { lookupGroup } from '../runs/user-lookup';

export class NoAgentError extends Error {}

/** The agent is there, but will not take requests from this user (not root, not in the run group). */
export class PermissionDeniedError extends Error {}

/** Why this user cannot reach the socket: the group owning the state dir is the run group, if any. */
function deniedByFilesystem(stateDir: string, path: string): PermissionDeniedError {
  let gid: number | undefined;
  try {
    gid = statSync(stateDir).gid;
  } catch {
    return new PermissionDeniedError(`permission denied: cannot reach ${path}; ask an administrator for access to ${stateDir}`);
  }
  const group = gid === 0 ? undefined : (lookupGroup(gid)?.name ?? String(gid));
  return new PermissionDeniedError(permissionDeniedMessage(group));
}

/** Sends one request to the agent of `stateDir` and returns its result. */
export async function callAgent<T>(stateDir: string, req: ControlRequest, timeoutMs = 10_000): Promise<T> {
  const path = join(stateDir, CONTROL_SOCKET);
  try {
    statSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EACCES') throw deniedByFilesystem(stateDir, path);
    throw new NoAgentError(`no cgfence agent is running with state dir ${stateDir} (no ${path})`);
  }
  return new Promise<T>((resolve, reject) => {
    const socket = connect(path);
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`the agent at ${path} did not answer within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(
        err.code === 'ECONNREFUSED' || err.code === 'ENOENT'
          ? new NoAgentError(`no cgfence agent is running with state dir ${stateDir} (${path}: ${err.code})`)
          : err.code === 'EACCES'
            ? deniedByFilesystem(stateDir, path)
            : err,
      );
    });
    // The line reader is made only once connected: made earlier, it re-emits a
    // refused connection (a stale socket after kill -9) as an unhandled error.
    socket.once('connect', () => {
      const lines = createInterface({ input: socket });
      lines.on('error', () => undefined);
      lines.once('line', (line) => {
        clearTimeout(timer);
        socket.end();
        try {
          const res = JSON.parse(line) as ControlResponse<T>;
          if (res.ok) resolve(res.result);
          else reject(res.code === 'PERMISSION_DENIED' ? new PermissionDeniedError(res.error) : new Error(`agent: ${res.error}`));
        } catch {
          reject(new Error(`the agent at ${path} answered something that is not JSON`));
        }
      });
      socket.write(`${JSON.stringify(req)}\n`);
    });
  });
}
