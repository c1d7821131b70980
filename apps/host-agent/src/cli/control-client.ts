import { existsSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { CONTROL_SOCKET, ControlRequest, ControlResponse } from '@cgfence/proto';

export class NoAgentError extends Error {}

/** Sends one request to the agent of `stateDir` and returns its result. */
export async function callAgent<T>(stateDir: string, req: ControlRequest, timeoutMs = 10_000): Promise<T> {
  const path = join(stateDir, CONTROL_SOCKET);
  if (!existsSync(path)) throw new NoAgentError(`no cgfence agent is running with state dir ${stateDir} (no ${path})`);
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
          else reject(new Error(`agent: ${res.error}`));
        } catch {
          reject(new Error(`the agent at ${path} answered something that is not JSON`));
        }
      });
      socket.write(`${JSON.stringify(req)}\n`);
    });
  });
}
