// The server side of fleet distribution, with a real PostgreSQL and a real
// nats-server: assigning a version publishes a signed desired-state document
// through the outbox; agents register, sync, fetch chunks and report over
// NestJS's NATS transport (spoken here the way the agent speaks it).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createPublicKey, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, NatsConnection } from '@nats-io/transport-node';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { NatsServer, waitFor } from '@cgfence/devservices';
import {
  BundleHeader,
  checkBundle,
  checkContent,
  checkDesired,
  ChunkReply,
  decodeTransfer,
  DesiredDocument,
  DesiredMessage,
  FLEET_STREAM,
  FLEET_SUBJECTS,
  HostReport,
  HostView,
  keyIdOf,
  nestRequest,
  nestResponse,
  parsePublicKeys,
  RegisterReply,
  SyncReply,
} from '@cgfence/proto';
import { TestPolicyServer } from '../testing/test-server';

const auth = (t: string) => ({ Authorization: `Bearer ${t}` });

describe('fleet distribution (server side)', () => {
  let dir: string;
  let nats: NatsServer;
  let env: TestPolicyServer;
  let operator: string;
  let nc: NatsConnection;
  let ring: ReturnType<typeof parsePublicKeys>;
  const broadcasts: DesiredMessage[] = [];

  const request = async <T>(subject: string, data: unknown): Promise<T> =>
    nestResponse<T>((await nc.request(subject, nestRequest(subject, data, String(Math.random())), { timeout: 5000 })).data);

  const commit = async (name: string, entries: string[]) => {
    const res = await env.http.post(`/blocklists/${name}/versions`).set(auth(operator)).send({ entries, message: 'test' });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    return res.body as { version: { version: number; contentHash: string } };
  };

  const open = (m: DesiredMessage): DesiredDocument => {
    const d = checkDesired(m.desired, ring, new Date(), null);
    assert.ok(d.ok, d.ok ? '' : d.message);
    return d.value;
  };

  const header = (d: DesiredDocument): BundleHeader => {
    const h = checkBundle(d.baseline, ring, new Date(), null, null);
    assert.ok(h.ok, h.ok ? '' : h.message);
    return h.value;
  };

  const waitForRevision = async (revision: number): Promise<DesiredMessage> => {
    let found: DesiredMessage | undefined;
    await waitFor(`the broadcast of revision ${revision}`, async () => {
      found = broadcasts.find((m) => open(m).revision === revision);
      return found !== undefined;
    }, 10_000);
    return found!;
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'cgfence-fleet-int-'));
    nats = await NatsServer.start({ dir: join(dir, 'nats') });
    env = await TestPolicyServer.start('fleet_int', { natsUrl: nats.url() });
    operator = await env.tokenFor('operator');
    nc = await connect({ servers: nats.url() });
    nc.subscribe(FLEET_SUBJECTS.desired, { callback: (_err, msg) => void broadcasts.push(msg.json<DesiredMessage>()) });
    const key = await env.http.get('/fleet/signing-key');
    assert.equal(key.status, 200);
    ring = parsePublicKeys(key.body.publicKeyPem);
    assert.equal(keyIdOf(createPublicKey(key.body.publicKeyPem)), key.body.keyId);
    await env.http.post('/blocklists').set(auth(operator)).send({ name: 'core' }).expect(201);
    await waitFor('the server to be ready with NATS', async () => (await env.http.get('/ready')).body.nats === 'connected');
  });

  after(async () => {
    try {
      await nc?.close();
      await env?.stop();
    } finally {
      await nats?.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('publishes nothing on commit; assigning a baseline publishes a signed document with the bundle', async () => {
    const v1 = await commit('core', ['github.com', '*.npmjs.org', '10.0.0.0/8']);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(broadcasts.length, 0, 'a commit alone changes no host');

    const res = await env.http.post('/blocklists/core/assign').set(auth(operator)).send({ version: 1 });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(res.body.baseline.version, 1);
    const msg = await waitForRevision(res.body.revision);
    const doc = open(msg);
    const h = header(doc);
    assert.equal(h.version, 1);
    assert.equal(h.hash, v1.version.contentHash);
    assert.equal(h.entries, 3);
    assert.equal(h.encoding, 'gzip');
    const decoded = decodeTransfer(h, Buffer.from(msg.inline[h.hash]!, 'base64'));
    assert.ok(decoded.ok);
    const content = checkContent(h, decoded.value);
    assert.ok(content.ok);
    assert.match(content.value, /\*\.npmjs\.org/);
  });

  it('registers a host, answers sync by revision, and shows desired vs applied from its reports', async () => {
    const info = { hostId: 'host-a', hostname: 'a.example', labels: { cohort: 'canary' }, kernel: '6.1', agentVersion: '0.1.0', capabilities: ['dns', 'ip'] };
    const reg = await request<RegisterReply>(FLEET_SUBJECTS.register('host-a'), info);
    assert.ok(reg.message);
    const doc = open(reg.message);
    const h = header(doc);

    const behind = await request<SyncReply>(FLEET_SUBJECTS.sync('host-a'), { hostId: 'host-a', seenRevision: doc.revision - 1 });
    assert.equal(open(behind.message!).revision, doc.revision);
    const current = await request<SyncReply>(FLEET_SUBJECTS.sync('host-a'), { hostId: 'host-a', seenRevision: doc.revision });
    assert.equal(current.message, null);
    assert.equal(current.revision, doc.revision);

    let host = (await env.http.get('/hosts/host-a').set(auth(operator))).body as HostView;
    assert.equal(host.cohort, 'canary');
    assert.equal(host.desired?.version, 1);
    assert.equal(host.applied, null);
    assert.equal(host.inSync, false);

    const report: HostReport = {
      hostId: 'host-a',
      seenRevision: doc.revision,
      applied: { revision: doc.revision, blocklistId: 'core', name: 'core', version: 1, hash: h.hash, appliedAt: new Date().toISOString() },
      lastError: null,
      mode: 'enforce',
      failMode: 'open',
      health: { proxy: true, kernel: true },
      drift: { drifted: false, checkedAt: new Date().toISOString() },
      sentAt: new Date().toISOString(),
    };
    nc.publish(FLEET_SUBJECTS.report('host-a'), nestRequest(FLEET_SUBJECTS.report('host-a'), report));
    await waitFor('the report to land', async () => {
      host = (await env.http.get('/hosts/host-a').set(auth(operator))).body as HostView;
      return host.inSync;
    });
    assert.equal((host as HostView).applied?.version, 1);
    assert.equal(host.stale, false);
    assert.equal(host.mode, 'enforce');

    const list = await env.http.get('/hosts?cohort=canary').set(auth(operator));
    assert.deepEqual(list.body.map((x: HostView) => x.hostId), ['host-a']);
    assert.equal((await env.http.get('/hosts?cohort=other').set(auth(operator))).body.length, 0);
    assert.equal((await env.http.get('/hosts?stale=true').set(auth(operator))).body.length, 0);

    // Registration and applied versions are events on the host's stream.
    const audit = await env.http.get('/audit?stream=host-host-a').set(auth(await env.tokenFor('admin')));
    assert.equal(audit.status, 200, JSON.stringify(audit.body));
    const types = (audit.body.records as { type: string }[]).map((e) => e.type);
    assert.ok(types.includes('HostRegistered') && types.includes('PolicyApplied'), JSON.stringify(types));
  });

  it('refuses a message whose body names another host than its subject', async () => {
    await assert.rejects(
      request(FLEET_SUBJECTS.sync('host-a'), { hostId: 'host-b', seenRevision: null }),
      /names host host-b but came from host-a/,
    );
  });

  it('serves a large bundle in chunks that reassemble to the signed hash', async () => {
    await env.http.post('/blocklists').set(auth(operator)).send({ name: 'big' }).expect(201);
    // Random labels, so even gzipped the content needs several 512 KiB chunks.
    const entries = Array.from({ length: 120_000 }, () => `${randomBytes(8).toString('hex')}.big.example`);
    await commit('big', entries);
    const res = await env.http.post('/blocklists/big/assign').set(auth(operator)).send({ version: 1 });
    const msg = await waitForRevision(res.body.revision);
    const h = header(open(msg));
    assert.ok(h.chunks >= 2, `expected several chunks, got ${h.chunks} for ${h.bytes} bytes`);
    assert.equal(msg.inline[h.hash], undefined, 'large content is not inlined');
    const parts: Buffer[] = [];
    for (let i = 0; i < h.chunks; i++) {
      const c = await request<ChunkReply>(FLEET_SUBJECTS.bundle('host-a'), { hash: h.hash, index: i });
      parts.push(Buffer.from(c.data, 'base64'));
    }
    const decoded = decodeTransfer(h, Buffer.concat(parts));
    assert.ok(decoded.ok, decoded.ok ? '' : decoded.message);
    const content = checkContent(h, decoded.value);
    assert.ok(content.ok, content.ok ? '' : content.message);
    await assert.rejects(request(FLEET_SUBJECTS.bundle('host-a'), { hash: h.hash, index: h.chunks }), /does not exist/);
  });

  it('needs an explicit rollback to go back, and then signs a rollback order', async () => {
    await commit('core', ['github.com']);
    await env.http.post('/blocklists/core/assign').set(auth(operator)).send({ version: 2 }).expect(200);
    const refused = await env.http.post('/blocklists/core/assign').set(auth(operator)).send({ version: 1 });
    assert.equal(refused.status, 409);
    assert.equal(refused.body.code, 'fleet.rollback_required');
    const ok = await env.http.post('/blocklists/core/assign').set(auth(operator)).send({ version: 1, rollback: true });
    assert.equal(ok.status, 200);
    const doc = open(await waitForRevision(ok.body.revision));
    assert.deepEqual(doc.rollback, { blocklistId: 'core', toVersion: 1 });
    const missing = await env.http.post('/blocklists/core/assign').set(auth(operator)).send({ version: 99 });
    assert.equal(missing.status, 404);
  });

  it('turns audit mode on and off for the fleet and for a cohort', async () => {
    const on = await env.http.post('/fleet/audit-mode').set(auth(operator)).send({ on: true, cohort: 'canary' });
    assert.equal(on.status, 200);
    let doc = open(await waitForRevision(on.body.revision));
    assert.deepEqual(doc.audit, { fleet: false, cohorts: ['canary'] });
    assert.equal(((await env.http.get('/hosts/host-a').set(auth(operator))).body as HostView).desired?.mode, 'audit');

    const kill = await env.http.post('/fleet/audit-mode').set(auth(operator)).send({ on: true });
    doc = open(await waitForRevision(kill.body.revision));
    assert.equal(doc.audit.fleet, true);
    const off = await env.http.post('/fleet/audit-mode').set(auth(operator)).send({ on: false });
    doc = open(await waitForRevision(off.body.revision));
    assert.equal(doc.audit.fleet, false);
    await env.http.post('/fleet/audit-mode').set(auth(operator)).send({ on: false, cohort: 'canary' }).expect(200);

    const viewer = await env.tokenFor('viewer');
    assert.equal((await env.http.post('/fleet/audit-mode').set(auth(viewer)).send({ on: true })).status, 403);
  });

  it('loses nothing when NATS is down at commit time and the server dies before publishing; publishes once', async () => {
    await nats.stop();
    const res = await env.http.post('/blocklists/core/assign').set(auth(operator)).send({ version: 2 });
    assert.equal(res.status, 200, 'the API works without NATS; the change waits in the outbox');
    const revision = res.body.revision as number;
    assert.ok((await env.http.get('/ready')).body.outboxPending >= 1);
    await env.server.close(); // the process dies before its relay could publish
    await nats.restart();
    await env.restart();
    // Read what reached JetStream (a plain subscriber that was itself
    // reconnecting may miss the moment; agents re-sync on reconnect for that).
    const fresh = await connect({ servers: nats.url() });
    const jsm = await jetstreamManager(fresh);
    await waitFor('the outbox to drain', async () => (await env.http.get('/ready')).body.outboxPending === 0, 15_000);
    const stored = await jsm.streams.getMessage(FLEET_STREAM.name, { last_by_subj: FLEET_SUBJECTS.desired });
    assert.ok(stored);
    assert.equal(open(stored.json<DesiredMessage>()).revision, revision);
    // Publishing the same outbox row again (a relay that died after publish, before marking it) changes nothing.
    const again = await jetstream(fresh).publish(FLEET_SUBJECTS.desired, stored.data, { msgID: `desired-${revision}` });
    assert.equal(again.duplicate, true);
    await fresh.close();
  });

  it('runs as two replicas: each change is published once, each request answered once', async () => {
    const second = await env.replica();
    try {
      const jsm = await jetstreamManager(nc);
      const before = (await jsm.streams.info(FLEET_STREAM.name)).state.messages;
      const seen = broadcasts.length;
      await env.http.post('/fleet/audit-mode').set(auth(operator)).send({ on: true, cohort: 'two-replicas' }).expect(200);
      const res = await env.http.post('/fleet/audit-mode').set(auth(operator)).send({ on: false, cohort: 'two-replicas' });
      await waitForRevision(res.body.revision);
      await new Promise((r) => setTimeout(r, 500));
      const after = (await jsm.streams.info(FLEET_STREAM.name)).state.messages;
      assert.equal(after - before, 2, 'two changes, two stored messages');
      assert.equal(broadcasts.length - seen, 2, 'and two broadcasts, not four');
      const replies: unknown[] = [];
      const inbox = `_INBOX.replicas.${Date.now()}`;
      const sub = nc.subscribe(inbox, { callback: (_e, m) => void replies.push(m.data) });
      nc.publish(FLEET_SUBJECTS.sync('host-a'), nestRequest(FLEET_SUBJECTS.sync('host-a'), { hostId: 'host-a', seenRevision: null }, 'x'), { reply: inbox });
      await new Promise((r) => setTimeout(r, 800));
      sub.unsubscribe();
      assert.equal(replies.length, 1, 'the queue group gives each request to one replica');
    } finally {
      await second.close();
    }
  });
});
