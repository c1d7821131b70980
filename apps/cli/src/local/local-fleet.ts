import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { ManagedProcess, NatsServer, PostgresServer, waitFor } from '@cgfence/devservices';
import { addHost, authConfigFile, initAuth } from '@cgfence/nats-auth';
import { CliError } from '../errors';

export interface LocalFleetOptions {
  stateDir: string;
  pgPort: number;
  natsPort: number;
  apiPort: number;
  /** Resolver the agent forwards allowed queries to (HOST:PORT); the agent's own default when absent. */
  agentUpstream?: string;
  /** Deploy cgroup of the local agent. */
  agentCgroup: string;
}

export interface LocalFleet {
  apiUrl: string;
  tokenFile: string;
  agentStateDir: string;
  /** The local agent's host id in the fleet. */
  agentHostId: string;
  natsAuthDir: string;
  stop(): Promise<void>;
}

/** Host id of the local agent. */
export const LOCAL_HOST_ID = 'local';

async function ensurePortFree(port: number, what: string, stateDir: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const srv = createServer();
    srv.once('error', () =>
      reject(new CliError(`port ${port} (${what}) is already in use on 127.0.0.1 — is a local fleet already running from ${stateDir}? Stop it, or pick other ports (see --help)`)),
    );
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve()));
  });
}

const CGFENCE_BIN = resolve(__dirname, '..', '..', '..', 'bin', 'cgfence');

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

    // Every process on NATS has its own nkey (kept across starts): the server,
    // and the local agent as host "local".
    const natsAuthDir = join(opts.stateDir, 'nats-auth');
    const natsAuth = initAuth(natsAuthDir);
    const hostKey = addHost(natsAuthDir, LOCAL_HOST_ID);
    log(`starting nats-server with JetStream on 127.0.0.1:${opts.natsPort} (per-host credentials in ${natsAuthDir})`);
    const nats = await NatsServer.start({ dir: join(opts.stateDir, 'nats'), port: opts.natsPort, include: [authConfigFile(natsAuthDir)] });
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
        CGFENCE_NATS_SEED: natsAuth.serverSeedFile,
      },
    });
    stops.push(() => server.stop());
    const apiUrl = `http://127.0.0.1:${opts.apiPort}`;
    await waitFor(`the policy server at ${apiUrl}/ready (log: ${logFile})`, async () => {
      if (!server.running) throw new Error(`the policy server exited: ${readFileSync(logFile, 'utf8').split('\n').slice(-5).join('\n')}`);
      const res = await fetch(`${apiUrl}/ready`);
      return res.ok;
    }, 60_000);

    const agentState = join(opts.stateDir, 'agent');
    mkdirSync(agentState, { recursive: true, mode: 0o700 });
    const agentLog = join(opts.stateDir, 'logs', 'host-agent.log');
    log(`starting the host agent "${LOCAL_HOST_ID}" on deploy cgroup ${opts.agentCgroup}, fed by the policy server over NATS (log: ${agentLog})`);
    const agent = ManagedProcess.start(
      'host-agent',
      process.execPath,
      [
        CGFENCE_BIN, 'agent',
        '--server', nats.url(),
        '--server-key', join(serverState, 'signing-key.pem.pub'),
        '--nats-seed', hostKey.seedFile,
        '--host-id', LOCAL_HOST_ID,
        '--label', 'cohort=local',
        ...(opts.agentUpstream ? ['--upstream', opts.agentUpstream] : []),
        '--cgroup', opts.agentCgroup,
        '--state-dir', agentState,
        '--host', LOCAL_HOST_ID,
      ],
      agentLog,
    );
    // Stopping the fleet returns the host to its state before: detach, unpin, remove the cgroup.
    stops.push(async () => {
      await agent.stop();
      spawnSync(process.execPath, [CGFENCE_BIN, 'agent', 'teardown', '--cgroup', opts.agentCgroup, '--state-dir', agentState], { stdio: 'ignore' });
    });
    await waitFor(`the host agent (log: ${agentLog})`, async () => {
      if (!agent.running) throw new Error(`the host agent exited: ${readFileSync(agentLog, 'utf8').split('\n').slice(-5).join('\n')}`);
      return existsSync(join(agentState, 'agent.sock'));
    }, 30_000);
    return { apiUrl, tokenFile: join(serverState, 'admin-token'), agentStateDir: agentState, agentHostId: LOCAL_HOST_ID, natsAuthDir, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
