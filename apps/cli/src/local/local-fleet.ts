import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { ManagedProcess, NatsServer, PostgresServer, waitFor } from '@cgfence/devservices';
import { CliError } from '../errors';

export interface LocalFleetOptions {
  stateDir: string;
  pgPort: number;
  natsPort: number;
  apiPort: number;
}

export interface LocalFleet {
  apiUrl: string;
  tokenFile: string;
  stop(): Promise<void>;
}

async function ensurePortFree(port: number, what: string, stateDir: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const srv = createServer();
    srv.once('error', () =>
      reject(new CliError(`port ${port} (${what}) is already in use on 127.0.0.1 — is a local fleet already running from ${stateDir}? Stop it, or pick other ports (see --help)`)),
    );
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve()));
  });
}

/** The policy server's entry point, beside this app in the repository (the CLI never imports it). */
function policyServerMain(): string {
  const main = resolve(__dirname, '..', '..', '..', '..', 'policy-server', 'dist', 'src', 'main.js');
  if (!existsSync(main)) throw new CliError(`the policy server is not built (${main} missing): run npm run build`);
  return main;
}

/**
 * Starts PostgreSQL, nats-server (JetStream) and the policy server as child
 * processes with all their data under one state directory, on fixed
 * non-standard ports. A second start reuses the data.
 */
export async function startLocalFleet(opts: LocalFleetOptions, log: (line: string) => void): Promise<LocalFleet> {
  mkdirSync(join(opts.stateDir, 'logs'), { recursive: true });
  await ensurePortFree(opts.pgPort, 'PostgreSQL', opts.stateDir);
  await ensurePortFree(opts.natsPort, 'NATS', opts.stateDir);
  await ensurePortFree(opts.apiPort, 'policy server API', opts.stateDir);

  const stops: (() => Promise<void>)[] = [];
  const stop = async () => {
    for (const s of stops.reverse()) await s().catch(() => undefined);
  };
  try {
    log(`starting PostgreSQL on 127.0.0.1:${opts.pgPort} (data in ${join(opts.stateDir, 'postgres')})`);
    const pg = await PostgresServer.start({ dir: join(opts.stateDir, 'postgres'), port: opts.pgPort });
    stops.push(() => pg.stop());
    const databaseUrl = await pg.createDatabase('cgfence');

    log(`starting nats-server with JetStream on 127.0.0.1:${opts.natsPort}`);
    const nats = await NatsServer.start({ dir: join(opts.stateDir, 'nats'), port: opts.natsPort });
    stops.push(() => nats.stop());

    const serverState = join(opts.stateDir, 'server');
    const logFile = join(opts.stateDir, 'logs', 'policy-server.log');
    log(`starting the policy server on 127.0.0.1:${opts.apiPort} (log: ${logFile})`);
    const server = ManagedProcess.start('policy-server', process.execPath, ['--enable-source-maps', policyServerMain(), 'serve'], logFile, {
      env: {
        ...process.env,
        CGFENCE_DATABASE_URL: databaseUrl,
        CGFENCE_HTTP_HOST: '127.0.0.1',
        CGFENCE_HTTP_PORT: String(opts.apiPort),
        CGFENCE_STATE_DIR: serverState,
        CGFENCE_NATS_URL: nats.url(),
      },
    });
    stops.push(() => server.stop());
    const apiUrl = `http://127.0.0.1:${opts.apiPort}`;
    await waitFor(`the policy server at ${apiUrl}/ready (log: ${logFile})`, async () => {
      if (!server.running) throw new Error(`the policy server exited: ${readFileSync(logFile, 'utf8').split('\n').slice(-5).join('\n')}`);
      const res = await fetch(`${apiUrl}/ready`);
      return res.ok;
    }, 60_000);
    return { apiUrl, tokenFile: join(serverState, 'admin-token'), stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
