// Findings end to end inside the server: block events through JetStream and
// ingestion become findings, owners route them to a real webhook receiver,
// signed, once; the lifecycle moves with time and with new blocks.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect, NatsConnection } from '@nats-io/transport-node';
import { jetstream, JetStreamClient } from '@nats-io/jetstream';
import { NatsServer, waitFor } from '@cgfence/devservices';
import { hostReport } from '../testing/host-report';
import { BlockEvent, DeliveryView, HostReport, ReplayView, RunSummary, EVENT_SUBJECTS, FindingDetailView, FindingView, OwnerSetView } from '@cgfence/proto';
import { DataSource } from 'typeorm';
import { blockEvent } from '../events/test-events';
import { HostsService } from '../hosts/hosts.service';
import { EventsWriter } from '../events/events-writer';
import { toRow } from '../events/rows';
import { verifyDelivery } from '../notifications/signature';
import { ReadModels } from '../read-models/read-models.service';
import { TestPolicyServer } from '../testing/test-server';
import { Received, WebhookReceiver } from '../testing/webhook-receiver';

describe('findings and notifications (JetStream → findings → webhooks)', () => {
  let dir: string;
  let nats: NatsServer;
  let env: TestPolicyServer;
  let nc: NatsConnection;
  let js: JetStreamClient;
  let receiver: WebhookReceiver;
  let auth: { Authorization: string };
  let n = 0;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'cgfence-findings-int-'));
    nats = await NatsServer.start({ dir: join(dir, 'nats') });
    env = await TestPolicyServer.start('findings_int', {
      natsUrl: nats.url(),
      env: {
        CGFENCE_FINDINGS_TICK_MS: '100',
        CGFENCE_FINDINGS_FEED_MS: '100',
        CGFENCE_FINDINGS_FIX_QUIET: '1s',
        CGFENCE_FINDINGS_EXPIRY_WARNING: '1h',
        CGFENCE_WEBHOOK_POLL_MS: '50',
        CGFENCE_WEBHOOK_BACKOFF_MS: '200',
        CGFENCE_WEBHOOK_TIMEOUT_MS: '2000',
      },
    });
    auth = { Authorization: `Bearer ${await env.tokenFor('operator', 'alice')}` };
    await waitFor('the server to be ready with NATS', async () => (await env.http.get('/ready')).body.nats === 'connected', 20_000);
    nc = await connect({ servers: nats.url() });
    js = jetstream(nc);
    receiver = await WebhookReceiver.start();
  });

  after(async () => {
    try {
      await receiver?.down();
      await nc?.close();
      await env?.stop();
    } finally {
      await nats?.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  /** A deploy of `service` on `host` asks for a listed name. */
  async function block(service: string, over: Partial<BlockEvent> = {}): Promise<void> {
    const e = blockEvent(over.host ?? 'host-a', n++, Date.now(), { labels: { service, team: 'x' }, entry: `${service}.internal`, qname: `${service}.internal`, ...over });
    await js.publish(EVENT_SUBJECTS.block(e.host), JSON.stringify(e), { msgID: e.id });
  }

  async function owner(service: string, url = receiver.url, triggers?: string[]): Promise<string> {
    const r = await env.http.post('/owners').set(auth).send({ key: 'service', value: service, team: `team-${service}`, webhook: { url, ...(triggers ? { triggers } : {}) } }).expect(200);
    const body = r.body as OwnerSetView;
    assert.ok(body.secret, 'a new target gets a generated secret, shown once');
    return body.secret.secret;
  }

  const findings = async (q: string): Promise<FindingView[]> => (await env.http.get(`/findings?${q}`).set(auth).expect(200)).body as FindingView[];
  const finding = async (id: string): Promise<FindingDetailView> => (await env.http.get(`/findings/${id}`).set(auth).expect(200)).body as FindingDetailView;
  const about = (service: string): Received[] => receiver.received.filter((r) => (JSON.parse(r.body) as { finding?: FindingView }).finding?.owner === service);
  const valid = (secret: string, r: Received): boolean =>
    verifyDelivery(secret, { delivery: r.headers['cgfence-delivery'] as string, timestamp: r.headers['cgfence-timestamp'] as string, signature: r.headers['cgfence-signature'] as string }, r.body);

  it('a blocked run makes one finding and one signed notification; later blocks add to it without another', { timeout: 60_000 }, async () => {
    const secret = await owner('api');
    await block('api', { cmdline: 'curl -H "Authorization: Bearer abcdefghijklmnopqrstuvwxyz0123456789" https://api.internal/x --password hunter2' });
    await waitFor('the notification', () => about('api').length === 1, 20_000);
    const [got] = about('api');
    assert.ok(valid(secret, got!), 'the signature verifies with the target secret');
    assert.ok(!valid('some-other-secret-value', got!), 'and not with another');
    const body = JSON.parse(got!.body) as { trigger: string; deliveryId: string; finding: FindingView };
    assert.equal(body.trigger, 'finding.new');
    assert.equal(body.deliveryId, got!.headers['cgfence-delivery']);
    assert.equal(body.finding.entry, 'api.internal');
    assert.equal(body.finding.team, 'team-api');

    const [f] = await findings('owner=service=api');
    assert.equal(f?.state, 'new');
    assert.equal(f?.blocked, 1);
    assert.ok(!f!.commands[0]!.includes('hunter2') && !f!.commands[0]!.includes('abcdefghijklmnopqrstuvwxyz'), `command redacted: ${f!.commands[0]}`);

    await block('api', { host: 'host-b', cohort: 'prod' });
    await block('api', { action: 'audited', policyVersion: 'core v4' });
    await waitFor('the finding to count three', async () => (await findings('owner=api'))[0]?.blocked === 2 && (await findings('owner=api'))[0]?.audited === 1, 20_000);
    const after = (await findings('owner=api'))[0]!;
    assert.deepEqual([...after.hosts].sort(), ['host-a', 'host-b']);
    assert.deepEqual([...after.versions].sort(), ['core v3', 'core v4']);
    assert.equal((await findings('owner=api')).length, 1, 'still one finding');
    await sleep(500);
    assert.equal(about('api').length, 1, 'no second notification');
  });

  it('a receiver that is down gets the notification once it is back, once, with a valid signature', { timeout: 60_000 }, async () => {
    const secret = await owner('web');
    await receiver.down();
    await block('web');
    const failing = async (): Promise<DeliveryView | undefined> =>
      ((await env.http.get('/notifications/deliveries?status=pending').set(auth).expect(200)).body as DeliveryView[]).find((d) => d.subject.includes('service=web') && d.attempts >= 2);
    await waitFor('two failed attempts', async () => (await failing()) !== undefined, 20_000);
    assert.ok((await failing())!.lastError);
    await receiver.up();
    await waitFor('the delivery after the receiver is back', () => about('web').length === 1, 20_000);
    assert.ok(valid(secret, about('web')[0]!));
    await sleep(800);
    assert.equal(about('web').length, 1, 'delivered once');
  });

  it('a delivery that keeps failing goes to the dead-letter list, and an operator can retry it', { timeout: 60_000 }, async () => {
    // max attempts default 12 would take long; the receiver answers 500 and the test checks the list moves.
    receiver.status = 500;
    await owner('db');
    await block('db');
    await waitFor('failed attempts', async () => ((await env.http.get('/notifications/deliveries').set(auth)).body as DeliveryView[]).some((d) => d.subject.includes('service=db') && d.attempts >= 2 && /HTTP 500/.test(d.lastError ?? '')), 20_000);
    // Make it dead now (what the last attempt does), then retry it through the API.
    await env.get(DataSource).query(`update webhook_deliveries set status = 'dead' where subject like '%service=db%'`);
    const dead = ((await env.http.get('/notifications/deliveries?status=dead').set(auth).expect(200)).body as DeliveryView[]).find((d) => d.subject.includes('service=db'))!;
    receiver.status = 200;
    const before = about('db').length;
    const retried = (await env.http.post(`/notifications/deliveries/${dead.id}/retry`).set(auth).expect(200)).body as DeliveryView;
    assert.equal(retried.status, 'pending');
    await waitFor('the retried delivery', () => about('db').length > before && JSON.parse(about('db').at(-1)!.body).deliveryId === dead.id, 20_000);
    await env.http.post('/notifications/deliveries/00000000-0000-0000-0000-000000000000/retry').set(auth).expect(404);
    await env.http.post('/notifications/deliveries/nope/retry').set(auth).expect(400);
  });

  it('a finding marked fixed resolves after its quiet period and reopens as a regression on a new block', { timeout: 60_000 }, async () => {
    await owner('cache');
    await block('cache');
    await waitFor('the finding', async () => (await findings('owner=cache')).length === 1, 20_000);
    const id = (await findings('owner=cache'))[0]!.id;
    await env.http.post(`/findings/${id}/ack`).set(auth).send({ reason: 'ours, on it' }).expect(200);
    await env.http.post(`/findings/${id}/resolve`).set(auth).send({ reason: 'deploy script fixed in #42' }).expect(200);
    await waitFor('resolved after the fix quiet period', async () => (await finding(id)).state === 'resolved', 20_000);
    await block('cache');
    await waitFor('reopened', async () => (await finding(id)).state === 'new', 20_000);
    const f = await finding(id);
    assert.equal(f.regression, true);
    assert.deepEqual(
      f.history.map((h) => [h.type, h.actor]),
      [['FindingOpened', 'cgfence'], ['FindingAcknowledged', 'alice'], ['FindingMarkedFixed', 'alice'], ['FindingResolved', 'cgfence'], ['FindingReopened', 'cgfence']],
    );
    assert.ok(f.history.every((h) => h.type === 'FindingOpened' || (h.note ?? '').length > 0), 'every transition has a note');
    await waitFor('the regression notification', () => about('cache').some((r) => JSON.parse(r.body).trigger === 'finding.regression'), 20_000);
  });

  it('an accepted finding reopens when its acceptance expires, and says so', { timeout: 60_000 }, async () => {
    await owner('queue');
    await block('queue');
    await waitFor('the finding', async () => (await findings('owner=queue')).length === 1, 20_000);
    const id = (await findings('owner=queue'))[0]!.id;
    await env.http.post(`/findings/${id}/accept`).set(auth).send({ reason: 'known until migration', until: '2020-01-01T00:00:00Z' }).expect(400);
    await env.http.post(`/findings/${id}/accept`).set(auth).send({ reason: 'x', until: 'soon' }).expect(400);
    const until = new Date(Date.now() + 1500).toISOString();
    const accepted = (await env.http.post(`/findings/${id}/accept`).set(auth).send({ reason: 'known until the migration', until }).expect(200)).body as FindingDetailView;
    assert.equal(accepted.state, 'accepted');
    await block('queue');
    await sleep(300);
    assert.equal((await finding(id)).state, 'accepted', 'a tolerated dependency stays accepted when it happens');
    await waitFor('reopened at expiry', async () => (await finding(id)).state === 'new', 20_000);
    await waitFor('the expiry notification', () => about('queue').some((r) => JSON.parse(r.body).trigger === 'finding.accepted-expired'), 20_000);
    assert.equal((await finding(id)).regression, false);
  });

  it('counts a redelivered batch once: only events really inserted make occurrences', { timeout: 60_000 }, async () => {
    const writer = env.get(EventsWriter);
    const rows = [0, 1, 2].map((i) => toRow(blockEvent('host-r', i, Date.now() - 1000 + i, { labels: { service: 'redo' }, entry: 'redo.internal', qname: 'redo.internal' }), new Date(Date.now() - 1000 + i)));
    assert.equal(await writer.writeRows(rows, [], 'copy', 'service'), 3);
    await waitFor('the finding', async () => (await findings('owner=redo'))[0]?.blocked === 3, 20_000);
    const more = toRow(blockEvent('host-r', 3, Date.now(), { labels: { service: 'redo' }, entry: 'redo.internal', qname: 'redo.internal' }), new Date());
    // The same three again (a redelivery after a crash) and one new: the staged path inserts one.
    assert.equal(await writer.writeRows([...rows, more], [], 'copy', 'service'), 1);
    assert.equal(await writer.writeRows([...rows, more], [], 'insert', 'service'), 0);
    await waitFor('the new one counted', async () => (await findings('owner=redo'))[0]?.blocked === 4, 20_000);
    await sleep(300);
    assert.equal((await findings('owner=redo'))[0]?.blocked, 4);
  });

  it('tells a target subscribed to a fleet trigger (the kill switch), in the Slack format, and no target that is not', { timeout: 60_000 }, async () => {
    const secret = await owner('sre', `${receiver.url}?slack`, ['killswitch.toggled', 'rollout.completed']);
    const before = receiver.received.length;
    await env.http.post('/fleet/audit-mode').set(auth).send({ on: true }).expect(200);
    await waitFor('the kill switch notification', () => receiver.received.some((r) => r.headers['cgfence-trigger'] === 'killswitch.toggled'), 20_000);
    await env.http.post('/fleet/audit-mode').set(auth).send({ on: false }).expect(200);
    await waitFor('both toggles', () => receiver.received.filter((r) => r.headers['cgfence-trigger'] === 'killswitch.toggled').length === 2, 20_000);
    await sleep(300);
    const sent = receiver.received.slice(before);
    assert.equal(sent.length, 2, 'only the target subscribed to it');
    assert.ok(sent.every((r) => valid(secret, r)));
    // Switch the target to Slack's format: same URL, so the same target, changed.
    await env.http.post('/owners').set(auth).send({ value: 'sre', webhook: { url: `${receiver.url}?slack`, format: 'slack', triggers: ['killswitch.toggled'] } }).expect(200);
    await env.http.post('/fleet/audit-mode').set(auth).send({ on: true }).expect(200);
    await waitFor('the Slack-format notification', () => receiver.received.length === before + 3, 20_000);
    const slack = JSON.parse(receiver.received.at(-1)!.body) as { text: string; blocks: unknown[] };
    assert.match(slack.text, /kill switch ON/);
    assert.ok(slack.blocks.length > 0);
    await env.http.post('/fleet/audit-mode').set(auth).send({ on: false }).expect(200);
    const owners = (await env.http.get('/owners').set(auth).expect(200)).body as { value: string; targets: { format: string }[] }[];
    assert.equal(owners.find((o) => o.value === 'sre')?.targets[0]?.format, 'slack');
  });

  it('blocklist replay says per owner which findings a candidate version would create', { timeout: 60_000 }, async () => {
    await env.http.post('/blocklists').set(auth).send({ name: 'deps' }).expect(201);
    await env.http.post('/blocklists/deps/versions').set(auth).send({ entries: ['api.internal', '*.newdep.internal'] }).expect(201);
    const now = new Date().toISOString();
    const run = (id: string, service: string | null, names: string[]): RunSummary => ({
      runId: id, host: 'host-a', cohort: null, labels: service ? { service } : {}, command: 'deploy', startedAt: now, endedAt: now, exitCode: 0, signal: null, overflow: 0, policyVersion: null,
      domains: names.map((name) => ({ name, queries: 1, blocked: 0, firstSeen: now, lastSeen: now })),
    });
    await env.get(EventsWriter).writeRows([], [run('rp1', 'api', ['api.internal', 'x.newdep.internal']), run('rp2', 'api', ['x.newdep.internal']), run('rp3', null, ['y.newdep.internal'])]);
    const r = (await env.http.post('/blocklists/deps/replay').set(auth).send({ version: 1, since: '1h' }).expect(200)).body as ReplayView;
    const api = r.owners!.find((o) => o.owner === 'api')!;
    assert.equal(api.team, 'team-api');
    assert.equal(api.newFindings, 1);
    assert.deepEqual(api.findings.map((f) => [f.entry, f.existing, f.runs]), [['*.newdep.internal', null, 2], ['api.internal', 'new', 1]]);
    assert.deepEqual(r.owners!.find((o) => o.owner === '')?.findings.map((f) => f.entry), ['*.newdep.internal']);
  });

  it('a digest target gets one message per period with every finding notice it held', { timeout: 60_000 }, async () => {
    const r = await env.http.post('/owners').set(auth).send({ value: 'batchy', webhook: { url: `${receiver.url}?digest`, digest: '2s' } }).expect(200);
    const secret = (r.body as OwnerSetView).secret!.secret;
    const digests = () => receiver.received.filter((x) => x.headers['cgfence-trigger'] === 'digest');
    await block('batchy', { entry: 'one.internal' });
    await block('batchy', { entry: 'two.internal' });
    await waitFor('two findings', async () => (await findings('owner=batchy')).length === 2, 20_000);
    assert.equal(digests().length, 0, 'held, not sent one by one');
    assert.equal(about('batchy').length, 0);
    await waitFor('the digest', () => digests().length === 1, 20_000);
    const d = digests()[0]!;
    assert.ok(valid(secret, d));
    const body = JSON.parse(d.body) as { trigger: string; notices: { trigger: string; finding: FindingView }[] };
    assert.deepEqual(body.notices.map((n) => [n.trigger, n.finding.entry]).sort(), [['finding.new', 'one.internal'], ['finding.new', 'two.internal']]);
    await sleep(2500);
    assert.equal(digests().length, 1, 'nothing new, no second digest');
    const held = (await env.http.get('/notifications/deliveries?status=digested').set(auth).expect(200)).body as DeliveryView[];
    assert.equal(held.filter((x) => x.subject.includes('service=batchy')).length, 2);
  });

  it('refuses bad input with a 4xx naming the problem', async () => {
    await env.http.get('/findings?state=nope').set(auth).expect(400);
    await env.http.get('/findings?since=yesterday').set(auth).expect(400);
    // Times PostgreSQL cannot hold (year 0, year 10000) are named, not a 500.
    for (const since of ['0000-01-01', '10000-01-01', '-000001-01-01']) {
      const res = await env.http.get(`/findings?since=${encodeURIComponent(since)}`).set(auth).expect(400);
      assert.match(JSON.stringify(res.body), /years 1 to 9999/);
    }
    for (const until of ['0000-01-01', '7w', 'Tue, 1 Mar 2033']) {
      await env.http.post('/findings/f-00000000000000000000/accept').set(auth).send({ reason: 'x', until }).expect(400);
    }
    await env.http.get('/findings/f-0000').set(auth).expect(400);
    await env.http.get('/findings/f-00000000000000000000').set(auth).expect(404);
    await env.http.post('/findings/f-00000000000000000000/ack').set(auth).send({ reason: 'x' }).expect(404);
    await env.http.post('/owners').set(auth).send({ value: 'x', webhook: { url: 'file:///etc/passwd' } }).expect(400);
    await env.http.post('/owners').set(auth).send({ value: 'x', webhook: { url: 'http://127.0.0.1:1/', triggers: ['everything'] } }).expect(400);
    const viewer = { Authorization: `Bearer ${await env.tokenFor('viewer', 'bob')}` };
    await env.http.post('/owners').set(viewer).send({ value: 'x' }).expect(403);
    await env.http.get('/notifications/deliveries').set(viewer).expect(403);
    const someId = (await findings(''))[0]!.id;
    await env.http.post(`/findings/${someId}/ack`).set(viewer).send({ reason: 'x' }).expect(403);
    await env.http.post(`/findings/${someId}/ack`).set(auth).send({}).expect(400);
  });

  it('warns an accepted finding\'s owner once before the acceptance expires, and again for a new acceptance', { timeout: 60_000 }, async () => {
    const secret = await owner('batch');
    await block('batch');
    await waitFor('the finding', async () => (await findings('owner=batch')).length === 1, 20_000);
    const id = (await findings('owner=batch'))[0]!.id;
    const expiring = () => about('batch').filter((r) => JSON.parse(r.body).trigger === 'finding.accepted-expiring');
    // Beyond the warning lead time (1h here): no warning yet.
    await env.http.post(`/findings/${id}/accept`).set(auth).send({ reason: 'tolerated for now', until: new Date(Date.now() + 2 * 3_600_000).toISOString() }).expect(200);
    await sleep(600);
    assert.equal(expiring().length, 0, 'no warning while the expiry is further away than the lead time');
    // Within it: one warning, however many ticks pass.
    const until = new Date(Date.now() + 30 * 60_000).toISOString();
    await env.http.post(`/findings/${id}/accept`).set(auth).send({ reason: 'until the migration lands', until }).expect(200);
    await waitFor('the expiry warning', () => expiring().length === 1, 20_000);
    await sleep(800);
    assert.equal(expiring().length, 1, 'once per acceptance, not once per tick');
    const [warned] = expiring();
    assert.ok(valid(secret, warned!));
    const body = JSON.parse(warned!.body) as { subject: string; finding: FindingView; note: string };
    assert.match(body.subject, new RegExp(`service=batch: accepted dependency on batch.internal expires at ${until.replace(/[.]/g, '\\.')}`));
    assert.equal(body.finding.state, 'accepted');
    assert.equal((await finding(id)).state, 'accepted', 'a warning changes nothing else');
    // A new acceptance (another expiry) is warned of again.
    await env.http.post(`/findings/${id}/accept`).set(auth).send({ reason: 'one more sprint', until: new Date(Date.now() + 40 * 60_000).toISOString() }).expect(200);
    await waitFor('the second warning', () => expiring().length === 2, 20_000);
    const history = (await finding(id)).history.map((h) => h.type).filter((t) => t === 'FindingAcceptanceExpiring');
    assert.equal(history.length, 2);
  });

  it('tells targets that want it when a host starts rejecting bundles or drifts: once per change, not per report', { timeout: 60_000 }, async () => {
    const secret = await owner('fleet-watch', `${receiver.url}?hosts`, ['host.rejected', 'host.drifted']);
    // Another target, not subscribed to the host triggers: were it told, each count below would double.
    await owner('not-hosts', `${receiver.url}?other`, ['killswitch.toggled']);
    const hosts = env.get(HostsService);
    const hostId = `drift-${Date.now()}`;
    await hosts.register({ hostId, hostname: `${hostId}.example`, labels: { cohort: 'prod' }, kernel: '6.1', agentVersion: '0.1.0', capabilities: ['dns'] }, 'test');
    const report = (over: Partial<HostReport>): HostReport => hostReport(hostId, { drift: { drifted: false, checkedAt: new Date().toISOString() }, ...over });
    const sent = (trigger: string) => receiver.received.filter((r) => r.headers['cgfence-trigger'] === trigger && (JSON.parse(r.body) as { host?: { hostId?: string } }).host?.hostId === hostId);
    const drifted = (detail: string) => report({ drift: { drifted: true, detail, checkedAt: new Date().toISOString() } });

    assert.equal(await hosts.report(report({}), 'test'), true);
    // Drifted in three heartbeats in a row: one notification.
    for (let i = 0; i < 3; i++) await hosts.report(drifted('blocked_v4 has 2 entries, expected 3'), 'test');
    await waitFor('the drift notification', () => sent('host.drifted').length === 1, 20_000);
    const [d] = sent('host.drifted');
    assert.ok(valid(secret, d!));
    assert.match((JSON.parse(d!.body) as { subject: string }).subject, new RegExp(`host ${hostId} drifted.*blocked_v4 has 2 entries`));
    // Back in step, then drifted again: a second one.
    await hosts.report(report({}), 'test');
    await hosts.report(drifted('again'), 'test');
    await waitFor('the second drift notification', () => sent('host.drifted').length === 2, 20_000);

    // Rejections: the first is told; retries that are rejected too (a new time, another reason) are not.
    // (drift: null, not checked, leaves the drift condition as it is)
    const rejected = (at: string, reason: string) => report({ seenRevision: 2, drift: null, lastError: { revision: 2, reason, message: 'bundle signature does not verify', at } });
    await hosts.report(rejected('2026-01-01T00:00:00.000Z', 'signature'), 'test');
    await hosts.report(rejected('2026-01-01T00:00:00.000Z', 'signature'), 'test');
    await hosts.report(rejected('2026-01-01T00:01:00.000Z', 'expired'), 'test');
    await waitFor('the rejection notification', () => sent('host.rejected').length === 1, 20_000);
    assert.match((JSON.parse(sent('host.rejected')[0]!.body) as { subject: string }).subject, new RegExp(`host ${hostId} rejected a bundle: signature`));
    // An apply ends it; the next rejection is a new one.
    const applied = { revision: 3, blocklistId: 'core', name: 'core', version: 3, hash: `sha256:${'0'.repeat(64)}`, appliedAt: new Date().toISOString() };
    await hosts.report(report({ seenRevision: 3, applied, drift: null }), 'test');
    await hosts.report(report({ seenRevision: 4, applied, drift: null, lastError: { revision: 4, reason: 'too_large', message: 'over the limit', at: '2026-01-01T00:02:00.000Z' } }), 'test');
    await waitFor('the second rejection notification', () => sent('host.rejected').length === 2, 20_000);
    await sleep(500);
    assert.equal(sent('host.drifted').length, 2);
    assert.equal(sent('host.rejected').length, 2);
    // The changes are events on the host's stream, one per change.
    const changes = await env.get(DataSource).query(`select data from events where stream_id = $1 and event_type = 'HostConditionChanged' order by global_position`, [`host-${hostId}`]);
    assert.deepEqual(
      changes.map((c: { data: { condition: string; on: boolean } }) => `${c.data.condition}:${c.data.on}`),
      ['drifted:true', 'drifted:false', 'drifted:true', 'rejected:true', 'rejected:false', 'rejected:true'],
    );
  });

  it('rebuilds the findings, owners and host conditions from their events, and a rebuild notifies no one', { timeout: 60_000 }, async () => {
    const db = env.get(DataSource);
    const snap = async () => ({
      f: await db.query(`select * from rm_findings order by id`),
      o: await db.query(`select * from rm_owners order by key, value`),
      t: await db.query(`select * from rm_notification_targets order by id`),
      h: await db.query(`select host_id, conditions from rm_hosts order by host_id`),
    });
    const deliveries = async () => Number((await db.query(`select count(*) as n from webhook_deliveries`))[0].n);
    const before = await snap();
    const sent = await deliveries();
    await env.get(ReadModels).rebuild();
    assert.deepEqual(await snap(), before);
    assert.equal(await deliveries(), sent);
  });
});
