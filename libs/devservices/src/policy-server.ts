import { existsSync, readFileSync } from 'node:fs';
import { Agent, fetch as undiciFetch } from 'undici';
import { waitFor } from './ports';
import { ManagedProcess } from './process';

export interface PolicyServerProcessOptions {
  /** The compiled server entry point: apps/policy-server/dist/src/main.js. */
  main: string;
  /** Its HTTP port on 127.0.0.1 (set as CGFENCE_HTTP_PORT). */
  port: number;
  /** Its environment (database, NATS, state dir, …). */
  env: NodeJS.ProcessEnv;
  /** Where its output goes; its tail is in the error if it exits while starting. */
  log: string;
  /** Also wait until its NATS connection is up (/ready says nats: connected). */
  nats?: boolean;
  name?: string;
  /** Where /ready is asked (default http://127.0.0.1:PORT): e.g. https://ADDRESS:PORT when it serves HTTPS on another address. */
  baseUrl?: string;
  /** PEM CA its HTTPS certificate chains to. */
  ca?: string;
  /** Node options before the entry point (e.g. --cpu-prof, which NODE_OPTIONS refuses). */
  nodeArgs?: string[];
}

/**
 * Starts the real policy server (`main.js serve`) as a child process and
 * waits until /ready answers, failing at once with its log if it exits.
 */
export async function startPolicyServer(o: PolicyServerProcessOptions): Promise<ManagedProcess> {
  const p = ManagedProcess.start(o.name ?? 'policy-server', process.execPath, [...(o.nodeArgs ?? []), o.main, 'serve'], o.log, {
    env: { ...o.env, CGFENCE_HTTP_PORT: String(o.port) },
  });
  const ready = `${o.baseUrl ?? `http://127.0.0.1:${o.port}`}/ready`;
  const dispatcher = o.ca === undefined ? undefined : new Agent({ connect: { ca: o.ca } });
  const get = (url: string) => (dispatcher ? undiciFetch(url, { dispatcher }) : fetch(url));
  let exited = false;
  try {
    await waitFor(`the policy server (${ready}${o.nats ? ', NATS connected' : ''})`, async () => {
      if (!p.running) {
        exited = true;
        return true;
      }
      const res = await get(ready).catch(() => undefined);
      if (res?.ok !== true) return false;
      return !o.nats || ((await res.json()) as { nats?: string }).nats === 'connected';
    }, 60_000);
  } catch (err) {
    await p.stop();
    throw err;
  } finally {
    void dispatcher?.close();
  }
  if (exited) {
    const tail = existsSync(o.log) ? readFileSync(o.log, 'utf8').slice(-3000) : '(no log)';
    throw new Error(`the policy server exited while starting:\n${tail}`);
  }
  return p;
}
