// The fleet as it runs in production (issue 17): a three-node nats-server
// cluster on loopback with TLS on client connections and routes, JWT
// authorization (operator mode, full resolver on every node), replicated
// streams, and hosts that enroll themselves with a join token. One node is
// killed with SIGKILL while 100,000 block events are ingested and a new
// version is assigned; nothing is lost and every host still gets the desired
// state. A removed host is disconnected and refused.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from 'pg';
import { AuthorizationError, connect, PermissionViolationError, type NatsConnection, type Status } from '@nats-io/transport-node';
import { jetstream, jetstreamManager, type JetStreamClient } from '@nats-io/jetstream';
import { createTestCa, issueCert, NatsCluster, waitFor } from '@cgfence/devservices';
import { formatCreds, initJwtAuth, natsConnectOptions, newUserKey, renderResolverConfig, type KeyPair } from '@cgfence/nats-auth';
import { EVENT_SUBJECTS, EVENTS_STREAM, FLEET_STREAM, FLEET_SUBJECTS, type EnrollResponse } from '@cgfence/proto';
import { blockEvent } from '../events/test-events';
import { TestPolicyServer } from '../testing/test-server';

const TOTAL = 100_000;
const WINDOW = 400;
const auth = (t: string) => ({ Authorization: `Bearer ${t}` });

interface Host {
  id: string;
  key: KeyPair;
  enrolled: EnrollResponse;
  credsFile: string;
  nc?: NatsConnection;
  statuses: Status[];
}

const isAuthorizationViolation = (err: unknown): boolean =>
  err instanceof AuthorizationError || (err instanceof Error && /authorization violation/i.test(err.message));

describe('the fleet on a three-node NATS cluster with TLS, JWT enrollment and replicated streams', () => {
  let dir: string;
  let cluster: NatsCluster;
  let env: TestPolicyServer;
  let operator: string;
  let db: Client;
  let caFile: string;
  const hosts = new Map<string, Host>();

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'cgfence-cluster-int-'));
    const ca = createTestCa(join(dir, 'ca'));
    caFile = ca.caFile;
    const cert = issueCert(ca, 'nats', ['localhost', '127.0.0.1']);
    const jwtDir = join(dir, 'jwt');
    const init = await initJwtAuth(jwtDir);
    cluster = await NatsCluster.start({
      dir: join(dir, 'nats'),
      tls: { ...cert, caFile },
      extraConfig: (_i, nodeDir) => renderResolverConfig(jwtDir, join(nodeDir, 'resolver')),
    });
    // A deployment from before replication: both streams exist with one replica; the server scales them up on start.
    const pre = await connect({ servers: cluster.urls(), ...natsConnectOptions({ credsFile: init.serverCredsFile, caFile }) });
    const preJsm = await jetstreamManager(pre);
    // A cluster that has just formed may refuse a stream until its JetStream
    // meta group has a leader ("error creating store for stream"): ask again.
    for (const stream of [FLEET_STREAM, EVENTS_STREAM]) {
      await waitFor(`stream ${stream.name} created on the new cluster`, async () => {
        await preJsm.streams.add({ name: stream.name, subjects: [...stream.subjects], num_replicas: 1 });
        return true;
      }, 30_000, 500);
    }
    await pre.close();
    env = await TestPolicyServer.start('cluster_int', {
      natsUrl: cluster.urls().join(','),
      env: { CGFENCE_NATS_CREDS: init.serverCredsFile, CGFENCE_NATS_CA: caFile, CGFENCE_NATS_JWT_DIR: jwtDir },
    });
    operator = await env.tokenFor('operator');
    db = new Client({ connectionString: env.config.databaseUrl });
    await db.connect();
    await waitFor('the server to be ready with NATS', async () => (await env.http.get('/ready')).body.nats === 'connected', 30_000);
  });

  after(async () => {
    try {
      await Promise.allSettled([...hosts.values()].map((h) => h.nc?.close()));
      await db?.end();
      await env?.stop();
    } finally {
      await cluster?.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  const enroll = async (token: string, id: string) => {
    const key = newUserKey();
    const res = await env.http.post('/enroll').send({ token, hostId: id, natsPublicKey: key.getPublicKey(), hostname: id });
    return { res, key };
  };

  const connectHost = async (h: Host): Promise<NatsConnection> => {
    const nc = await connect({
      servers: h.enrolled.natsServers,
      ...natsConnectOptions({ credsFile: h.credsFile, caFile, hostId: h.id }),
      maxReconnectAttempts: -1,
      reconnectTimeWait: 200,
    });
    void (async () => {
      for await (const s of nc.status()) h.statuses.push(s);
    })();
    h.nc = nc;
    return nc;
  };

  it('scales the existing single-replica streams up to three replicas on start', async () => {
    const nc = await connect({ servers: cluster.urls(), ...natsConnectOptions({ credsFile: join(dir, 'jwt', 'server.creds'), caFile }) });
    const jsm = await jetstreamManager(nc);
    for (const name of [FLEET_STREAM.name, EVENTS_STREAM.name]) {
      assert.equal((await jsm.streams.info(name)).config.num_replicas, 3, name);
    }
    await nc.close();
  });

  it('enrolls two hosts with a two-use token (at once), refuses the third; the token records its uses', async () => {
    const created = await env.http.post('/enroll-tokens').set(auth(operator)).send({ cohort: 'web', labels: { dc: 'fra' }, ttl: '1h', uses: 2 });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const token = (created.body as { secret: string }).secret;
    const [a, b] = await Promise.all([enroll(token, 'web-a'), enroll(token, 'web-b')]);
    for (const [id, { res, key }] of [['web-a', a], ['web-b', b]] as const) {
      assert.equal(res.status, 201, JSON.stringify(res.body));
      const enrolled = res.body as EnrollResponse;
      assert.deepEqual(enrolled.labels, { dc: 'fra', cohort: 'web' });
      assert.ok(enrolled.natsCa?.includes('BEGIN CERTIFICATE'));
      assert.ok(enrolled.serverKeys.includes('BEGIN PUBLIC KEY'));
      assert.deepEqual(enrolled.natsServers, cluster.urls());
      const credsFile = join(dir, `${id}.creds`);
      writeFileSync(credsFile, formatCreds(enrolled.natsJwt, key), { mode: 0o600 });
      hosts.set(id, { id, key, enrolled, credsFile, statuses: [] });
    }
    const third = await enroll(token, 'web-c');
    assert.equal(third.res.status, 403, JSON.stringify(third.res.body));
    assert.equal(third.res.body.code, 'enroll.token_refused');
    assert.match(third.res.body.message, /already used 2 of 2/);
    const list = (await env.http.get('/enroll-tokens').set(auth(operator))).body as { id: string; used: number; status: string }[];
    assert.deepEqual(list.map((t) => [t.used, t.status]), [[2, 'exhausted']]);
    // Every use is in the audit trail.
    const uses = (await db.query(`select data->>'hostId' as host from events where event_type = 'EnrollTokenUsed' order by host`)).rows as { host: string }[];
    assert.deepEqual(uses.map((u) => u.host), ['web-a', 'web-b']);
  });

  it('refuses a forged token, a bad body, and a host id that is already enrolled', async () => {
    const forged = await enroll(`cgfe_enr_0000000000000000_${'A'.repeat(43)}`, 'web-x');
    assert.equal(forged.res.status, 403);
    const bad = await env.http.post('/enroll').send({ token: 'x', hostId: 'Web.1', natsPublicKey: 'nope' });
    assert.equal(bad.status, 400, JSON.stringify(bad.body));
    const fresh = (await env.http.post('/enroll-tokens').set(auth(operator)).send({ uses: 5 })).body as { token: { id: string }; secret: string };
    const again = await enroll(fresh.secret, 'web-a');
    assert.equal(again.res.status, 409, JSON.stringify(again.res.body));
    assert.equal(again.res.body.code, 'enroll.host_exists');
    // A revoked token is refused; only an operator may create or list tokens.
    assert.equal((await env.http.delete(`/enroll-tokens/${fresh.token.id}`).set(auth(operator))).status, 204);
    assert.equal((await enroll(fresh.secret, 'web-y')).res.status, 403);
    const viewer = await env.tokenFor('viewer');
    assert.equal((await env.http.post('/enroll-tokens').set(auth(viewer)).send({})).status, 403);
    assert.equal((await env.http.get('/enroll-tokens')).status, 401);
  });

  it('an enrolled host reaches only its own subjects over TLS', async () => {
    const a = hosts.get('web-a')!;
    const nc = await connectHost(a);
    nc.publish(FLEET_SUBJECTS.report('web-b'), 'pretending to be b');
    await nc.flush();
    await waitFor('the permissions violation', () =>
      a.statuses.some((s) => s.type === 'error' && s.error instanceof PermissionViolationError && s.error.subject === FLEET_SUBJECTS.report('web-b')), 5000, 20);
    await assert.rejects(jetstream(nc).publish(EVENT_SUBJECTS.block('web-b'), '{}', { timeout: 3000 }));
    await connectHost(hosts.get('web-b')!);
  });

  it('ingests 100,000 events exactly once and delivers the desired state while a NATS node is SIGKILLed and brought back', { timeout: 300_000 }, async () => {
    const desiredSeen = new Map<string, number>();
    for (const h of hosts.values()) {
      desiredSeen.set(h.id, 0);
      h.nc!.subscribe(FLEET_SUBJECTS.desired, { callback: () => void desiredSeen.set(h.id, desiredSeen.get(h.id)! + 1) });
      await h.nc!.flush();
    }
    const sent = new Set<string>();
    let published = 0;
    const publishWithRetry = async (js: JetStreamClient, subject: string, payload: string, msgID: string): Promise<void> => {
      for (let attempt = 0; ; attempt++) {
        try {
          await js.publish(subject, payload, { msgID, timeout: 5000 });
          return;
        } catch (err) {
          if (attempt > 200) throw err;
          await new Promise((r) => setTimeout(r, 250));
        }
      }
    };
    const agent = async (h: Host, share: number): Promise<void> => {
      const js = jetstream(h.nc!);
      const base = Date.now() - 3_600_000;
      for (let i = 0; i < share; i += WINDOW) {
        const batch: Promise<void>[] = [];
        for (let j = i; j < Math.min(share, i + WINDOW); j++) {
          const e = blockEvent(h.id, j, base + j * 10, { cohort: 'web' });
          sent.add(e.id);
          batch.push(publishWithRetry(js, EVENT_SUBJECTS.block(h.id), JSON.stringify(e), e.id));
        }
        await Promise.all(batch);
        published += batch.length;
      }
    };
    let killed = false;
    const chaos = (async () => {
      await waitFor('a third published', () => published >= TOTAL / 3, 120_000);
      await cluster.nodes[1]!.kill();
      killed = true;
      // With a node gone: a new version is assigned and reaches every host.
      assert.equal((await env.http.post('/blocklists').set(auth(operator)).send({ name: 'core' })).status, 201);
      const commit = await env.http.post('/blocklists/core/versions').set(auth(operator)).send({ entries: ['evil.example'], message: 'during the outage' });
      assert.equal(commit.status, 201, JSON.stringify(commit.body));
      const assigned = await env.http.post('/blocklists/core/assign').set(auth(operator)).send({ version: 1 });
      assert.equal(assigned.status, 200, JSON.stringify(assigned.body));
      await waitFor('the desired state at every host', () => [...desiredSeen.values()].every((n) => n > 0), 30_000);
      await waitFor('two thirds published', () => published >= (2 * TOTAL) / 3, 120_000);
      await cluster.nodes[1]!.start();
    })();
    const list = [...hosts.values()];
    await Promise.all([...list.map((h) => agent(h, TOTAL / list.length)), chaos]);
    assert.ok(killed);
    assert.equal(sent.size, TOTAL);
    const count = async () => (await db.query(`select count(*)::int as n, count(distinct id)::int as d from block_events`)).rows[0] as { n: number; d: number };
    await waitFor(`${TOTAL} events stored`, async () => (await count()).n >= TOTAL, 180_000);
    await new Promise((r) => setTimeout(r, 1500));
    assert.deepEqual(await count(), { n: TOTAL, d: TOTAL });
    // The brought-back node serves again: a host connected to it alone gets the stream's messages.
    const only = await connect({ servers: cluster.nodes[1]!.url(), ...natsConnectOptions({ credsFile: join(dir, 'jwt', 'server.creds'), caFile }) });
    const info = await (await jetstreamManager(only)).streams.info(EVENTS_STREAM.name);
    assert.equal(info.config.num_replicas, 3);
    await only.close();
  });

  it('removing a host disconnects it within seconds, on every node, and refuses it after', async () => {
    const b = hosts.get('web-b')!;
    const started = Date.now();
    const res = await env.http.delete('/hosts/web-b').set(auth(operator));
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.deepEqual(res.body.revokedKeys, [b.key.getPublicKey()]);
    await b.nc!.closed();
    assert.ok(Date.now() - started < 5000, `disconnected in ${Date.now() - started} ms`);
    for (const url of cluster.urls()) {
      await assert.rejects(connect({ servers: url, ...natsConnectOptions({ credsFile: b.credsFile, caFile, hostId: 'web-b' }), maxReconnectAttempts: 0 }), isAuthorizationViolation, url);
    }
    // a is untouched; removing again pushes the same revocation and succeeds.
    assert.equal(hosts.get('web-a')!.nc!.isClosed(), false);
    assert.equal((await env.http.delete('/hosts/web-b').set(auth(operator))).status, 200);
    assert.equal((await env.http.delete('/hosts/nobody').set(auth(operator))).status, 404);
  });
});
