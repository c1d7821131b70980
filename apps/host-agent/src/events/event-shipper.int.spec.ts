// Real nats-server with per-host credentials: the EventShipper on the
// FleetClient's connection (inbox _INBOX_<host>, no JetStream API) ships
// journal records and run summaries into the CGF_EVENTS stream the test makes
// as the policy server would. Outages of NATS and a restart of the agent in
// between: every event arrives exactly once, in order; a full spool drops the
// oldest, counts and reports them; a run summary arrives when a run ends.
import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { NatsServer, waitFor } from '@cgfence/devservices';
import { addHost, authConfigFile, initAuth, natsConnectOptions } from '@cgfence/nats-auth';
import { BlockEventSchema, EVENT_SUBJECTS, EVENTS_STREAM, HostReportSchema, RunSummarySchema } from '@cgfence/proto';
import { FleetClient } from '../fleet/fleet-client';
import { quietLogger, RecordingSink, ringOf, signingKey } from '../fleet/testing/fleet-fixtures';
import { newEventId } from '../journal/event-id';
import type { RunRecord } from '../runs/run-registry';
import { AgentEvents } from './agent-events';
import { EventShipper, type EventShipperOptions } from './event-shipper';
import { JetStreamTransport } from './jetstream-transport';
import { blockRecord as record } from './testing/event-fixtures';

const eventually = (what: string, probe: () => boolean | Promise<boolean>, timeoutMs = 15_000): Promise<void> => waitFor(what, probe, timeoutMs, 25);

interface Stored {
  subject: string;
  msgId: string | undefined;
  body: unknown;
}

describe('EventShipper against a real nats-server', () => {
  const root = mkdtempSync(join(tmpdir(), 'cgfence-events-int-'));
  const authDir = join(root, 'auth');
  let nats: NatsServer;
  let server: NatsConnection;
  let jsm: JetStreamManager;
  const seeds: Record<string, string> = {};
  const cleanup: (() => Promise<unknown>)[] = [];

  before(async () => {
    const serverSeed = initAuth(authDir).serverSeedFile;
    for (const h of ['h1', 'h2', 'h3']) seeds[h] = addHost(authDir, h).seedFile;
    nats = await NatsServer.start({ dir: join(root, 'nats'), include: [authConfigFile(authDir)] });
    server = await connect({ servers: nats.url(), ...natsConnectOptions({ seedFile: serverSeed }), maxReconnectAttempts: -1, reconnectTimeWait: 100 });
    jsm = await jetstreamManager(server);
    // What the policy server does: one stream for every host's events (2 min duplicate window by default).
    await jsm.streams.add({ name: EVENTS_STREAM.name, subjects: [...EVENTS_STREAM.subjects] });
  });

  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c().catch(() => undefined);
  });

  after(async () => {
    await server?.close();
    await nats?.stop();
    rmSync(root, { recursive: true, force: true });
  });

  /** A host's FleetClient (its NATS connection, with its own credentials) — no policy server needed. */
  function fleetClient(hostId: string, sink = new RecordingSink()): FleetClient {
    const fc = new FleetClient({
      servers: nats.url(),
      hostId,
      labels: { cohort: 'canary' },
      ring: ringOf(signingKey()),
      sink,
      stateDir: join(root, hostId, 'state'),
      logger: quietLogger,
      seedFile: seeds[hostId],
      syncIntervalMs: 60_000,
      reportIntervalMs: 60_000,
      requestTimeoutMs: 500,
      reconnectWaitMs: 100,
    });
    fc.start();
    cleanup.push(() => fc.stop());
    return fc;
  }

  function shipper(fc: FleetClient, hostId: string, o: Partial<EventShipperOptions> = {}): EventShipper {
    const s = new EventShipper({
      hostId,
      transport: new JetStreamTransport(() => fc.natsConnection()),
      spool: { dir: join(root, hostId, 'state', 'spool') },
      logger: quietLogger,
      ackTimeoutMs: 1000,
      retryMs: 50,
      retryMaxMs: 300,
      ...o,
    });
    const off = fc.onConnected(() => s.wake());
    s.start();
    cleanup.push(async () => {
      off();
      await s.close();
    });
    return s;
  }

  /** Every message of the stream under cgf.events.<host>., in stream order. */
  async function stored(hostId: string): Promise<Stored[]> {
    // The test's own connection may still be reconnecting after a restart of nats-server.
    let info: Awaited<ReturnType<JetStreamManager['streams']['info']>> | undefined;
    await eventually('the stream info', async () => {
      info = await jsm.streams.info(EVENTS_STREAM.name).catch(() => undefined);
      return info !== undefined;
    });
    if (!info) throw new Error('no stream info');
    const out: Stored[] = [];
    for (let seq = info.state.first_seq; seq <= info.state.last_seq && info.state.messages > 0; seq++) {
      const m = await jsm.streams.getMessage(EVENTS_STREAM.name, { seq }).catch(() => null);
      if (!m || !m.subject.startsWith(`cgf.events.${hostId}.`)) continue;
      out.push({ subject: m.subject, msgId: m.header?.get('Nats-Msg-Id'), body: m.json() });
    }
    return out;
  }

  it('ships every event exactly once, in order, across NATS outages and an agent restart', async () => {
    const fc = fleetClient('h1');
    let sut = shipper(fc, 'h1');
    const produced: string[] = [];
    const produce = (s: EventShipper, n: number) => {
      for (let i = 0; i < n; i++) {
        const r = record('h1', produced.length);
        produced.push(r.id);
        s.event(r);
      }
    };

    await eventually('the host to connect', () => fc.natsConnection() !== undefined);
    produce(sut, 40);
    await eventually('the first events acked', () => sut.status().pending === 0);

    // Outage 1: NATS goes away while the agent keeps producing.
    await nats.stop();
    produce(sut, 60);
    await eventually('a publish to fail', () => sut.status().lastError !== null);
    assert.ok(sut.status().pending >= 60, `spooled: ${sut.status().pending}`);

    // The agent restarts during the outage: what is pending is on disk.
    await cleanup.pop()!();
    sut = shipper(fc, 'h1');
    assert.ok(sut.status().pending >= 60, 'the restarted shipper found the spool');
    produce(sut, 20);

    await nats.restart();
    await eventually('the spool drained after NATS came back', () => sut.status().pending === 0, 30_000);

    // Outage 2, cut while a burst is in flight: acks lost, events sent again.
    produce(sut, 100);
    await nats.restart();
    produce(sut, 30);
    await eventually('the spool drained again', () => sut.status().pending === 0, 30_000);

    const got = await stored('h1');
    const ids = got.map((m) => m.msgId);
    assert.equal(new Set(ids).size, produced.length, 'every event arrived');
    assert.equal(got.length, produced.length, 'exactly once: no duplicate in the stream');
    assert.deepEqual(ids, produced, 'in the order the agent produced them');
    for (const m of got) {
      assert.equal(m.subject, EVENT_SUBJECTS.block('h1'));
      const ev = BlockEventSchema.parse(m.body);
      assert.equal(ev.id, m.msgId);
      assert.equal(ev.host, 'h1');
    }
    assert.equal(sut.status().dropped, 0);
  });

  it('bounds the spool during an outage: drops the oldest, counts, journals and reports them', async () => {
    const sink = new RecordingSink();
    const fc = fleetClient('h2', sink);
    const alerts: string[] = [];
    const sut = shipper(fc, 'h2', { spool: { dir: join(root, 'h2', 'state', 'spool'), maxBytes: 16 * 1024 }, alert: (m) => alerts.push(m), alertIntervalMs: 0 });
    // The report carries the spool (the Agent's sink status does this).
    const status = sink.status.bind(sink);
    sink.status = () => ({ ...status(), spool: { pending: sut.status().pending, dropped: sut.status().dropped } });
    await eventually('the host to connect', () => fc.natsConnection() !== undefined);

    await nats.stop();
    const produced: string[] = [];
    for (let i = 0; i < 300; i++) {
      const r = record('h2', i);
      produced.push(r.id);
      sut.event(r);
    }
    const s = sut.status();
    assert.ok(s.dropped > 0, 'events were dropped');
    assert.ok(s.bytes <= 16 * 1024, `${s.bytes} bytes`);
    assert.equal(s.pending + s.dropped, 300, 'each event is pending or counted as dropped');
    await eventually('the drop alert', () => alerts.length > 0);
    assert.match(alerts[0]!, /event spool full \(16384 bytes\): dropped the \d+ oldest events/);

    const report = HostReportSchema.parse(fc.buildReport());
    assert.deepEqual(report.spool, { pending: s.pending, dropped: s.dropped });

    await nats.restart();
    await eventually('the spool drained', () => sut.status().pending === 0, 30_000);
    const ids = (await stored('h2')).map((m) => m.msgId);
    assert.deepEqual(ids, produced.slice(produced.length - s.pending), 'the newest survived, in order');
    assert.equal(sut.status().dropped, s.dropped);
  });

  it('ships a run summary with the domains the run resolved when the run ends', async () => {
    const fc = fleetClient('h3');
    const sut = new AgentEvents({
      hostId: 'h3',
      cohort: 'canary',
      transport: new JetStreamTransport(() => fc.natsConnection()),
      spool: { dir: join(root, 'h3', 'state', 'spool') },
      logger: quietLogger,
      ackTimeoutMs: 1000,
      retryMs: 50,
      retryMaxMs: 300,
    });
    cleanup.push(() => sut.close());
    const off = fc.onConnected(() => sut.wake());
    cleanup.push(async () => off());
    let listener: ((n: import('../dns/dns-events').DnsQueryNotice) => void) | undefined;
    const proxy = { onQuery: (l: typeof listener) => ((listener = l), () => undefined) };
    const run: RunRecord = {
      runId: newEventId(),
      labels: { deploy: 'web-42' },
      cgroupPath: '/sys/fs/cgroup/cgfence-deploy/run-x',
      cgroupId: 77n,
      createdAt: new Date(Date.now() - 5000).toISOString(),
      state: 'finished',
      finishedAt: new Date().toISOString(),
      exitCode: 3,
      reapedAt: null,
      command: 'npm ci',
      uid: 1001,
      user: 'deployer',
    };
    const runs = { byCgroupId: (id: bigint) => (id === 77n ? run : undefined) };
    const alerts: string[] = [];
    sut.start({ alert: (m) => alerts.push(m), proxy, runs });

    const client = { address: '127.0.0.1', port: 5000 };
    const process = { pid: 1, tgid: 1, comm: 'npm', cgroupId: 77n };
    listener!({ qname: 'registry.npmjs.org', qtype: 'A', decision: 'allowed', client, process });
    listener!({ qname: 'registry.npmjs.org', qtype: 'AAAA', decision: 'allowed', client, process });
    listener!({ qname: 'evil.example', qtype: 'A', decision: 'blocked', client, process });
    listener!({ qname: 'other-host.example', qtype: 'A', decision: 'allowed', client, process: { ...process, cgroupId: 1n } });
    sut.runEnded(run, 'SIGTERM', 'list v3');
    await eventually('the summary acked', () => sut.status().pending === 0 && sut.status().shipped === 1);

    const got = await stored('h3');
    assert.equal(got.length, 1);
    assert.equal(got[0]!.subject, EVENT_SUBJECTS.run('h3'));
    assert.equal(got[0]!.msgId, `run-${run.runId}`);
    const summary = RunSummarySchema.parse(got[0]!.body);
    assert.deepEqual(
      { ...summary, domains: summary.domains.map(({ firstSeen: _f, lastSeen: _l, ...d }) => d) },
      {
        runId: run.runId,
        host: 'h3',
        cohort: 'canary',
        labels: { deploy: 'web-42' },
        command: 'npm ci',
        startedAt: run.createdAt,
        endedAt: run.finishedAt,
        exitCode: 3,
        signal: 'SIGTERM',
        domains: [
          { name: 'registry.npmjs.org', queries: 2, blocked: 0 },
          { name: 'evil.example', queries: 1, blocked: 1 },
        ],
        overflow: 0,
        policyVersion: 'list v3',
        uid: 1001,
        user: 'deployer',
      },
    );
    for (const d of summary.domains) assert.ok(d.firstSeen <= d.lastSeen && !Number.isNaN(Date.parse(d.firstSeen)));
    assert.deepEqual(sut.tally.seen(run.runId).names, [], 'the tally forgot the run');
    assert.deepEqual(alerts, []);
  });
});
