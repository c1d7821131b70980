// Real nats-server: the FleetClient against a stand-in policy server speaking
// the fleet protocol (NestJS packets on cgf.agent.<host>.*, the broadcast on
// cgf.fleet.desired), with real Ed25519 signatures, applying into a recording
// sink. Broadcast, register and sync paths, chunked fetches with a lost reply,
// every rejection keeping the last good policy, serialised applies, the last
// good bundle restored at boot, audit overrides, and reports.
import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from '@nats-io/transport-node';
import { createUser } from '@nats-io/nkeys';
import { freePort, NatsServer, waitFor } from '@cgfence/devservices';
import { DesiredMessage, encodeTransfer, INLINE_CONTENT_BYTES } from '@cgfence/proto';
import { FleetClient, FleetClientOptions } from './fleet-client';
import { LastGoodStore } from './last-good';
import {
  anHourAgo,
  Bundle,
  domainsText,
  makeBundle,
  makeDesired,
  makeMessage,
  quietLogger,
  receiveBroadcasts,
  RecordingSink,
  ringOf,
  signingKey,
  StandInServer,
} from './testing/fleet-fixtures';

const key = signingKey();
const ring = ringOf(key);

describe(FleetClient.name, () => {
  let dir: string;
  let nats: NatsServer;
  let server: StandInServer;
  const running: FleetClient[] = [];
  const transports: ReturnType<typeof receiveBroadcasts>[] = [];
  let revision = 0;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'cgfence-fleet-int-'));
    nats = await NatsServer.start({ dir: join(dir, 'nats') });
  });

  after(async () => {
    await nats?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  afterEach(async () => {
    for (const t of transports.splice(0)) t.close();
    for (const c of running.splice(0)) await c.stop();
    await server?.close();
  });

  /** A fresh stand-in server (one per test, so recorded traffic is the test's own). */
  async function standIn(): Promise<StandInServer> {
    server = new StandInServer(await connect({ servers: nats.url(), name: 'stand-in-policy-server', maxReconnectAttempts: -1, reconnectTimeWait: 100 }));
    return server;
  }

  let hosts = 0;
  function client(o: Partial<FleetClientOptions> & { sink?: RecordingSink } = {}): { fc: FleetClient; sink: RecordingSink; stateDir: string; hostId: string } {
    const sink = o.sink ?? new RecordingSink();
    const hostId = o.hostId ?? `host-${++hosts}`;
    const stateDir = o.stateDir ?? join(dir, hostId);
    const fc = new FleetClient({
      servers: nats.url(),
      hostId,
      labels: { cohort: 'canary', role: 'web' },
      ring,
      stateDir,
      logger: quietLogger,
      syncIntervalMs: 60_000,
      reportIntervalMs: 60_000,
      requestTimeoutMs: 1000,
      reconnectWaitMs: 100,
      agentVersion: '9.9.9',
      ...o,
      sink,
    });
    running.push(fc);
    transports.push(receiveBroadcasts(fc));
    return { fc, sink, stateDir, hostId };
  }

  const nextRevision = () => ++revision;

  /** A signed desired state naming `baseline`, with the message as the server would send it. */
  function desired(baseline: Bundle | null, o: Omit<Parameters<typeof makeDesired>[1], 'revision' | 'baseline'> & { inline?: boolean } = {}) {
    const rev = nextRevision();
    const d = makeDesired(key, { ...o, revision: rev, baseline });
    const bundles = [baseline, ...(o.assignments ?? []).map((a) => a.bundle)].filter((b): b is Bundle => b !== null);
    return { revision: rev, message: makeMessage(d.signed, bundles, { inline: o.inline }), bundles };
  }

  async function started(c: ReturnType<typeof client>): Promise<void> {
    c.fc.start();
    await waitFor(`${c.hostId} to register`, async () => server.registers.some((r) => r.data.hostId === c.hostId), 10_000);
    await c.fc.idle();
  }

  const v1 = makeBundle(key, { text: 'evil.example\n*.tracker.example\n10.66.0.0/16\n', version: 1 });
  const v2 = makeBundle(key, { text: 'evil.example\n*.tracker.example\n10.66.0.0/16\nworse.example\n', version: 2 });

  it('registers with its host info, applies a broadcast, writes the last good bundle and reports', async () => {
    await standIn();
    const c = client({ hostId: 'web-1', reportIntervalMs: 150 });
    await started(c);

    const reg = server.registers.find((r) => r.data.hostId === 'web-1')!;
    assert.equal(reg.subject, 'cgf.agent.web-1.register');
    assert.ok(reg.reply?.startsWith('_INBOX_web-1.'), `reply comes back to the host's own inbox: ${reg.reply}`);
    assert.deepEqual({ ...reg.data, hostname: 'x', kernel: 'x' }, {
      hostId: 'web-1',
      hostname: 'x',
      labels: { cohort: 'canary', role: 'web' },
      kernel: 'x',
      agentVersion: '9.9.9',
      capabilities: ['dns', 'ip', 'resolve', 'audit', 'chunks'],
    });
    assert.ok(reg.data.kernel.length > 0);

    const d = desired(v1);
    await server.broadcast(d.message, d.revision, d.bundles);
    await waitFor('the broadcast to be applied', async () => c.sink.applies.length === 1);

    assert.equal(c.sink.current!.text, v1.content.toString());
    assert.deepEqual(c.sink.current!.meta, { revision: d.revision, blocklistId: 'bl-1', name: 'prod-deny', version: 1, hash: v1.header.hash });
    assert.equal(server.chunkRequests.length, 0, 'small content came inline');
    const s = c.fc.status();
    assert.equal(s.seenRevision, d.revision);
    assert.equal(s.applied?.hash, v1.header.hash);
    assert.equal(s.target, 'baseline');
    assert.equal(s.connected, true);
    assert.equal(s.lastError, null);
    assert.ok(existsSync(join(c.stateDir, 'fleet', 'last-good.json')) && existsSync(join(c.stateDir, 'fleet', 'last-good.content')));

    await waitFor('a report of the apply', async () => server.reports.some((r) => r.data.applied?.revision === d.revision));
    const report = server.reports.find((r) => r.data.applied?.revision === d.revision)!;
    assert.equal(report.subject, 'cgf.agent.web-1.report');
    assert.equal(report.data.seenRevision, d.revision);
    assert.deepEqual(report.data.health, { proxy: true, kernel: true });
    assert.equal(report.data.mode, 'enforce');
    assert.deepEqual(report.data.labels, { cohort: 'canary', role: 'web' });
    assert.equal(report.data.drift?.drifted, false);

    const count = server.reports.length;
    await waitFor('heartbeat reports', async () => server.reports.length >= count + 2);
  });

  it('takes the current state from the register reply', async () => {
    await standIn();
    const d = desired(v2);
    server.setCurrent(d.message, d.revision, d.bundles);
    const c = client();
    await started(c);

    assert.equal(c.sink.applies.length, 1);
    assert.equal(c.sink.current!.meta.version, 2);
  });

  it('catches up by sync after missing a broadcast, and after NATS itself was down', async () => {
    await standIn();
    const d1 = desired(v1);
    server.setCurrent(d1.message, d1.revision, d1.bundles);
    const c = client({ syncIntervalMs: 300 });
    await started(c);
    assert.equal(c.sink.current!.meta.revision, d1.revision);

    // Revision 2 is never broadcast (the agent was offline when it went out).
    const d2 = desired(v2);
    server.setCurrent(d2.message, d2.revision, d2.bundles);
    await waitFor('the sync to bring revision 2', async () => c.sink.current?.meta.revision === d2.revision, 5000);
    assert.ok(server.syncs.some((s) => s.data.seenRevision === d1.revision), 'the sync said what it had seen');
    assert.ok(c.fc.status().lastSync?.ok);

    // NATS goes away; a new revision is decided meanwhile; NATS comes back.
    await nats.stop();
    await waitFor('the client to notice', async () => !c.fc.status().connected, 10_000);
    const d3 = desired(v1, { rollback: { blocklistId: 'bl-1', toVersion: 1 } });
    server.setCurrent(d3.message, d3.revision, d3.bundles);
    const registered = server.registers.length;
    await nats.restart();
    await waitFor('the client to reconnect and register again', async () => server.registers.length > registered, 15_000);
    await waitFor('revision 3 applied', async () => c.sink.current?.meta.revision === d3.revision, 10_000);
    assert.equal(c.fc.status().connected, true);
  });

  it('fetches content over 64 KiB in chunks, in order, retrying a lost reply', async () => {
    await standIn();
    const big = makeBundle(key, { text: domainsText(4000, 'chunky'), version: 3, chunkBytes: 16 * 1024, encoding: 'identity' });
    assert.ok(big.content.length > INLINE_CONTENT_BYTES && big.header.chunks >= 5, `${big.content.length} bytes in ${big.header.chunks} chunks`);
    server.dropChunk = (req, attempt) => req.index === 2 && attempt === 1;
    const c = client({ requestTimeoutMs: 300 });
    await started(c);

    const d = desired(big);
    assert.deepEqual(Object.keys(d.message.inline), [], 'too big to travel inline');
    await server.broadcast(d.message, d.revision, d.bundles);
    await waitFor('the chunked bundle to be applied', async () => c.sink.applies.length === 1, 10_000);

    assert.equal(c.sink.current!.text, big.content.toString());
    const indices = server.chunkRequests.map((r) => r.data.index);
    assert.deepEqual(indices, [0, 1, 2, 2, ...Array.from({ length: big.header.chunks - 3 }, (_, i) => i + 3)]);
    assert.ok(server.chunkRequests.every((r) => r.subject === `cgf.agent.${c.hostId}.bundle` && r.data.hash === big.header.hash));

    // The same with gzip on the wire: chunks of the encoded bytes, decoded before the hash check.
    const zipped = makeBundle(key, { text: domainsText(20_000, 'zipped'), version: 4, chunkBytes: 8 * 1024 });
    assert.ok(zipped.header.chunks >= 3 && zipped.content.length > 5 * zipped.encoded.length, `${zipped.content.length} → ${zipped.encoded.length} bytes`);
    const z = desired(zipped, { inline: false });
    await server.broadcast(z.message, z.revision, z.bundles);
    await waitFor('the gzip bundle', async () => c.sink.current?.meta.version === 4, 10_000);
    assert.equal(c.sink.current!.text, zipped.content.toString());
  });

  it('gives up on a fetch after the retries, keeps the last good policy and tries again at the next sync', async () => {
    await standIn();
    const c = client({ requestTimeoutMs: 200, chunkAttempts: 2, syncIntervalMs: 400 });
    await started(c);
    const good = desired(v1);
    await server.broadcast(good.message, good.revision, good.bundles);
    await waitFor('v1 applied', async () => c.sink.applies.length === 1);

    const big = makeBundle(key, { text: domainsText(3000, 'flaky'), version: 4, chunkBytes: 32 * 1024, encoding: 'identity' });
    let failing = true;
    server.dropChunk = () => failing;
    const d = desired(big);
    await server.broadcast(d.message, d.revision, d.bundles);
    await waitFor('the fetch to fail', async () => c.fc.status().lastError?.reason === 'fetch-failed', 5000);
    assert.equal(c.sink.current!.meta.version, 1, 'v1 stays in force');
    assert.equal(c.fc.status().seenRevision, good.revision, 'a failed fetch does not count as seen');
    assert.match(c.sink.alerts.at(-1)!, /revision \d+ rejected \(fetch-failed\), keeping prod-deny v1 .*chunk 1 of \d+ not fetched after 2 attempts/);

    failing = false;
    await waitFor('the next sync to fetch it', async () => c.sink.current?.meta.version === 4, 5000);
    assert.equal(c.fc.status().lastError, null);
  });

  describe('rejections keep the last good policy', () => {
    let c: ReturnType<typeof client>;
    const stranger = signingKey();

    async function expectRejected(message: unknown, reason: string, match?: RegExp): Promise<void> {
      const applies = c.sink.applies.length;
      const alerts = c.sink.alerts.length;
      await server.publishRaw(message);
      await waitFor(`a ${reason} rejection`, async () => c.sink.alerts.length > alerts);
      const s = c.fc.status();
      assert.equal(s.lastError?.reason, reason, JSON.stringify(s.lastError));
      if (match) assert.match(s.lastError!.message, match);
      assert.equal(c.sink.applies.length, applies, 'nothing applied');
      assert.equal(s.applied?.hash, c.sink.current!.meta.hash, 'the last good bundle is still the applied one');
      await waitFor('a report of the rejection', async () => server.lastReport()?.lastError?.reason === reason);
    }

    it('refuses each bad update and alerts once per problem', async () => {
      await standIn();
      c = client();
      await started(c);
      const good = desired(v2);
      await server.broadcast(good.message, good.revision, good.bundles);
      await waitFor('v2 applied', async () => c.sink.applies.length === 1);

      // unsigned
      const u = desired(v2);
      await expectRejected({ ...u.message, desired: { ...u.message.desired, signature: '' } }, 'unsigned');
      assert.equal(c.fc.status().lastError?.revision, null, 'an unverified revision is not trusted');

      // bad signature: the payload was changed after signing
      const b = desired(v2);
      const altered = b.message.desired.payload.replace('"fleet":false', '"fleet":true');
      await expectRejected({ ...b.message, desired: { ...b.message.desired, payload: altered } }, 'bad-signature');

      // wrong key
      const w = makeDesired(stranger, { revision: nextRevision(), baseline: v2 });
      await expectRejected(makeMessage(w.signed, [v2]), 'unknown-key', /which this agent does not trust/);

      // hash mismatch, inline
      const v3 = makeBundle(key, { text: 'evil.example\nthird.example\n', version: 3 });
      const h = desired(v3);
      const other = encodeTransfer('gzip', Buffer.from('evil.example\nthirx.example\n'));
      const tampered: DesiredMessage = { ...h.message, inline: { [v3.header.hash]: other.toString('base64') } };
      await expectRejected(tampered, 'hash-mismatch', /content hashes to sha256:\w+, the signed header says .* \(inline content\)/);
      assert.equal(c.fc.status().seenRevision, h.revision, 'a verified revision rejected for good counts as seen');

      // hash mismatch, chunks tampered in transit
      const big = makeBundle(key, { text: domainsText(2500, 'tamper'), version: 4, chunkBytes: 32 * 1024, encoding: 'identity' });
      server.bundles.set(big.header.hash, big);
      server.tamperChunk = (req, data) => {
        if (req.index !== 1) return data;
        const copy = Buffer.from(data);
        copy[100] = copy[100] === 0x61 ? 0x62 : 0x61;
        return copy;
      };
      const hc = desired(big, { inline: false });
      await expectRejected(hc.message, 'hash-mismatch', /content hashes to sha256:/);
      server.tamperChunk = (_r, d) => d;

      // gzip that does not inflate to the signed content (cut short in transit)
      const zipped = makeBundle(key, { text: domainsText(500, 'zip'), version: 4 });
      const cut: DesiredMessage = { ...desired(zipped).message, inline: { [zipped.header.hash]: zipped.encoded.subarray(0, -8).toString('base64') } };
      await expectRejected(cut, 'hash-mismatch', /received \d+ bytes, the signed header says \d+/);

      // older version, no rollback order
      await expectRejected(desired(v1).message, 'older-version', /older than v2 already applied, and no signed rollback order/);

      // expired document; expired bundle
      await expectRejected(desired(v2, { expiresAt: anHourAgo() }).message, 'expired', /desired-state revision \d+ expired/);
      const stale = makeBundle(key, { text: 'evil.example\nstale.example\n', version: 5, expiresAt: anHourAgo() });
      await expectRejected(desired(stale).message, 'expired', /bundle prod-deny v5 expired/);

      // content that does not parse: signed, hash fine, but not a blocklist
      const junk = makeBundle(key, { text: 'evil.example\nnot a domain!\n', version: 6, entries: 2 });
      await expectRejected(desired(junk).message, 'malformed', /bad lines/);

      // the kernel refuses (transient)
      c.sink.failNext = 'bpf_map_update_batch failed: ENOMEM';
      const v7 = makeBundle(key, { text: 'evil.example\nseventh.example\n', version: 7 });
      await expectRejected(desired(v7).message, 'apply-failed', /ENOMEM/);

      assert.equal(c.sink.current!.meta.version, 2);
      assert.ok(c.sink.alerts.every((a) => a.includes('keeping prod-deny v2')), c.sink.alerts.join('\n'));

      // The same bad message again: no second alert.
      const alerts = c.sink.alerts.length;
      const again = makeDesired(stranger, { revision: nextRevision(), baseline: v2 });
      await server.publishRaw(makeMessage(again.signed, [v2]));
      await server.publishRaw(makeMessage(again.signed, [v2]));
      await waitFor('the repeat to be processed', async () => c.sink.alerts.length === alerts + 1);
      await c.fc.idle();
      await new Promise((r) => setTimeout(r, 200));
      assert.equal(c.sink.alerts.length, alerts + 1, 'a repeated problem is alerted once');

      // A rollback the signed document orders is accepted.
      const r = desired(v1, { rollback: { blocklistId: 'bl-1', toVersion: 1 } });
      await server.broadcast(r.message, r.revision, r.bundles);
      await waitFor('the ordered rollback to v1', async () => c.sink.current?.meta.version === 1);
      assert.equal(c.fc.status().lastError, null);
    });
  });

  it('processes one message at a time; a newer one supersedes a queued older one', async () => {
    await standIn();
    server.chunkDelayMs = 150;
    const c = client();
    await started(c);
    const mk = (version: number) => makeBundle(key, { text: domainsText(3000, `v${version}`), version, chunkBytes: 16 * 1024, encoding: 'identity' });
    const [a, b, d] = [mk(10), mk(11), mk(12)];
    for (const x of [a, b, d]) server.bundles.set(x.header.hash, x);
    const ma = desired(a, { inline: false });
    const mb = desired(b, { inline: false });
    const md = desired(d, { inline: false });

    const first = c.fc.submit(ma.message);
    await waitFor('the first fetch to start', async () => server.chunkRequests.length > 0);
    void c.fc.submit(mb.message);
    void c.fc.submit(md.message);
    void c.fc.submit(mb.message); // older than the queued one: dropped
    await first;
    await c.fc.idle();

    assert.deepEqual(c.sink.applies.map((x) => x.meta.version), [10, 12]);
    assert.equal(c.fc.status().seenRevision, md.revision);
  });

  it('follows audit overrides: cohort audit, the fleet kill switch, and back to enforce', async () => {
    await standIn();
    const c = client();
    await started(c);

    const canary = makeBundle(key, { text: 'evil.example\ncanary.example\n', version: 8 });
    const a = desired(v2, { assignments: [{ cohorts: ['canary'], bundle: canary, reason: 'rollout r7 stage 1' }], audit: { cohorts: ['canary'] } });
    await server.broadcast(a.message, a.revision, a.bundles);
    await waitFor('the canary bundle', async () => c.sink.current?.meta.version === 8);
    assert.deepEqual(c.sink.modes, ['audit'], 'audit went on before the new list');
    assert.equal(c.fc.status().auditOverride, true);
    assert.equal(c.fc.status().target, 'rollout r7 stage 1');
    await waitFor('a report in audit mode', async () => server.lastReport()?.mode === 'audit');

    // Same bundle, audit lifted: no new apply, only the mode.
    const b = desired(v2, { assignments: [{ cohorts: ['canary'], bundle: canary, reason: 'rollout r7 stage 1' }] });
    await server.broadcast(b.message, b.revision, b.bundles);
    await waitFor('enforce again', async () => c.sink.override === undefined);
    assert.equal(c.sink.applies.length, 1);
    assert.equal(c.fc.status().seenRevision, b.revision);

    // The kill switch, then a rollout to a host-specific bundle in enforce.
    const k = desired(v2, { assignments: [{ cohorts: ['canary'], bundle: canary }], audit: { fleet: true } });
    await server.broadcast(k.message, k.revision, k.bundles);
    await waitFor('audit by kill switch', async () => c.sink.override === 'audit');
    const host = makeBundle(key, { text: 'evil.example\nhost.example\n', version: 9 });
    const h = desired(v2, { assignments: [{ hosts: [c.hostId], bundle: host }] });
    await server.broadcast(h.message, h.revision, h.bundles);
    await waitFor('the host bundle in enforce', async () => c.sink.current?.meta.version === 9 && c.sink.override === undefined);
    assert.deepEqual(c.sink.modes, ['audit', undefined, 'audit', undefined]);
  });

  describe('the last good bundle at boot', () => {
    it('is enforced before NATS, even expired; the server then only confirms it', async () => {
      await standIn();
      const first = client({ hostId: 'boot-1' });
      await started(first);
      const canary = makeBundle(key, { text: 'evil.example\nboot.example\n', version: 21 });
      const d = desired(v2, { assignments: [{ cohorts: ['canary'], bundle: canary }], audit: { cohorts: ['canary'] } });
      await server.broadcast(d.message, d.revision, d.bundles);
      await waitFor('applied', async () => first.sink.current?.meta.version === 21);
      await first.fc.stop();

      // Reboot with NATS unreachable: a port nothing listens on.
      const offline = client({ hostId: 'boot-1', stateDir: first.stateDir, servers: `nats://127.0.0.1:${await freePort()}` });
      const restored = await offline.fc.restoreLastGood();
      assert.equal(restored.restored, true, restored.message);
      assert.equal(offline.sink.current!.text, canary.content.toString());
      assert.equal(offline.sink.current!.meta.revision, d.revision);
      assert.equal(offline.sink.override, 'audit', 'the stored document still says audit for this cohort');
      assert.equal(offline.fc.status().seenRevision, d.revision);
      assert.match(offline.fc.status().boot, /^restored last-good prod-deny v21 \(revision \d+/);
      offline.fc.start();
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(offline.fc.status().connected, false);
      assert.equal(offline.sink.applies.length, 1, 'still enforcing the last good bundle');
      await offline.fc.stop();

      // Two hours later everything has expired: enforced anyway.
      const late = client({ hostId: 'boot-1', stateDir: first.stateDir, clock: () => new Date(Date.now() + 2 * 3600_000) });
      assert.equal((await late.fc.restoreLastGood()).restored, true);
      assert.match(late.fc.status().boot, /although expired/);

      // Back online: register hands out the same revision, nothing is re-applied.
      const online = client({ hostId: 'boot-1', stateDir: first.stateDir });
      await online.fc.restoreLastGood();
      const registers = server.registers.length;
      const reports = server.reports.length;
      online.fc.start();
      await waitFor('register', async () => server.registers.length > registers);
      await online.fc.idle();
      assert.equal(online.sink.applies.length, 1);
      await waitFor('a report of the restored bundle', async () =>
        server.reports.slice(reports).some((r) => r.data.hostId === 'boot-1' && r.data.applied?.version === 21 && r.data.seenRevision === d.revision),
      );
    });

    it('is refused when tampered with, and the agent starts empty and says so', async () => {
      const stateDir = join(dir, 'boot-2');
      const b = makeBundle(key, { text: 'evil.example\n', version: 1 });
      const d = makeDesired(key, { revision: 1, baseline: b });
      const store = new LastGoodStore(stateDir);
      store.save({ revision: 1, desired: d.signed, bundle: b.signed, appliedAt: new Date().toISOString() }, b.content);
      writeFileSync(store.contentFile, 'good.example\n');

      const c = client({ hostId: 'boot-2', stateDir });
      const restored = await c.fc.restoreLastGood();
      assert.equal(restored.restored, false);
      assert.match(restored.message, /last-good bundle in .* ignored: bundle prod-deny v1: content hashes to .*; started with an empty policy/);
      assert.equal(c.sink.applies.length, 0);
      assert.equal(c.sink.alerts.length, 1);
      assert.equal(c.fc.status().applied, null);

      const none = client({ hostId: 'boot-3' });
      assert.deepEqual(await none.fc.restoreLastGood(), { restored: false, message: 'no last-good bundle: started with an empty policy' });
      assert.equal(none.sink.alerts.length, 0);
    });
  });

  it('connects with its nkey seed under per-host permissions', async () => {
    const user = createUser();
    const seedFile = join(dir, 'web-9.nk');
    writeFileSync(seedFile, `${new TextDecoder().decode(user.getSeed())}\n`, { mode: 0o600 });
    const authNats = await NatsServer.start({
      dir: join(dir, 'nats-auth'),
      extraConfig: `authorization {
        users = [
          { nkey: ${user.getPublicKey()}, permissions: { publish: { allow: ["cgf.agent.web-9.>"] }, subscribe: { allow: ["_INBOX_web-9.>", "cgf.fleet.desired"] } } }
          { user: server, password: server-pw }
        ]
      }`,
    });
    const serverConn = await connect({ servers: authNats.url(), user: 'server', pass: 'server-pw' });
    server = new StandInServer(serverConn);
    try {
      const d = desired(v1);
      server.setCurrent(d.message, d.revision, d.bundles);
      const c = client({ hostId: 'web-9', servers: authNats.url(), seedFile });
      c.fc.start();
      await waitFor('the authenticated agent to apply', async () => c.sink.applies.length === 1, 10_000);
      await waitFor('its report', async () => server.reports.some((r) => r.data.hostId === 'web-9'));
      await c.fc.stop();
    } finally {
      await server.close();
      server = undefined as unknown as StandInServer;
      await authNats.stop();
    }
  });

  it('ignores what is not a desired-state message without stopping', async () => {
    await standIn();
    const c = client();
    await started(c);
    await server.publishRaw('hello');
    await server.publishRaw({ pattern: 'cgf.fleet.desired', data: { nope: true } });
    const d = desired(v1);
    await server.broadcast(d.message, d.revision, d.bundles);
    await waitFor('the good one after the junk', async () => c.sink.applies.length === 1);
    assert.equal(c.fc.status().lastError, null, 'cleared by the successful apply');
    assert.ok(c.sink.alerts.some((a) => a.includes('(malformed)')));
  });

});
