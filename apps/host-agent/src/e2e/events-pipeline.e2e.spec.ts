// The block-event pipeline loses nothing and stores nothing twice (issue 6),
// end to end: four simulated hosts, each the agent's real FleetClient (its own
// NATS credentials) and AgentEvents/EventShipper with its own on-disk spool
// (no kernel needed), produce 100,000 block events; they travel through a real
// nats-server into the CGF_EVENTS stream, and the real policy server process
// ingests them into a real PostgreSQL. While the hosts produce, one host's
// network link goes down (its events pile up in its spool; it restarts during
// the outage and drains when the link is back), the policy server is killed
// with SIGKILL in the middle of writing a batch and started again on the same
// database, and nats-server restarts. Afterwards block_events holds every
// event exactly once: count = distinct ids = sent, every sent id is there,
// no spool dropped any. Takes about a minute.
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { KeyObject } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from 'pg';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { freePort, ManagedProcess, NatsServer, PostgresServer, startPolicyServer, TcpLink, waitFor } from '@cgfence/devservices';
import { addHost, authConfigFile, initAuth, natsConnectOptions } from '@cgfence/nats-auth';
import { EVENTS_STREAM, HostReportSchema, parsePublicKeys } from '@cgfence/proto';
import { AgentEvents } from '../events/agent-events';
import { JetStreamTransport } from '../events/jetstream-transport';
import { blockRecord } from '../events/testing/event-fixtures';
import { FleetClient } from '../fleet/fleet-client';
import { quietLogger, RecordingSink } from '../fleet/testing/fleet-fixtures';

const POLICY_SERVER = join(__dirname, '..', '..', '..', '..', 'policy-server', 'dist', 'src', 'main.js');
const TOTAL = 100_000;
const AGENTS = 4;
const PER_AGENT = TOTAL / AGENTS;
/** Events per second of all hosts together: about 40 s of production. */
const RATE = 2500;
/** Far above what a host spools here (about 650 bytes an event): nothing may be dropped. */
const SPOOL_MAX_BYTES = 256 * 1024 * 1024;


/** One host as `cgfence agent` wires it in fleet mode, minus the kernel: FleetClient + AgentEvents on its state dir. */
class SimAgent {
  fleet: FleetClient | undefined;
  events: AgentEvents | undefined;
  /** Events produced so far (also the `n` of the next record). */
  produced = 0;
  readonly alerts: string[] = [];
  private readonly sink = new RecordingSink();

  constructor(
    readonly hostId: string,
    readonly stateDir: string,
    /** nats-server, or a TcpLink to it. */
    readonly servers: string,
    private readonly seedFile: string,
    private readonly ring: Map<string, KeyObject>,
  ) {
    // The heartbeat report carries the spool, as the Agent's sink status does.
    const status = this.sink.status.bind(this.sink);
    this.sink.status = () => ({ ...status(), ...(this.events ? { spool: this.events.report() } : {}) });
  }

  get spoolDir(): string {
    return join(this.stateDir, 'spool');
  }

  get connected(): boolean {
    return this.fleet?.status().connected === true;
  }

  start(): void {
    const fleet = new FleetClient({
      servers: this.servers,
      hostId: this.hostId,
      labels: { cohort: 'canary' },
      ring: this.ring,
      sink: this.sink,
      stateDir: this.stateDir,
      logger: quietLogger,
      seedFile: this.seedFile,
      reconnectWaitMs: 250,
    });
    const events = new AgentEvents({
      hostId: this.hostId,
      cohort: 'canary',
      transport: new JetStreamTransport(() => fleet.natsConnection()),
      spool: { dir: this.spoolDir, maxBytes: SPOOL_MAX_BYTES },
      logger: quietLogger,
    });
    fleet.onConnected(() => events.wake());
    events.start({ alert: (m) => this.alerts.push(m), proxy: { onQuery: () => () => undefined }, runs: { byCgroupId: () => undefined } });
    fleet.start();
    this.fleet = fleet;
    this.events = events;
  }

  /** Produces events until `n` in all, handing each to AgentEvents.record as the Agent does with every journal record. */
  produceUpTo(n: number, sent: Set<string>): void {
    const events = this.events;
    if (!events) return; // a stopped agent records nothing; it catches up once started
    while (this.produced < n) {
      const r = blockRecord(this.hostId, this.produced++);
      sent.add(r.id);
      events.record(r);
    }
  }

  /** Stops as the agent does on SIGTERM (fleet client, then the shipper); returns what its spool still held. */
  async stop(): Promise<number> {
    const { fleet, events } = this;
    this.fleet = undefined;
    this.events = undefined;
    await fleet?.stop();
    await events?.close();
    return events?.status().pending ?? 0;
  }

  /** Bytes of the spool's segment files on disk. */
  spoolFileBytes(): number {
    if (!existsSync(this.spoolDir)) return 0;
    return readdirSync(this.spoolDir)
      .filter((f) => f.startsWith('seg-'))
      .reduce((n, f) => n + statSync(join(this.spoolDir, f)).size, 0);
  }
}

describe('block-event pipeline end to end (agents → spool → nats-server → policy server → PostgreSQL)', () => {
  let dir: string;
  let pg: PostgresServer;
  let nats: NatsServer;
  let link: TcpLink | undefined;
  let server: ManagedProcess | undefined;
  let serverEnv: NodeJS.ProcessEnv;
  let serverLog: string;
  let db: Client | undefined;
  let nc: NatsConnection | undefined;
  let passed = false;
  const agents: SimAgent[] = [];
  const stopProducing = new AbortController();

  const tail = (file: string, chars = 3000): string => (existsSync(file) ? readFileSync(file, 'utf8').slice(-chars) : '(no log)');

  const startServer = async (): Promise<void> => {
    server = await startPolicyServer({ main: POLICY_SERVER, port: Number(serverEnv['CGFENCE_HTTP_PORT']), env: serverEnv, log: serverLog, nats: true });
  };

  const count = async (): Promise<{ n: number; d: number }> =>
    (await db!.query(`select count(*)::int as n, count(distinct id)::int as d from block_events`)).rows[0] as { n: number; d: number };

  /**
   * Kills the policy server with SIGKILL in the middle of writing a batch: the
   * test holds a lock that stops the server's insert into block_events inside
   * its transaction, kills the server while it waits there, then lets go. The
   * batch is neither committed nor (if acks follow commits) acked.
   */
  const killMidWrite = async (): Promise<void> => {
    const lock = new Client({ connectionString: serverEnv['CGFENCE_DATABASE_URL'] });
    await lock.connect();
    try {
      const lockPid = ((await lock.query('select pg_backend_pid() as pid')).rows[0] as { pid: number }).pid;
      await lock.query('begin');
      await lock.query('lock table block_events in exclusive mode');
      await waitFor('the policy server to be blocked writing a batch', async () => {
        const r = await db!.query(
          `select count(*)::int as n from pg_stat_activity
            where pid not in (pg_backend_pid(), $1) and xact_start is not null and wait_event_type = 'Lock' and query ilike '%block_events%'`,
          [lockPid],
        );
        return (r.rows[0] as { n: number }).n > 0;
      }, 20_000);
      await server!.kill();
    } finally {
      await lock.query('rollback').catch(() => undefined);
      await lock.end();
    }
  };

  /** Every consumer of CGF_EVENTS (the server's durable one) has been handed and has acked all the stream holds. */
  const ingestSettled = async (): Promise<boolean> => {
    const jsm = await jetstreamManager(nc!);
    const stream = await jsm.streams.info(EVENTS_STREAM.name);
    const consumers = await jsm.consumers.list(EVENTS_STREAM.name).next();
    return (
      consumers.length > 0 &&
      consumers.every((c) => c.num_pending === 0 && c.num_ack_pending === 0 && c.delivered.stream_seq >= stream.state.last_seq)
    );
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'cgfence-events-e2e-'));
    const authDir = join(dir, 'nats-auth');
    const { serverSeedFile } = initAuth(authDir);
    const seeds = Array.from({ length: AGENTS }, (_, i) => addHost(authDir, `agent-${i + 1}`).seedFile);
    [pg, nats] = await Promise.all([
      PostgresServer.start({ dir: join(dir, 'pg'), fast: true }),
      NatsServer.start({ dir: join(dir, 'nats'), include: [authConfigFile(authDir)] }),
    ]);
    const port = await freePort();
    serverLog = join(dir, 'server.log');
    const databaseUrl = await pg.createDatabase('events_e2e');
    serverEnv = {
      ...process.env,
      CGFENCE_DATABASE_URL: databaseUrl,
      CGFENCE_HTTP_PORT: String(port),
      CGFENCE_STATE_DIR: join(dir, 'server'),
      CGFENCE_NATS_URL: nats.url(),
      CGFENCE_NATS_SEED: serverSeedFile,
      CGFENCE_LOG_LEVEL: 'warn',
    };
    // The server creates CGF_EVENTS and its durable consumer itself.
    await startServer();
    db = new Client({ connectionString: databaseUrl });
    await db.connect();
    nc = await connect({ servers: nats.url(), ...natsConnectOptions({ seedFile: serverSeedFile }), maxReconnectAttempts: -1, reconnectTimeWait: 250 });
    const ring = parsePublicKeys(readFileSync(join(dir, 'server', 'signing-key.pem.pub'), 'utf8'));
    // The last host reaches nats-server through a link the test can cut.
    link = await TcpLink.start({ host: nats.host, port: nats.port });
    for (let i = 1; i <= AGENTS; i++) {
      const servers = i === AGENTS ? `nats://127.0.0.1:${link.port}` : nats.url();
      agents.push(new SimAgent(`agent-${i}`, join(dir, `agent-${i}`), servers, seeds[i - 1]!, ring));
    }
    for (const a of agents) a.start();
    await waitFor('every host connected', async () => agents.every((a) => a.connected), 20_000);
  });

  after(async () => {
    stopProducing.abort();
    if (!passed && serverLog) console.error(`--- policy server log (tail) ---\n${tail(serverLog)}`);
    const steps: (() => Promise<unknown> | undefined)[] = [
      ...agents.map((a) => () => a.stop()),
      () => link?.close(),
      () => nc?.close(),
      () => db?.end(),
      () => server?.stop(),
      () => nats?.stop(),
      () => pg?.stop(),
    ];
    for (const step of steps) await Promise.resolve().then(step).catch(() => undefined);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('stores 100,000 events exactly once across a host outage and restart, a killed policy server and a nats-server restart', { timeout: 300_000 }, async (t) => {
    const sent = new Set<string>();
    const offline = agents[AGENTS - 1]!;
    const t0 = Date.now();
    const mark = (what: string): void => t.diagnostic(`${((Date.now() - t0) / 1000).toFixed(1).padStart(5)} s  ${what}`);
    const produced = (): number => agents.reduce((n, a) => n + a.produced, 0);
    const reached = async (fraction: number): Promise<void> => {
      const deadline = Date.now() + 120_000;
      while (produced() < fraction * TOTAL) {
        if (stopProducing.signal.aborted) throw new Error('the test ended');
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${fraction * 100}% of the events produced (${produced()})`);
        await sleep(50);
      }
    };

    // Every host produces at RATE/AGENTS events a second; a host that is down catches up when it is back.
    const producing = (async () => {
      while (!stopProducing.signal.aborted && agents.some((a) => a.produced < PER_AGENT)) {
        const due = Math.min(PER_AGENT, Math.floor(((Date.now() - t0) / 1000) * (RATE / AGENTS)));
        for (const a of agents) a.produceUpTo(due, sent);
        await sleep(20);
      }
      mark(`all ${produced()} events produced`);
    })();

    const chaos = (async () => {
      await reached(0.1);
      link!.cut();
      await waitFor(`${offline.hostId} to notice its link is down`, async () => !offline.connected, 10_000);
      const cutAt = offline.produced;
      mark(`${offline.hostId}'s link cut (it has produced ${cutAt})`);

      await reached(0.25);
      const stored = await count();
      assert.ok(stored.n > 0, 'the first policy server was ingesting');
      await killMidWrite();
      mark(`policy server killed with SIGKILL in the middle of writing a batch (${stored.n}+ events stored)`);
      await startServer();
      mark('new policy server ready');

      await reached(0.45);
      await nats.restart();
      mark('nats-server restarted');

      await reached(0.55);
      // Everything the host produced since its link went down is in its spool, on disk.
      const spooled = offline.events!.status().pending;
      const sinceCut = offline.produced - cutAt;
      assert.ok(spooled >= sinceCut, `${offline.hostId} spooled ${spooled} of the ${sinceCut} events it produced offline`);
      assert.ok(offline.spoolFileBytes() >= spooled * 300, `spool files hold ${offline.spoolFileBytes()} bytes for ${spooled} events`);
      // The host restarts while still offline: the new agent finds every pending event in the spool.
      const pendingAtStop = await offline.stop();
      offline.start();
      assert.equal(offline.events!.status().pending, pendingAtStop, 'the restarted agent found its spool');
      mark(`${offline.hostId} restarted while offline with ${pendingAtStop} events spooled`);

      await reached(0.7);
      assert.ok(!offline.connected && offline.events!.status().pending > pendingAtStop, 'still offline and spooling');
      link!.restore();
      await waitFor(`${offline.hostId} to reconnect`, async () => offline.connected, 20_000);
      mark(`${offline.hostId}'s link restored with ${offline.events!.status().pending} events spooled`);
    })();

    await Promise.all([producing, chaos]);
    assert.equal(sent.size, TOTAL);
    for (const a of agents) assert.equal(a.produced, PER_AGENT, a.hostId);

    await waitFor('every spool drained', async () => agents.every((a) => a.events!.status().pending === 0), 120_000);
    mark('every spool drained');
    for (const a of agents) {
      const s = a.events!.status();
      assert.equal(s.dropped, 0, `${a.hostId} dropped events`);
      assert.deepEqual(HostReportSchema.parse(a.fleet!.buildReport()).spool, { pending: 0, dropped: 0 }, `${a.hostId} reports its spool`);
      assert.deepEqual(a.alerts, [], `${a.hostId} alerts`);
    }

    // Messages the killed server had taken (and acks lost in the nats-server restart) come back after the
    // consumer's ack wait (30 s); the server acks after it commits, so once all is acked the table is final.
    await waitFor('the policy server to have ingested and acked the whole stream', ingestSettled, 120_000);
    mark('ingestion settled');

    const c = await count();
    assert.equal(c.n, TOTAL, `rows in block_events (distinct ids ${c.d})`);
    assert.equal(c.d, TOTAL, 'distinct ids in block_events');
    const ids = new Set(((await db!.query(`select id::text as id from block_events`)).rows as { id: string }[]).map((r) => r.id));
    const missing = [...sent].filter((id) => !ids.has(id));
    assert.deepEqual(missing.slice(0, 5), [], `${missing.length} sent events missing`);
    const perHost = (await db!.query(`select host, count(*)::int as n from block_events group by host order by host`)).rows as { host: string; n: number }[];
    assert.deepEqual(perHost, agents.map((a) => ({ host: a.hostId, n: PER_AGENT })));
    const rollup = (await db!.query(`select sum(n)::int as n from block_event_counts`)).rows[0] as { n: number };
    assert.equal(rollup.n, TOTAL, 'the hourly rollup counted each event once');
    passed = true;
  });
});
