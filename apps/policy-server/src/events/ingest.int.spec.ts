// Lossless ingestion: simulated agents publish 100,000 block events (some on
// purpose twice, with the same and with a new message id) through JetStream
// while the policy server restarts and nats-server restarts; afterwards every
// distinct event is stored exactly once.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from 'pg';
import { connect, NatsConnection } from '@nats-io/transport-node';
import { jetstream, JetStreamClient } from '@nats-io/jetstream';
import { NatsServer, waitFor } from '@cgfence/devservices';
import { EVENT_SUBJECTS, RunSummary } from '@cgfence/proto';
import { TestPolicyServer } from '../testing/test-server';
import { blockEvent } from './test-events';

const TOTAL = 100_000;
const AGENTS = 4;
const WINDOW = 400;

describe('block event ingestion (JetStream → PostgreSQL)', () => {
  let dir: string;
  let nats: NatsServer;
  let env: TestPolicyServer;
  let db: Client;
  let viewer: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'cgfence-ingest-int-'));
    nats = await NatsServer.start({ dir: join(dir, 'nats') });
    env = await TestPolicyServer.start('ingest_int', { natsUrl: nats.url() });
    viewer = await env.tokenFor('viewer');
    db = new Client({ connectionString: env.config.databaseUrl });
    await db.connect();
    await waitFor('the server to be ready with NATS', async () => (await env.http.get('/ready')).body.nats === 'connected', 20_000);
  });

  after(async () => {
    try {
      await db?.end();
      await env?.stop();
    } finally {
      await nats?.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  const count = async (): Promise<{ n: number; d: number }> =>
    (await db.query(`select count(*)::int as n, count(distinct id)::int as d from block_events`)).rows[0] as { n: number; d: number };

  it('stores every distinct event exactly once across server and nats-server restarts', { timeout: 300_000 }, async () => {
    const conns: NatsConnection[] = [];
    const sent = new Set<string>();
    let published = 0;
    let phase = 0;
    // Each agent publishes its share in windows; a failed publish (server
    // restarting) is retried until JetStream acks it, as the agent's journal does.
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
    const agent = async (a: number): Promise<void> => {
      const nc = await connect({ servers: nats.url(), maxReconnectAttempts: -1, reconnectTimeWait: 200 });
      conns.push(nc);
      const js = jetstream(nc);
      const host = `host-${a}`;
      const per = TOTAL / AGENTS;
      const base = Date.now() - 3_600_000;
      for (let i = 0; i < per; i += WINDOW) {
        const batch: Promise<void>[] = [];
        for (let j = i; j < Math.min(per, i + WINDOW); j++) {
          const e = blockEvent(host, j, base + j * 10 + a);
          sent.add(e.id);
          const payload = JSON.stringify(e);
          batch.push(publishWithRetry(js, EVENT_SUBJECTS.block(host), payload, e.id));
          // 1 in 50 again with the same message id (dropped by JetStream),
          // 1 in 50 with another message id (a journal replayed after the duplicate window: dropped by the table key).
          if (j % 50 === 7) batch.push(publishWithRetry(js, EVENT_SUBJECTS.block(host), payload, e.id));
          if (j % 50 === 13) batch.push(publishWithRetry(js, EVENT_SUBJECTS.block(host), payload, `${e.id}-replay`));
        }
        await Promise.all(batch);
        published += batch.length;
      }
    };
    const chaos = (async () => {
      await waitFor('a third published', async () => published >= TOTAL / 3, 120_000);
      phase = 1;
      await env.restart();
      await waitFor('a second third published', async () => published >= (2 * TOTAL) / 3, 120_000);
      phase = 2;
      await nats.restart();
    })();
    await Promise.all([...Array.from({ length: AGENTS }, (_, a) => agent(a)), chaos]);
    assert.equal(phase, 2);
    assert.equal(sent.size, TOTAL);
    await waitFor(`${TOTAL} events stored`, async () => (await count()).n >= TOTAL, 180_000);
    // Anything still redelivered after the ack wait must change nothing.
    await new Promise((r) => setTimeout(r, 1500));
    const c = await count();
    assert.equal(c.n, TOTAL);
    assert.equal(c.d, TOTAL);
    const ids = new Set(((await db.query(`select id::text from block_events`)).rows as { id: string }[]).map((r) => r.id));
    for (const id of sent) assert.ok(ids.has(id), `event ${id} missing`);
    // The hourly rollup counted each stored event once.
    const rollup = (await db.query(`select sum(n)::int as n from block_event_counts`)).rows[0] as { n: number };
    assert.equal(rollup.n, TOTAL);
    await Promise.all(conns.map((nc) => nc.close()));
  });

  it('acks malformed and forged messages without storing them, and keeps ingesting after them', async () => {
    const nc = await connect({ servers: nats.url() });
    const js = jetstream(nc);
    const before = (await count()).n;
    await js.publish(EVENT_SUBJECTS.block('host-x'), 'not json', { msgID: 'poison-1' });
    await js.publish(EVENT_SUBJECTS.block('host-x'), JSON.stringify({ id: 'x' }), { msgID: 'poison-2' });
    const forged = blockEvent('host-victim', 1, Date.now());
    await js.publish(EVENT_SUBJECTS.block('host-x'), JSON.stringify(forged), { msgID: forged.id });
    const good = blockEvent('host-x', 2, Date.now(), { cmdline: 'tab\there\nnewline \\ backslash', labels: { 'a b': 'c"d' }, message: 'nul\u0000byte' });
    await js.publish(EVENT_SUBJECTS.block('host-x'), JSON.stringify(good), { msgID: good.id });
    await waitFor('the good event', async () => (await count()).n === before + 1, 20_000);
    const row = (await db.query(`select host, cmdline, labels, message, blocklist, version, qname_rev from block_events where id = $1`, [good.id])).rows[0];
    assert.deepEqual(row, {
      host: 'host-x',
      cmdline: 'tab\there\nnewline \\ backslash',
      labels: { 'a b': 'c"d' },
      message: 'nulbyte',
      blocklist: 'core',
      version: 3,
      qname_rev: 'com.example.svc2',
    });
    assert.equal((await db.query(`select count(*)::int as n from block_events where host = 'host-victim'`)).rows[0].n, 0);
    const metrics = (await env.http.get('/metrics')).text;
    assert.match(metrics, /cgfence_events_ingested_total\{kind="block",outcome="malformed"\} 2/);
    assert.match(metrics, /cgfence_events_ingested_total\{kind="block",outcome="forged"\} 1/);
    await nc.close();
  });

  it('stores run summaries (upsert by run id) and shows a run with its events and domains', async () => {
    const nc = await connect({ servers: nats.url() });
    const js = jetstream(nc);
    const now = Date.now();
    const summary: RunSummary = {
      runId: 'run-host-1-3',
      host: 'host-1',
      cohort: 'canary',
      labels: { repo: 'payments' },
      command: 'deploy.sh --prod',
      startedAt: new Date(now - 60_000).toISOString(),
      endedAt: new Date(now).toISOString(),
      exitCode: 1,
      signal: null,
      domains: [
        { name: 'svc3.example.com', queries: 4, blocked: 4, firstSeen: new Date(now - 50_000).toISOString(), lastSeen: new Date(now - 1000).toISOString() },
        { name: 'registry.npmjs.org', queries: 9, blocked: 0, firstSeen: new Date(now - 40_000).toISOString(), lastSeen: new Date(now - 2000).toISOString() },
      ],
      overflow: 0,
      policyVersion: 'core v3',
    };
    await js.publish(EVENT_SUBJECTS.run('host-1'), JSON.stringify(summary), { msgID: `run-${summary.runId}` });
    // A second summary of the same run (sent again after the duplicate window) replaces the first.
    await js.publish(EVENT_SUBJECTS.run('host-1'), JSON.stringify({ ...summary, exitCode: 0 }), { msgID: `run-${summary.runId}-again` });
    await waitFor('the run summary', async () => (await db.query(`select exit_code from runs where run_id = $1`, [summary.runId])).rows[0]?.exit_code === 0, 20_000);
    const res = await env.http.get(`/runs/${summary.runId}`).set({ Authorization: `Bearer ${viewer}` });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(res.body.host, 'host-1');
    assert.equal(res.body.exitCode, 0);
    assert.equal(res.body.command, 'deploy.sh --prod');
    assert.equal(res.body.events.total, 100);
    assert.equal(res.body.events.blocked, 100);
    assert.equal(res.body.latest.length, 20);
    assert.deepEqual(res.body.domains.map((d: { name: string }) => d.name), ['svc3.example.com', 'registry.npmjs.org']);
    assert.equal((await env.http.get('/runs/nope').set({ Authorization: `Bearer ${viewer}` })).status, 404);
    await nc.close();
  });
});
