// A NATS node lost while a rollout stage is being delivered and confirmed
// (issue 17), the cheaper harness for fleet-cluster-rollout.e2e: a real
// three-node nats-server cluster (TLS, JWT with a full resolver), the real
// policy server (a child process, on PostgreSQL), and three FleetClients (the
// agent's fleet link: register, broadcast, 1 s syncs, 500 ms reports) with
// recording sinks. A node is SIGKILLed the moment stage 2 starts (its
// broadcast and the agents' syncs in flight): the one the prod agents use,
// the one the server's request connection uses, the events stream leader
// while the hosts publish events; brought back 3 s later or at once (while
// the clients reconnect). Every stage must still be applied and confirmed.
// Last, the node of the server's JetStream connection: a host that never
// syncs must still get the broadcast, and the streams must keep three
// replicas (the server used to scale them to two on reconnecting then).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { Logger } from '@nestjs/common';
import { createTestCa, freePort, issueCert, ManagedProcess, NatsCluster, PostgresServer, startPolicyServer, waitFor } from '@cgfence/devservices';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { formatCreds, initJwtAuth, natsConnectOptions, newUserKey, renderResolverConfig } from '@cgfence/nats-auth';
import { EVENT_SUBJECTS, EVENTS_STREAM, FLEET_STREAM, parsePublicKeys, type BlockEvent, type EnrollResponse, type HostView, type RolloutView } from '@cgfence/proto';
import { EventIdGenerator } from '../journal/event-id';
import { FleetClient } from './fleet-client';
import { receiveBroadcasts, RecordingSink } from './testing/fleet-fixtures';

const POLICY_SERVER = join(__dirname, '..', '..', '..', '..', 'policy-server', 'dist', 'src', 'main.js');
const logger = pino({ level: process.env.CGFENCE_TEST_LOG ?? 'silent' });
// NestJS's NATS client logs every status change of the agents' connections to stdout: the fleet log says what matters.
if (!process.env.CGFENCE_TEST_LOG) Logger.overrideLogger(false);

interface Host {
  id: string;
  cohort: string;
  fc: FleetClient;
  sink: RecordingSink;
  transport: ReturnType<typeof receiveBroadcasts>;
}

describe('a rollout stage delivered while a NATS node is lost', () => {
  let dir: string;
  let cluster: NatsCluster;
  let pg: PostgresServer;
  let server: ManagedProcess | undefined;
  let api: string;
  let admin: string;
  let monitorPorts: number[];
  let caFile: string;
  let serverCreds: string;
  const credsOf = new Map<string, string>();
  const hosts: Host[] = [];
  let version = 1;

  const call = async <T>(method: string, path: string, body?: unknown): Promise<T> => {
    const res = await fetch(`${api}/${path}`, {
      method,
      headers: { Authorization: `Bearer ${admin}`, 'Content-Type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    assert.ok(res.status < 300, `${method} ${path}: ${res.status} ${text}`);
    return (text ? JSON.parse(text) : undefined) as T;
  };

  /** Which node (index) the client connection named like `name` is on, from the nodes' monitoring endpoints (connz). */
  const nodeOf = async (name: RegExp): Promise<number> => {
    for (let i = 0; i < cluster.nodes.length; i++) {
      const res = await fetch(`http://127.0.0.1:${monitorPorts[i]}/connz?limit=1000`).catch(() => undefined);
      if (!res?.ok) continue;
      const connz = (await res.json()) as { connections?: { name?: string }[] };
      if ((connz.connections ?? []).some((c) => name.test(c.name ?? ''))) return i;
    }
    return -1;
  };
  const AGENT_PROD_1 = /^cgfence-agent-prod-1$/;
  /** The server's connection for the agents' requests (NestJS's NATS transport), and its JetStream connection (the outbox). */
  const SERVER_RPC = /^cgfence-policy-server-rpc-\d+$/;
  const SERVER_JETSTREAM = /^cgfence-policy-server-\d+$/;

  /** A JetStream API call as the server's user, asked again while the cluster has no JetStream leader (just after a node loss). */
  const withJsm = async <T>(what: string, fn: (jsm: Awaited<ReturnType<typeof jetstreamManager>>) => Promise<T>): Promise<T> => {
    const nc = await connect({ servers: cluster.urls(), ...natsConnectOptions({ credsFile: serverCreds, caFile }) });
    try {
      let out: T | undefined;
      await waitFor(what, async () => {
        try {
          out = await fn(await jetstreamManager(nc, { timeout: 2000 }));
          return true;
        } catch {
          return false;
        }
      }, 60_000, 250);
      return out!;
    } finally {
      await nc.close();
    }
  };

  const diagnostics = async (): Promise<string> => {
    const view = await call<HostView[]>('GET', 'hosts').catch((e: Error) => e.message);
    const agents = hosts.map((h) => ({ id: h.id, fleet: h.fc.status(), server: h.fc.natsConnection()?.getServer() ?? null }));
    return `agents: ${JSON.stringify(agents)}\nhosts: ${JSON.stringify(view)}\nserver log:\n${readFileSync(join(dir, 'server.log'), 'utf8').slice(-4000)}`;
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'cgfence-node-loss-'));
    monitorPorts = [await freePort(), await freePort(), await freePort()];
    // As deployed: TLS on clients and routes, JWT authorization with a full resolver on every node.
    const ca = createTestCa(join(dir, 'ca'));
    const cert = issueCert(ca, 'nats', ['localhost', '127.0.0.1']);
    const jwtDir = join(dir, 'jwt');
    const init = await initJwtAuth(jwtDir);
    caFile = ca.caFile;
    serverCreds = init.serverCredsFile;
    cluster = await NatsCluster.start({
      dir: join(dir, 'nats'),
      tls: { ...cert, caFile: ca.caFile },
      extraConfig: (i, nodeDir) => `${renderResolverConfig(jwtDir, join(nodeDir, 'resolver'))}\nhttp_port: ${monitorPorts[i]}`,
    });
    pg = await PostgresServer.start({ dir: join(dir, 'pg'), fast: true });
    const port = await freePort();
    api = `http://127.0.0.1:${port}`;
    server = await startPolicyServer({
      main: POLICY_SERVER,
      port,
      nats: true,
      log: join(dir, 'server.log'),
      env: {
        ...process.env,
        CGFENCE_DATABASE_URL: await pg.createDatabase('node_loss'),
        CGFENCE_HTTP_HOST: '127.0.0.1',
        CGFENCE_STATE_DIR: join(dir, 'server'),
        CGFENCE_NATS_URL: cluster.urls().join(','),
        CGFENCE_NATS_CREDS: init.serverCredsFile,
        CGFENCE_NATS_CA: ca.caFile,
        CGFENCE_NATS_JWT_DIR: jwtDir,
        CGFENCE_LOG_LEVEL: process.env.CGFENCE_TEST_LOG ?? 'warn',
      },
    });
    admin = readFileSync(join(dir, 'server', 'admin-token'), 'utf8').trim();
    const ring = parsePublicKeys((await call<{ publicKeyPem: string }>('GET', 'fleet/signing-key')).publicKeyPem);
    for (const [id, cohort] of [['canary-1', 'canary'], ['prod-1', 'prod'], ['prod-2', 'prod']] as const) {
      const { secret } = await call<{ secret: string }>('POST', 'enroll-tokens', { cohort, uses: 1, ttl: '1h' });
      const key = newUserKey();
      const enrolled = await call<EnrollResponse>('POST', 'enroll', { token: secret, hostId: id, natsPublicKey: key.getPublicKey(), hostname: id });
      const credsFile = join(dir, `${id}.creds`);
      writeFileSync(credsFile, formatCreds(enrolled.natsJwt, key), { mode: 0o600 });
      credsOf.set(id, credsFile);
      const sink = new RecordingSink();
      const fc = new FleetClient({
        servers: enrolled.natsServers,
        credsFile,
        caFile: ca.caFile,
        hostId: id,
        labels: { cohort },
        ring,
        sink,
        stateDir: join(dir, id),
        logger: logger.child({ host: id }),
        syncIntervalMs: 1000,
        reportIntervalMs: 500,
      });
      const transport = receiveBroadcasts(fc);
      fc.start();
      hosts.push({ id, cohort, fc, sink, transport });
    }
    await waitFor('every host registered', async () => (await call<HostView[]>('GET', 'hosts')).length === 3, 30_000);
    await call('POST', 'blocklists', { name: 'deploy' });
    await call('POST', 'blocklists/deploy/versions', { entries: ['v1.test'], message: 'v1' });
    await call('POST', 'blocklists/deploy/assign', { version: 1 });
    await waitFor('every host to confirm v1', async () => (await call<HostView[]>('GET', 'hosts')).every((h) => h.applied?.version === 1 && h.inSync), 30_000);
  });

  after(async () => {
    for (const h of hosts) {
      h.transport.close();
      await h.fc.stop();
    }
    await server?.stop();
    await cluster?.stop();
    await pg?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  /**
   * Rolls the next version out in two stages (canary, then everyone); when
   * stage 2 starts, kills the node `victim` names, brings it back `downMs`
   * later, and expects the rollout to complete and every host to confirm.
   */
  async function rolloutLosing(victim: () => Promise<number>, downMs: number, during?: () => Promise<void>): Promise<string> {
    const v = ++version;
    await call('POST', 'blocklists/deploy/versions', { entries: Array.from({ length: v }, (_x, i) => `v${i + 1}.test`), message: `v${v}` });
    const { id } = await call<{ id: string }>('POST', 'rollouts', {
      blocklist: 'deploy',
      version: v,
      stages: [
        { name: 'canary', select: { labels: { cohort: 'canary' } }, soak: '1s', gates: { convergenceTimeout: '5m' } },
        { name: 'everyone', select: { percent: 100 }, soak: '1s', gates: { convergenceTimeout: '5m' } },
      ],
    });
    await during?.();
    await waitFor('stage 2 to start', async () => (await call<RolloutView>('GET', `rollouts/${id}`)).currentStage >= 1, 60_000, 20);
    const node = await victim();
    assert.ok(node >= 0, 'the victim node was found');
    await cluster.nodes[node]!.kill();
    await new Promise((r) => setTimeout(r, downMs));
    await cluster.nodes[node]!.start();
    await waitFor(`rollout ${id} of v${v} to complete after n${node} was lost`, async () => {
      const r = await call<RolloutView>('GET', `rollouts/${id}`);
      if (r.status !== 'running') assert.equal(r.status, 'completed', JSON.stringify(r));
      return r.status === 'completed';
    }, 60_000).catch(async (err: Error) => {
      throw new Error(`${err.message}\n${await diagnostics()}`);
    });
    await waitFor(`every host to confirm v${v}`, async () => (await call<HostView[]>('GET', 'hosts')).every((h) => h.applied?.version === v && h.inSync), 30_000);
    for (const h of hosts) assert.equal(h.sink.current?.meta.version, v, h.id);
    return `n${node}`;
  }

  it('completes when the node the prod agents are connected to dies as stage 2 starts (back 3 s later)', { timeout: 180_000 }, async () => {
    await rolloutLosing(() => nodeOf(AGENT_PROD_1), 3000);
  });

  it('completes when that node is back at once, while the agents reconnect', { timeout: 180_000 }, async () => {
    await rolloutLosing(() => nodeOf(AGENT_PROD_1), 0);
  });

  it("completes when the node of the server's request connection dies as stage 2 starts (back 3 s later, and at once)", { timeout: 180_000 }, async () => {
    await rolloutLosing(() => nodeOf(SERVER_RPC), 3000);
    await rolloutLosing(() => nodeOf(SERVER_RPC), 0);
  });

  it('completes when the events stream leader dies as stage 2 starts while the hosts publish block events', { timeout: 300_000 }, async () => {
    const TOTAL = 30_000;
    const ids = new EventIdGenerator();
    const publishers: NatsConnection[] = [];
    let stop = false;
    let published = 0;
    const publish = async (hostId: string): Promise<void> => {
      const nc = await connect({ servers: cluster.urls(), ...natsConnectOptions({ credsFile: credsOf.get(hostId)!, caFile, hostId }), maxReconnectAttempts: -1, reconnectTimeWait: 200 });
      publishers.push(nc);
      const js = jetstream(nc);
      for (let i = 0; i < TOTAL / 3 && !stop; i += 200) {
        await Promise.all(Array.from({ length: 200 }, async (_x, j) => {
          const e: BlockEvent = {
            id: ids.next(), time: new Date().toISOString(), host: hostId, cohort: null, runId: `bulk-${hostId}`, labels: { repo: 'payments' },
            pid: 1000, comm: 'curl', cmdline: `curl https://svc${j % 20}.example.com/`, uid: 1000, cgroupId: '4242', qname: `svc${j % 20}.example.com`,
            qtype: 'A', entry: '*.example.com', action: 'blocked', method: 'dns', policyVersion: 'deploy v1', policyHash: null, destination: null, message: null,
          };
          for (let attempt = 0; attempt < 600 && !stop; attempt++) {
            try {
              await js.publish(EVENT_SUBJECTS.block(hostId), JSON.stringify(e), { msgID: e.id, timeout: 5000 });
              published++;
              return;
            } catch {
              await new Promise((r) => setTimeout(r, 250));
            }
          }
        }));
      }
    };
    const load = Promise.all(hosts.map((h) => publish(h.id)));
    try {
      await rolloutLosing(async () => {
        const leader = await withJsm('the events stream leader', async (jsm) => (await jsm.streams.info(EVENTS_STREAM.name)).cluster?.leader ?? '');
        return cluster.nodes.findIndex((_n, i) => leader.endsWith(`-n${i}`));
      }, 3000, () => waitFor('some events published', () => published > 3000, 60_000));
    } finally {
      stop = true;
      await load;
      await Promise.all(publishers.map((nc) => nc.close()));
    }
  });

  it("broadcasts to a host that does not sync while the node of the server's JetStream connection is down, and keeps three replicas", { timeout: 180_000 }, async () => {
    const victim = await nodeOf(SERVER_JETSTREAM);
    assert.ok(victim >= 0);
    // A host on another node that never syncs (once an hour): only the broadcast can bring it a new version.
    const other = cluster.nodes.find((_n, i) => i !== victim)!;
    const { secret } = await call<{ secret: string }>('POST', 'enroll-tokens', { cohort: 'watch', uses: 1, ttl: '1h' });
    const key = newUserKey();
    const enrolled = await call<EnrollResponse>('POST', 'enroll', { token: secret, hostId: 'listener', natsPublicKey: key.getPublicKey(), hostname: 'listener' });
    const credsFile = join(dir, 'listener.creds');
    writeFileSync(credsFile, formatCreds(enrolled.natsJwt, key), { mode: 0o600 });
    const sink = new RecordingSink();
    const ring = parsePublicKeys((await call<{ publicKeyPem: string }>('GET', 'fleet/signing-key')).publicKeyPem);
    const fc = new FleetClient({
      servers: [other.url()], credsFile, caFile, hostId: 'listener', labels: { cohort: 'watch' }, ring, sink,
      stateDir: join(dir, 'listener'), logger, syncIntervalMs: 3_600_000, reportIntervalMs: 500,
    });
    const transport = receiveBroadcasts(fc);
    fc.start();
    try {
      await waitFor('the listener to apply the baseline (at its registration)', () => sink.current !== undefined, 30_000);
      const v = ++version;
      await call('POST', 'blocklists/deploy/versions', { entries: [`v${v}.test`], message: `v${v}` });
      await cluster.nodes[victim]!.kill();
      const killedAt = Date.now();
      await call('POST', 'blocklists/deploy/assign', { version: v });
      await waitFor(`the listener to get v${v} by broadcast with n${victim} down`, () => sink.current?.meta.version === v, 60_000, 50);
      // The server has reconnected and checked its streams again, with the node still down: that two nodes answer
      // is no reason to scale the streams down (the node, back, would hold no replica; the next loss, no quorum).
      await new Promise((r) => setTimeout(r, Math.max(0, killedAt + 15_000 - Date.now())));
      for (const name of [FLEET_STREAM.name, EVENTS_STREAM.name]) {
        assert.equal((await withJsm(name, (jsm) => jsm.streams.info(name))).config.num_replicas, 3, `${name} with n${victim} down`);
      }
    } finally {
      await cluster.nodes[victim]!.start();
      transport.close();
      await fc.stop();
    }
    await waitFor('every host to confirm the new baseline', async () => (await call<HostView[]>('GET', 'hosts')).every((h) => h.applied?.version === version && h.inSync), 60_000);
  });
});
