// A policy server killed (SIGKILL) after a finding's notification is
// committed but before it is delivered: the next server delivers it, once.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Client } from 'pg';
import { connect, NatsConnection } from '@nats-io/transport-node';
import { jetstream } from '@nats-io/jetstream';
import { freePort, ManagedProcess, NatsServer, PostgresServer, startPolicyServer, waitFor } from '@cgfence/devservices';
import { EVENT_SUBJECTS, OwnerSetView } from '@cgfence/proto';
import { blockEvent } from '../events/test-events';
import { verifyDelivery } from '../notifications/signature';
import { WebhookReceiver } from '../testing/webhook-receiver';

const MAIN = join(__dirname, '..', 'main.js');

describe('webhook delivery across a killed server', () => {
  let dir: string;
  let pg: PostgresServer;
  let nats: NatsServer;
  let receiver: WebhookReceiver;
  let server: ManagedProcess | undefined;
  let db: Client;
  let env: NodeJS.ProcessEnv;
  let port: number;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'cgfence-findings-crash-'));
    [pg, nats] = await Promise.all([PostgresServer.start({ dir: join(dir, 'pg'), fast: true }), NatsServer.start({ dir: join(dir, 'nats') })]);
    receiver = await WebhookReceiver.start();
    port = await freePort();
    const databaseUrl = await pg.createDatabase('findings_crash');
    env = { ...process.env, CGFENCE_DATABASE_URL: databaseUrl, CGFENCE_STATE_DIR: join(dir, 'state'), CGFENCE_NATS_URL: nats.url(), CGFENCE_LOG_LEVEL: 'warn' };
    db = new Client({ connectionString: databaseUrl });
  });

  after(async () => {
    for (const step of [() => server?.stop(), () => db?.end(), () => receiver?.down(), () => nats?.stop(), () => pg?.stop()]) await Promise.resolve().then(step).catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  });

  it('delivers a notification committed before the kill exactly once after the restart, signed', { timeout: 120_000 }, async () => {
    // The first server looks for due deliveries only when it starts (poll: a minute), so what it commits stays undelivered.
    server = await startPolicyServer({ main: MAIN, port, env: { ...env, CGFENCE_WEBHOOK_POLL_MS: '60000' }, log: join(dir, 'server-1.log'), nats: true });
    await db.connect();
    const token = readFileSync(join(dir, 'state', 'admin-token'), 'utf8').trim();
    const res = await fetch(`http://127.0.0.1:${port}/owners`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ value: 'api', team: 'payments', webhook: { url: receiver.url } }),
    });
    assert.equal(res.status, 200);
    const { secret } = (await res.json()) as OwnerSetView;

    const nc: NatsConnection = await connect({ servers: nats.url() });
    const e = blockEvent('host-a', 0, Date.now(), { labels: { service: 'api' }, entry: 'api.internal', qname: 'api.internal' });
    await jetstream(nc).publish(EVENT_SUBJECTS.block('host-a'), JSON.stringify(e), { msgID: e.id });
    await nc.close();
    await waitFor('the delivery to be committed', async () => (await db.query(`select count(*)::int as n from webhook_deliveries where status = 'pending' and attempts = 0`)).rows[0].n === 1, 30_000);
    await server.kill();
    assert.equal(receiver.received.length, 0, 'nothing was sent before the kill');

    server = await startPolicyServer({ main: MAIN, port, env: { ...env, CGFENCE_WEBHOOK_POLL_MS: '100' }, log: join(dir, 'server-2.log'), nats: true });
    await waitFor('the delivery', () => receiver.received.length === 1, 30_000);
    await sleep(1000);
    assert.equal(receiver.received.length, 1, 'delivered once');
    const r = receiver.received[0]!;
    assert.ok(verifyDelivery(secret!.secret, { delivery: r.headers['cgfence-delivery'] as string, timestamp: r.headers['cgfence-timestamp'] as string, signature: r.headers['cgfence-signature'] as string }, r.body));
    assert.equal((await db.query(`select status from webhook_deliveries`)).rows[0].status, 'delivered');
  });
});
