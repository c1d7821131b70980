import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { createTestCa, issueCert, ManagedProcess, NatsCluster, NatsServer, PostgresServer, waitFor } from '@cgfence/devservices';
import { initJwtAuth, renderResolverConfig } from '@cgfence/nats-auth';
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
  /** nats-server nodes: 1, or a cluster (3) on natsPort, natsPort+1, … */
  natsCluster?: number;
}

export interface LocalFleet {
  apiUrl: string;
  tokenFile: string;
  agentStateDir: string;
  /** The local agent's host id in the fleet. */
  agentHostId: string;
  natsAuthDir: string;
  /** The CA of the local NATS servers' certificates. */
  caFile: string;
  natsUrls: string[];
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

    // As in production: JWT authorization (the agent enrolls with a join
    // token) and TLS with a CA made here (both kept across starts).
    const natsAuthDir = join(opts.stateDir, 'nats-jwt');
    const natsAuth = await initJwtAuth(natsAuthDir);
    const ca = createTestCa(join(opts.stateDir, 'tls'), { name: 'cgfence local fleet CA', days: 365 });
    const cert = existsSync(join(ca.dir, 'nats.pem')) ? { certFile: join(ca.dir, 'nats.pem'), keyFile: join(ca.dir, 'nats-key.pem') } : issueCert(ca, 'nats', ['localhost', '127.0.0.1'], { days: 365 });
    const tls = { ...cert, caFile: ca.caFile };
    const size = opts.natsCluster ?? 1;
    const natsUrls: string[] = [];
    if (size === 1) {
      log(`starting nats-server with JetStream and TLS on 127.0.0.1:${opts.natsPort} (JWT authorization from ${natsAuthDir})`);
      const nats = await NatsServer.start({ dir: join(opts.stateDir, 'nats'), port: opts.natsPort, tls, extraConfig: renderResolverConfig(natsAuthDir, join(opts.stateDir, 'nats', 'resolver')) });
      stops.push(() => nats.stop());
      natsUrls.push(nats.url());
    } else {
      const ports = Array.from({ length: size }, (_, i) => opts.natsPort + i);
      for (const p of ports.slice(1)) await ensurePortFree(p, 'NATS', opts.stateDir);
      log(`starting a ${size}-node nats-server cluster with JetStream and TLS on 127.0.0.1:${ports.join(',')} (JWT authorization from ${natsAuthDir})`);
      const cluster = await NatsCluster.start({
        dir: join(opts.stateDir, `nats-cluster-${size}`),
        size,
        tls,
        clientPorts: ports,
        extraConfig: (_i, nodeDir) => renderResolverConfig(natsAuthDir, join(nodeDir, 'resolver')),
      });
      stops.push(() => cluster.stop());
      natsUrls.push(...cluster.urls());
    }

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
        CGFENCE_NATS_URL: natsUrls.join(','),
        CGFENCE_NATS_CREDS: natsAuth.serverCredsFile,
        CGFENCE_NATS_CA: ca.caFile,
        CGFENCE_NATS_JWT_DIR: natsAuthDir,
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
    // The local agent enrolls like any host: a one-use join token, once (the enrollment is kept in its state dir).
    const tokenFile = join(opts.stateDir, 'agent-enroll-token');
    if (!existsSync(join(agentState, 'fleet', 'enrollment', 'enrollment.json'))) {
      const admin = readFileSync(join(serverState, 'admin-token'), 'utf8').trim();
      const res = await fetch(`${apiUrl}/enroll-tokens`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${admin}`, 'Content-Type': 'application/json' },
        body: JSON.stringify({ cohort: 'local', ttl: '10m', uses: 1, description: 'cgfence local up' }),
      });
      if (!res.ok) throw new CliError(`cannot create the local agent's enrollment token: ${res.status} ${await res.text()}`);
      writeFileSync(tokenFile, `${((await res.json()) as { secret: string }).secret}\n`, { mode: 0o600 });
    }
    const agentLog = join(opts.stateDir, 'logs', 'host-agent.log');
    log(`starting the host agent "${LOCAL_HOST_ID}" on deploy cgroup ${opts.agentCgroup}, fed by the policy server over NATS (log: ${agentLog})`);
    const agent = ManagedProcess.start(
      'host-agent',
      process.execPath,
      [
        CGFENCE_BIN, 'agent',
        '--enroll', apiUrl,
        '--enroll-token-file', tokenFile,
        '--host-id', LOCAL_HOST_ID,
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
    return { apiUrl, tokenFile: join(serverState, 'admin-token'), agentStateDir: agentState, agentHostId: LOCAL_HOST_ID, natsAuthDir, caFile: ca.caFile, natsUrls, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
