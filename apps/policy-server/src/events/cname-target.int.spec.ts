// An event of an allowed name whose DNS answer chain led to a listed name
// carries that listed name (cnameTarget) from the agent's message through
// JetStream and ingestion to GET /events and the exports; an
// older agent's event without the field is stored with null.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from '@nats-io/transport-node';
import { jetstream } from '@nats-io/jetstream';
import { NatsServer, waitFor } from '@cgfence/devservices';
import { EVENT_SUBJECTS, type BlockEventView } from '@cgfence/proto';
import { TestPolicyServer } from '../testing/test-server';
import { blockEvent } from './test-events';

describe('block events: the listed name an answer chain led to', () => {
  let dir: string;
  let nats: NatsServer;
  let env: TestPolicyServer;
  let viewer: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'cgfence-cname-int-'));
    nats = await NatsServer.start({ dir: join(dir, 'nats') });
    env = await TestPolicyServer.start('cname_int', { natsUrl: nats.url() });
    viewer = await env.tokenFor('viewer');
    await waitFor('the server to be ready with NATS', async () => (await env.http.get('/ready')).body.nats === 'connected', 20_000);
  });

  after(async () => {
    try {
      await env?.stop();
    } finally {
      await nats?.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('stores it and shows it in GET /events and the NDJSON and CSV exports; null for older agents', async () => {
    const nc = await connect({ servers: nats.url() });
    const js = jetstream(nc);
    const now = Date.now();
    const chained = blockEvent('host-c', 1, now, {
      runId: 'run-cname',
      qname: 'releases.internal.example',
      entry: 'objects.githubusercontent.com',
      cnameTarget: 'Objects.GitHubUserContent.com.',
    });
    const { cnameTarget: _absent, ...older } = blockEvent('host-c', 2, now - 1, { runId: 'run-cname' });
    for (const e of [chained, older]) await js.publish(EVENT_SUBJECTS.block('host-c'), JSON.stringify(e), { msgID: e.id });
    const get = (path: string) => env.http.get(path).set({ Authorization: `Bearer ${viewer}` });
    let events: BlockEventView[] = [];
    await waitFor('both events', async () => (events = (await get('/events?run=run-cname')).body.events ?? []).length === 2, 20_000);
    const byId = new Map(events.map((e) => [e.id, e]));
    assert.equal(byId.get(chained.id)!.qname, 'releases.internal.example');
    assert.equal(byId.get(chained.id)!.cnameTarget, 'objects.githubusercontent.com', 'normalised like qname');
    assert.equal(byId.get(older.id)!.cnameTarget, null);

    const nd = (await get('/events?format=ndjson&run=run-cname')).text.trim().split('\n').map((l) => JSON.parse(l) as BlockEventView);
    assert.deepEqual(nd.map((e) => e.cnameTarget).sort(), ['objects.githubusercontent.com', null].sort());
    const csv = (await get('/events?format=csv&run=run-cname')).text.trim().split('\r\n');
    assert.ok(csv[0]!.endsWith(',cnameTarget'), `the new column comes last, after the existing ones: ${csv[0]}`);
    assert.ok(csv.slice(1).some((line) => line.endsWith(',objects.githubusercontent.com')), csv.join('\n'));
    await nc.close();
  });
});
