import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AuthorizationError, connect, PermissionViolationError, type NatsConnection, type Status } from '@nats-io/transport-node';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { createUser, fromSeed } from '@nats-io/nkeys';
import { createAccount as createAccountKey, createUser as createUserKey, encodeUser, fmtCreds } from '@nats-io/jwt';
import { createTestCa, issueCert, NatsServer, waitFor, type NatsOptions } from '@cgfence/devservices';
import { FLEET_STREAM, FLEET_SUBJECTS, hostOfSubject, SERVER_PATTERNS, SERVER_QUEUE } from '@cgfence/proto';
import {
  addHost,
  authConfigFile,
  formatCreds,
  initAuth,
  initJwtAuth,
  issueHostJwt,
  JWT_FILES,
  loadJwtIssuer,
  natsConnectOptions,
  newUserKey,
  removeHost,
  renderResolverConfig,
  revokeUsers,
  type NatsCredentialSource,
} from './index';

interface Client {
  nc: NatsConnection;
  /** Every status the connection reported (errors, disconnects, reconnects), in order. */
  statuses: Status[];
}

const eventually = (what: string, probe: () => boolean, timeoutMs = 5000): Promise<void> => waitFor(what, probe, timeoutMs, 20);

async function within<T>(what: string, p: Promise<T>, timeoutMs = 5000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)), timeoutMs);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

const violations = (c: Client, operation: 'publish' | 'subscription', subject: string): PermissionViolationError[] =>
  c.statuses.flatMap((s) =>
    s.type === 'error' && s.error instanceof PermissionViolationError && s.error.operation === operation && s.error.subject === subject ? [s.error] : [],
  );

/** The permissions violation behind an error: requests reject with a RequestError whose cause it is. */
function violationOf(err: unknown): PermissionViolationError {
  const pv = err instanceof PermissionViolationError ? err : err instanceof Error ? err.cause : undefined;
  assert.ok(pv instanceof PermissionViolationError, `expected a permissions violation, got ${String(err)}`);
  return pv;
}

const isAuthorizationViolation = (err: unknown): boolean =>
  err instanceof AuthorizationError || (err instanceof Error && /authorization violation/i.test(err.message));

/**
 * How a suite gets credentials: today's nkeys listed in auth.conf, or
 * decentralized JWTs (operator mode, full resolver) over TLS.
 */
interface AuthMode {
  name: string;
  /** nats-server options, and the policy server's credentials. */
  setup(root: string): Promise<{ nats: Partial<NatsOptions>; server: NatsCredentialSource }>;
  /** Gives host `hostId` credentials; returns them. */
  addHost(hostId: string): Promise<NatsCredentialSource>;
  /** Credentials of no known identity (a random key, or a JWT from a foreign account). */
  stranger(root: string): Promise<NatsCredentialSource>;
}

const NKEY_MODE = (() => {
  let authDir = '';
  const mode: AuthMode = {
    name: 'nkeys in auth.conf',
    async setup(root) {
      authDir = join(root, 'auth');
      const init = initAuth(authDir);
      return { nats: { include: [authConfigFile(authDir)] }, server: { seedFile: init.serverSeedFile } };
    },
    async addHost(hostId) {
      return { seedFile: addHost(authDir, hostId).seedFile };
    },
    async stranger(root) {
      const file = join(root, 'stranger.nk');
      writeFileSync(file, new TextDecoder().decode(createUser().getSeed()), { mode: 0o600 });
      return { seedFile: file };
    },
  };
  return { mode, dir: () => authDir };
})();

const JWT_MODE = (() => {
  let authDir = '';
  let caFile = '';
  let root = '';
  const mode: AuthMode = {
    name: 'JWTs (operator mode, full resolver) over TLS',
    async setup(r) {
      root = r;
      authDir = join(root, 'jwt');
      const init = await initJwtAuth(authDir);
      const ca = createTestCa(join(root, 'ca'));
      caFile = ca.caFile;
      const cert = issueCert(ca, 'nats', ['localhost', '127.0.0.1']);
      return {
        nats: { tls: { ...cert, caFile: ca.caFile }, extraConfig: renderResolverConfig(authDir, join(root, 'resolver')) },
        server: { credsFile: init.serverCredsFile, caFile },
      };
    },
    async addHost(hostId) {
      const user = newUserKey();
      const jwt = await issueHostJwt(loadJwtIssuer(authDir), hostId, user.getPublicKey());
      const file = join(root, `${hostId}-${user.getPublicKey().slice(0, 8)}.creds`);
      writeFileSync(file, formatCreds(jwt, user), { mode: 0o600 });
      return { credsFile: file, caFile };
    },
    async stranger(r) {
      // A well-formed user JWT for a's subjects, signed by an account nats-server does not know.
      const user = createUserKey();
      const jwt = await encodeUser('host-a', user, createAccountKey(), { pub: { allow: ['>'] }, sub: { allow: ['>'] } });
      const file = join(r, 'stranger.creds');
      writeFileSync(file, fmtCreds(jwt, user), { mode: 0o600 });
      return { credsFile: file, caFile };
    },
  };
  return { mode, dir: () => authDir, ca: () => caFile, root: () => root };
})();

function permissionSuite(mode: AuthMode, modeSpecific: (ctx: SuiteContext) => void): void {
describe(`nats-auth against a real nats-server: ${mode.name}`, () => {
  const root = mkdtempSync(join(tmpdir(), 'cgfence-nats-auth-int-'));
  let nats: NatsServer;
  let serverCreds: NatsCredentialSource;
  const seeds: Record<string, NatsCredentialSource> = {};
  let server: Client;
  let a: Client;
  let b: Client;
  const clients: Client[] = [];

  async function connectAs(src: NatsCredentialSource, hostId?: string): Promise<Client> {
    const nc = await connect({
      servers: nats.url(),
      ...natsConnectOptions({ ...src, hostId }),
      reconnectTimeWait: 200,
      maxReconnectAttempts: 10,
    });
    const c: Client = { nc, statuses: [] };
    void (async () => {
      for await (const s of nc.status()) c.statuses.push(s);
    })();
    clients.push(c);
    return c;
  }

  before(async () => {
    const setup = await mode.setup(root);
    serverCreds = setup.server;
    for (const h of ['a', 'b']) seeds[h] = await mode.addHost(h);
    nats = await NatsServer.start({ dir: join(root, 'nats'), ...setup.nats });
    server = await connectAs(serverCreds);
    a = await connectAs(seeds.a!, 'a');
    b = await connectAs(seeds.b!, 'b');
  });

  after(async () => {
    await Promise.allSettled(clients.map((c) => c.nc.close()));
    await nats?.stop();
    rmSync(root, { recursive: true, force: true });
  });

  it('(a) delivers a host report on its own subject to the server; (b) denies a report under another host id', async () => {
    const got: string[] = [];
    const sub = server.nc.subscribe(SERVER_PATTERNS.report, { queue: SERVER_QUEUE, callback: (_err, m) => void got.push(`${m.subject} ${m.string()}`) });
    await server.nc.flush();
    a.nc.publish(FLEET_SUBJECTS.report('a'), 'first');
    a.nc.publish(FLEET_SUBJECTS.report('b'), 'a pretending to be b');
    a.nc.publish(FLEET_SUBJECTS.report('a'), 'second');
    await a.nc.flush();
    await eventually('both reports of a', () => got.length >= 2);
    await eventually("a's permissions violation", () => violations(a, 'publish', FLEET_SUBJECTS.report('b')).length === 1);
    // One connection, delivered in order: "second" arriving means the spoofed report was dropped, not late.
    await server.nc.flush();
    assert.deepEqual(got, ['cgf.agent.a.report first', 'cgf.agent.a.report second']);
    assert.equal(a.nc.isClosed(), false, 'a violation does not cost the host its connection');
    sub.unsubscribe();
  });

  it("(c) keeps a host out of other hosts' inboxes and the server's subjects; replies reach only the asker", async () => {
    for (const subject of ['_INBOX_b.>', 'cgf.agent.>', '>', 'cgf.fleet.>']) {
      const sub = a.nc.subscribe(subject);
      const closed = await within(`the ${subject} subscription to be refused`, sub.closed);
      assert.ok(closed instanceof PermissionViolationError, `${subject}: ${String(closed)}`);
      assert.equal(closed.operation, 'subscription');
      assert.equal(closed.subject, subject);
      assert.equal(violations(a, 'subscription', subject).length, 1, `${subject} reported on the status stream`);
    }

    const replyTo: string[] = [];
    const sync = server.nc.subscribe(SERVER_PATTERNS.sync, {
      queue: SERVER_QUEUE,
      callback: (_err, m) => {
        replyTo.push(m.reply ?? '');
        m.respond(`document for ${hostOfSubject(m.subject)}`);
      },
    });
    const seenByA: string[] = [];
    const aInbox = a.nc.subscribe(`${FLEET_SUBJECTS.inboxPrefix('a')}.>`, { callback: (_err, m) => void seenByA.push(m.subject) });
    await Promise.all([server.nc.flush(), a.nc.flush()]);

    const reply = await b.nc.request(FLEET_SUBJECTS.sync('b'), '', { timeout: 3000 });
    assert.equal(reply.string(), 'document for b');
    assert.equal(replyTo.length, 1);
    assert.ok(replyTo[0]!.startsWith('_INBOX_b.'), replyTo[0]);
    await a.nc.flush(); // anything routed to a before now has arrived
    assert.deepEqual(seenByA, []);

    // a asking on b's subject is refused at once, and the server never sees it.
    await assert.rejects(a.nc.request(FLEET_SUBJECTS.sync('b'), '', { timeout: 3000 }), (err: unknown) => {
      const pv = violationOf(err);
      assert.deepEqual([pv.operation, pv.subject], ['publish', FLEET_SUBJECTS.sync('b')]);
      return true;
    });
    await server.nc.flush();
    assert.equal(replyTo.length, 1);
    sync.unsubscribe();
    aInbox.unsubscribe();
  });

  it('(c) a host on the default inbox prefix gets no replies: its inbox subscription is refused', async () => {
    const { authenticator, tls } = natsConnectOptions({ ...seeds.a!, hostId: 'a' });
    const nc = await connect({ servers: nats.url(), authenticator, tls });
    clients.push({ nc, statuses: [] });
    const sync = server.nc.subscribe(SERVER_PATTERNS.sync, { callback: (_err, m) => void m.respond('doc') });
    await server.nc.flush();
    await assert.rejects(nc.request(FLEET_SUBJECTS.sync('a'), '', { timeout: 3000 }), (err: unknown) => {
      const pv = violationOf(err);
      assert.equal(pv.operation, 'subscription');
      assert.match(pv.subject, /^_INBOX\./);
      return true;
    });
    sync.unsubscribe();
    await nc.close();
  });

  it('(d) delivers the JetStream broadcast to every host; hosts publish JetStream events only under their id', async () => {
    const jsm = await jetstreamManager(server.nc);
    await jsm.streams.add({ name: FLEET_STREAM.name, subjects: [...FLEET_STREAM.subjects] });
    const got: string[] = [];
    for (const [id, c] of [['a', a], ['b', b]] as const) {
      c.nc.subscribe(FLEET_SUBJECTS.desired, { callback: (_err, m) => void got.push(`${id}: ${m.string()}`) });
      await c.nc.flush();
    }
    const ack = await jetstream(server.nc).publish(FLEET_SUBJECTS.desired, 'doc 1', { msgID: 'doc-1' });
    assert.equal(ack.stream, FLEET_STREAM.name);
    await eventually('the broadcast at both hosts', () => got.length >= 2);
    assert.deepEqual(got.sort(), ['a: doc 1', 'b: doc 1']);

    // Block events (issue 6): a JetStream publish is a publish plus an ack on the host's inbox.
    await jsm.streams.add({ name: 'CGF_EVENTS_PROBE', subjects: ['cgf.events.>'] });
    const evAck = await jetstream(a.nc).publish('cgf.events.a.block', 'blocked github.com', { timeout: 3000 });
    assert.deepEqual([evAck.stream, evAck.seq], ['CGF_EVENTS_PROBE', 1]);
    await assert.rejects(jetstream(a.nc).publish('cgf.events.b.block', 'spoofed', { timeout: 3000 }), (err: unknown) => {
      assert.equal(violationOf(err).subject, 'cgf.events.b.block');
      return true;
    });
    assert.equal((await jsm.streams.info('CGF_EVENTS_PROBE')).state.messages, 1);
    // ...and no JetStream API: a host cannot read other hosts' events or change streams.
    await assert.rejects(jetstreamManager(a.nc, { timeout: 3000 }), (err: unknown) => {
      assert.match(violationOf(err).subject, /^\$JS\.API\./);
      return true;
    });
  });

  modeSpecific({
    root,
    nats: () => nats,
    server: () => server,
    a: () => a,
    b: () => b,
    seeds,
    connectAs,
  });

  it('(f) refuses an unknown key and a connection without credentials', async () => {
    const stranger = await mode.stranger(root);
    await assert.rejects(connectAs(stranger, 'a'), isAuthorizationViolation);
    await assert.rejects(connectAs(stranger), isAuthorizationViolation);
    const { tls } = natsConnectOptions({ ...serverCreds });
    await assert.rejects(connect({ servers: nats.url(), tls }), isAuthorizationViolation);
  });
});
}

interface SuiteContext {
  root: string;
  nats: () => NatsServer;
  server: () => Client;
  a: () => Client;
  b: () => Client;
  seeds: Record<string, NatsCredentialSource>;
  connectAs: (src: NatsCredentialSource, hostId?: string) => Promise<Client>;
}

permissionSuite(NKEY_MODE.mode, ({ root, nats: natsOf, server: serverOf, a: aOf, b: bOf, seeds, connectAs }) => {
  it('(e) takes a host added live after a reload; rotation and removal lock the old key out at the reload', async () => {
    const [server, nats, a, b] = [serverOf(), natsOf(), aOf(), bOf()];
    const reports: string[] = [];
    const sub = server.nc.subscribe(SERVER_PATTERNS.report, { callback: (_err, m) => void reports.push(m.subject) });
    await server.nc.flush();

    const c = addHost(NKEY_MODE.dir(), 'c');
    await assert.rejects(connectAs({ seedFile: c.seedFile }, 'c'), isAuthorizationViolation, 'a key nats-server has not loaded yet');
    await nats.reload();
    const cc = await connectAs({ seedFile: c.seedFile }, 'c');
    cc.nc.publish(FLEET_SUBJECTS.report('c'), 'hello');
    await cc.nc.flush();
    await eventually("c's report", () => reports.includes(FLEET_SUBJECTS.report('c')));

    // Rotation: the old key stops working; the open connection re-reads its seed file and comes back with the new one.
    const oldSeed = join(root, 'c-old.nk');
    copyFileSync(c.seedFile, oldSeed);
    const rotated = addHost(NKEY_MODE.dir(), 'c', { rotate: true });
    assert.notEqual(rotated.publicKey, c.publicKey);
    await nats.reload();
    await assert.rejects(connectAs({ seedFile: oldSeed }, 'c'), isAuthorizationViolation, 'the old key after rotation');
    await eventually('c to be disconnected and reconnect with its new key', () =>
      cc.statuses.some((s) => s.type === 'disconnect') && cc.statuses.some((s) => s.type === 'reconnect'));
    reports.length = 0;
    cc.nc.publish(FLEET_SUBJECTS.report('c'), 'after rotation');
    await cc.nc.flush();
    await eventually("c's report after rotation", () => reports.includes(FLEET_SUBJECTS.report('c')));

    // Removal: b's open connection is closed and b cannot come back.
    const bSeed = join(root, 'b-old.nk');
    copyFileSync(seeds.b!.seedFile!, bSeed);
    assert.equal(removeHost(NKEY_MODE.dir(), 'b'), true);
    await nats.reload();
    await within("b's connection to be closed", b.nc.closed(), 10_000);
    await assert.rejects(connectAs({ seedFile: bSeed }, 'b'), isAuthorizationViolation, 'a removed host');
    // a is untouched by all of it
    assert.equal(a.nc.isClosed(), false);
    sub.unsubscribe();
  });
});

permissionSuite(JWT_MODE.mode, (ctx) => {
  it('(e) takes a host issued live with no reload; revocation disconnects it at once and refuses it after', async () => {
    const server = ctx.server();
    const reports: string[] = [];
    const sub = server.nc.subscribe(SERVER_PATTERNS.report, { callback: (_err, m) => void reports.push(m.subject) });
    await server.nc.flush();
    const reloadsBefore = readLog(ctx.nats()).split('Reloaded server configuration').length;

    const c = await JWT_MODE.mode.addHost('c');
    const cc = await ctx.connectAs(c, 'c');
    cc.nc.publish(FLEET_SUBJECTS.report('c'), 'hello');
    cc.nc.publish(FLEET_SUBJECTS.report('a'), 'c pretending to be a');
    await cc.nc.flush();
    await eventually("c's report", () => reports.includes(FLEET_SUBJECTS.report('c')));
    await eventually("c's permissions violation", () => violations(cc, 'publish', FLEET_SUBJECTS.report('a')).length === 1);

    // Revocation, as the policy server does it: the account JWT with b's key revoked, pushed through the system account.
    const issuer = loadJwtIssuer(JWT_MODE.dir());
    const sysNc = await connect({ servers: ctx.nats().url(), ...natsConnectOptions({ credsFile: join(JWT_MODE.dir(), JWT_FILES.sysCreds), caFile: JWT_MODE.ca() }) });
    const bKey = publicKeyOfCreds(ctx.seeds.b!.credsFile!);
    const started = Date.now();
    await revokeUsers(sysNc, issuer, [bKey], new Date());
    await within("b's connection to be closed", ctx.b().nc.closed(), 10_000);
    assert.ok(Date.now() - started < 5000, `disconnected within seconds (${Date.now() - started} ms)`);
    await assert.rejects(ctx.connectAs(ctx.seeds.b!, 'b'), isAuthorizationViolation, 'a revoked host');
    // A later revocation keeps the earlier ones (the account JWT is read back, not rebuilt).
    const d = await JWT_MODE.mode.addHost('d');
    await ctx.connectAs(d, 'd');
    await revokeUsers(sysNc, issuer, [publicKeyOfCreds(d.credsFile!)], new Date());
    await assert.rejects(ctx.connectAs(ctx.seeds.b!, 'b'), isAuthorizationViolation, 'b stays revoked');
    await assert.rejects(ctx.connectAs(d, 'd'), isAuthorizationViolation, 'd revoked too');
    // Re-enrolled with a new key, b is welcome again.
    const b2 = await JWT_MODE.mode.addHost('b');
    const bb = await ctx.connectAs(b2, 'b');
    assert.equal(bb.nc.isClosed(), false);
    // a and c untouched, and nats-server was never reloaded.
    assert.equal(ctx.a().nc.isClosed(), false);
    assert.equal(cc.nc.isClosed(), false);
    assert.equal(readLog(ctx.nats()).split('Reloaded server configuration').length, reloadsBefore);
    await sysNc.close();
    sub.unsubscribe();
  });

  it('(g) a host cannot pass off a JWT it signed itself, nor reach the system account', async () => {
    // c's own seed signing a JWT with wide permissions: the issuer is not the account, so it is refused.
    const self = newUserKey();
    const forged = await encodeUser('host-x', self, createAccountKey(), { pub: { allow: ['>'] }, sub: { allow: ['>'] } }, {});
    const file = join(ctx.root, 'forged.creds');
    writeFileSync(file, fmtCreds(forged, self), { mode: 0o600 });
    await assert.rejects(ctx.connectAs({ credsFile: file, caFile: JWT_MODE.ca() }), isAuthorizationViolation);
    const a = ctx.a();
    const sub = a.nc.subscribe('$SYS.>');
    const closed = await within('the $SYS subscription to be refused', sub.closed);
    assert.ok(closed instanceof PermissionViolationError, String(closed));
  });

  it('(h) refuses a client that does not use TLS', async () => {
    const { authenticator } = natsConnectOptions({ ...ctx.seeds.a!, hostId: 'a' });
    await assert.rejects(connect({ servers: ctx.nats().url().replace('tls://', 'nats://'), authenticator, tls: null, maxReconnectAttempts: 0 }));
  });
});

function readLog(nats: NatsServer): string {
  try {
    return readFileSync(join(nats.dir, 'nats.log'), 'latin1');
  } catch {
    return '';
  }
}

function publicKeyOfCreds(file: string): string {
  const seed = /^SU[A-Z2-7]{56}$/m.exec(readFileSync(file, 'utf8'))?.[0];
  assert.ok(seed, `${file} holds a user seed`);
  return fromSeed(new TextEncoder().encode(seed)).getPublicKey();
}

