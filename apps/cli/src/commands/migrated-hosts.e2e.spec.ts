// Hosts migrated from nkeys are first-class (issue 17): `cgfence nats
// migrate-from-nkeys` records each host's key with the policy server, which
// then renews its JWT at an account signing key rotation and revokes it at
// `cgfence hosts remove`, like an enrolled host's. And the rotation takes the
// lock host removals take: while a removal holds it, the rotation waits and
// the account JWT is not touched. Real nats-server (JWT, full resolver), real
// PostgreSQL, the real policy server and the real CLI.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from 'pg';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { freePort, ManagedProcess, NatsServer, PostgresServer, startPolicyServer, waitFor } from '@cgfence/devservices';
import {
  ACCOUNT_JWT_LOCK,
  accountSigningKeys,
  credsIdentity,
  decodeJwt,
  JWT_FILES,
  loadJwtIssuer,
  lookupAccountJwt,
  natsConnectOptions,
  replaceCredsJwt,
} from '@cgfence/nats-auth';
import { FLEET_SUBJECTS } from '@cgfence/proto';

const BIN = join(__dirname, '..', '..', '..', 'bin', 'cgfence');
const POLICY_SERVER = join(__dirname, '..', '..', '..', '..', 'policy-server', 'dist', 'src', 'main.js');

interface Migrated {
  hostId: string;
  publicKey: string;
  credsFile: string;
  registered: boolean;
}

describe('hosts migrated from nkeys: renewed at a key rotation, revoked by hosts remove; the rotation waits for removals', () => {
  const root = mkdtempSync(join(tmpdir(), 'cgfence-migrated-'));
  const nkeysDir = join(root, 'nkeys');
  const jwtDir = join(root, 'jwt');
  let nats: NatsServer;
  let pg: PostgresServer;
  let server: ManagedProcess | undefined;
  let serverOpts: Parameters<typeof startPolicyServer>[0];
  let api: string;
  let databaseUrl: string;
  let tokenFile: string;
  let migrated: Migrated[] = [];
  const conns = new Map<string, NatsConnection>();

  const cgfence = (args: string[]) => {
    const r = spawnSync(process.execPath, [BIN, ...args], { env: { ...process.env, CGFENCE_DATABASE_URL: '' }, encoding: 'utf8', timeout: 60_000 });
    return { code: r.status, out: r.stdout, err: r.stderr };
  };
  const admin = (args: string[]) => cgfence(['--server', api, '--token-file', tokenFile, ...args]);
  const natsArgs = () => ['--dir', jwtDir, '--nats-url', nats.url()];

  const sys = async <T>(fn: (nc: NatsConnection) => Promise<T>): Promise<T> => {
    const nc = await connect({ servers: nats.url(), ...natsConnectOptions({ credsFile: join(jwtDir, JWT_FILES.sysCreds) }) });
    try {
      return await fn(nc);
    } finally {
      await nc.close();
    }
  };
  const signingKeysNow = () => sys(async (nc) => accountSigningKeys(await lookupAccountJwt(nc, loadJwtIssuer(jwtDir).accountPublicKey)));

  /** A sync as the host sends it (NestJS's packet on its own subject); the reply's natsJwt, if any. */
  const syncAs = async (h: Migrated): Promise<string | undefined> => {
    const nc = conns.get(h.hostId)!;
    const subject = FLEET_SUBJECTS.sync(h.hostId);
    const data = { hostId: h.hostId, seenRevision: null, nats: await credsIdentity(h.credsFile) };
    const reply = await nc.request(subject, JSON.stringify({ pattern: subject, data, id: `sync-${h.hostId}` }), { timeout: 5000 });
    const body = reply.json<{ response?: { natsJwt?: string }; err?: unknown }>();
    assert.equal(body.err, undefined, JSON.stringify(body));
    return body.response?.natsJwt;
  };

  const connectHost = async (h: Migrated): Promise<NatsConnection> => {
    const nc = await connect({ servers: nats.url(), ...natsConnectOptions({ credsFile: h.credsFile, hostId: h.hostId }), maxReconnectAttempts: -1, reconnectTimeWait: 200 });
    conns.set(h.hostId, nc);
    return nc;
  };

  before(async () => {
    for (const args of [
      ['nats', 'init', '--dir', nkeysDir, '--nats-conf', join(root, 'old-nats', 'nats.conf')],
      ['nats', 'add-host', 'legacy-1', '--dir', nkeysDir],
      ['nats', 'add-host', 'legacy-2', '--dir', nkeysDir],
      ['nats', 'init-jwt', '--dir', jwtDir, '--resolver-dir', join(root, 'resolver'), '--nats-conf', join(root, 'nats', 'nats.conf')],
    ]) {
      const r = cgfence(args);
      assert.equal(r.code, 0, `${args.join(' ')}: ${r.err}`);
    }
    nats = await NatsServer.start({ dir: join(root, 'nats'), include: [join(jwtDir, 'resolver.conf')] });
    pg = await PostgresServer.start({ dir: join(root, 'pg'), fast: true });
    databaseUrl = await pg.createDatabase('migrated_e2e');
    const port = await freePort();
    api = `http://127.0.0.1:${port}`;
    serverOpts = {
      main: POLICY_SERVER,
      port,
      nats: true,
      log: join(root, 'server.log'),
      env: {
        ...process.env,
        CGFENCE_DATABASE_URL: databaseUrl,
        CGFENCE_HTTP_HOST: '127.0.0.1',
        CGFENCE_STATE_DIR: join(root, 'server'),
        CGFENCE_NATS_URL: nats.url(),
        CGFENCE_NATS_CREDS: join(jwtDir, JWT_FILES.serverCreds),
        CGFENCE_NATS_JWT_DIR: jwtDir,
        CGFENCE_LOG_LEVEL: 'warn',
      },
    };
    server = await startPolicyServer(serverOpts);
    tokenFile = join(root, 'server', 'admin-token');
  });

  after(async () => {
    for (const nc of conns.values()) await nc.close().catch(() => undefined);
    await server?.stop();
    await nats?.stop();
    await pg?.stop();
    rmSync(root, { recursive: true, force: true });
  });

  it('migrate-from-nkeys records each key with the policy server; the hosts connect with their creds', async () => {
    const r = admin(['--json', 'nats', 'migrate-from-nkeys', '--dir', nkeysDir, '--jwt-dir', jwtDir, '--out', join(root, 'out')]);
    assert.equal(r.code, 0, r.err);
    migrated = (JSON.parse(r.out) as Migrated[]).sort((a, b) => a.hostId.localeCompare(b.hostId));
    assert.deepEqual(migrated.map((h) => [h.hostId, h.registered]), [['legacy-1', true], ['legacy-2', true]]);
    // Run again: the same keys, nothing new recorded, still fine.
    const again = admin(['--json', 'nats', 'migrate-from-nkeys', '--dir', nkeysDir, '--jwt-dir', jwtDir, '--out', join(root, 'out')]);
    assert.equal(again.code, 0, again.err);
    const recorded = await new Client({ connectionString: databaseUrl });
    await recorded.connect();
    try {
      const rows = (await recorded.query(`select stream_id, data->>'natsPublicKey' as key from events where event_type = 'HostNatsKeyAdopted' order by stream_id`)).rows as { stream_id: string; key: string }[];
      assert.deepEqual(rows.map((x) => [x.stream_id, x.key]), migrated.map((h) => [`host-${h.hostId}`, h.publicKey]));
    } finally {
      await recorded.end();
    }
    for (const h of migrated) await connectHost(h);
  });

  it('refuses a bad key or host id (400) and a viewer (403)', async () => {
    const post = (path: string, body: unknown, token = readFileSync(tokenFile, 'utf8').trim()) =>
      fetch(`${api}/${path}`, { method: 'POST', headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
    assert.equal((await post('hosts/legacy-1/nats-keys', { natsPublicKey: 'nope' })).status, 400);
    assert.equal((await post('hosts/Legacy.1/nats-keys', { natsPublicKey: migrated[0]!.publicKey })).status, 400);
    const viewer = admin(['--json', 'token', 'create', 'watcher', '--role', 'viewer']);
    assert.equal(viewer.code, 0, viewer.err);
    const secret = (JSON.parse(viewer.out) as { secret: string }).secret;
    assert.equal((await post('hosts/legacy-1/nats-keys', { natsPublicKey: migrated[0]!.publicKey }, secret)).status, 403);
  });

  it('renews their JWTs at an account key rotation; --finish waits while a removal holds the account JWT lock, then removes the old key', { timeout: 120_000 }, async () => {
    const begun = cgfence(['--json', 'nats', 'rotate-account-key', ...natsArgs(), '--database-url', databaseUrl]);
    assert.equal(begun.code, 0, begun.err);
    const { previousKey, newKey } = JSON.parse(begun.out) as { previousKey: string; newKey: string };
    // Policy servers restarted on the new key renew a migrated host's JWT at its sync, as an enrolled host's.
    await server!.stop();
    server = await startPolicyServer(serverOpts);
    for (const h of migrated) {
      assert.equal((await credsIdentity(h.credsFile)).issuer, previousKey);
      let jwt: string | undefined;
      await waitFor(`a renewed JWT for ${h.hostId}`, async () => (jwt = await syncAs(h).catch(() => undefined)) !== undefined, 30_000);
      const claims = decodeJwt<unknown>(jwt!);
      assert.deepEqual([claims.sub, claims.iss], [h.publicKey, newKey], h.hostId);
      await replaceCredsJwt(h.credsFile, jwt!);
      await conns.get(h.hostId)!.reconnect();
    }

    // A removal on a policy server holds the account JWT lock (here, this session holds it as one would).
    const holder = new Client({ connectionString: databaseUrl });
    await holder.connect();
    try {
      await holder.query('select pg_advisory_lock(hashtext($1))', [ACCOUNT_JWT_LOCK]);
      const finishing = spawn(process.execPath, [BIN, 'nats', 'rotate-account-key', '--finish', ...natsArgs(), '--database-url', databaseUrl], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stderr = '';
      finishing.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      const exited = new Promise<number | null>((resolve) => finishing.once('exit', (code) => resolve(code)));
      await waitFor('the rotation to wait for the lock', () => stderr.includes('waiting for the account JWT lock'), 20_000);
      await new Promise((r) => setTimeout(r, 1500));
      assert.equal(finishing.exitCode, null, `it went on without the lock: ${stderr}`);
      assert.deepEqual((await signingKeysNow()).sort(), [previousKey, newKey].sort(), 'the account JWT is untouched while the lock is held');
      await holder.query('select pg_advisory_unlock(hashtext($1))', [ACCOUNT_JWT_LOCK]);
      assert.equal(await exited, 0, stderr);
    } finally {
      await holder.end();
    }
    assert.deepEqual(await signingKeysNow(), [newKey]);
    for (const h of migrated) assert.equal(conns.get(h.hostId)!.isClosed(), false, `${h.hostId} stays connected on its renewed JWT`);
  });

  it('hosts remove revokes a migrated host: disconnected at once and refused after; the other one stays', { timeout: 60_000 }, async () => {
    const [one, two] = migrated as [Migrated, Migrated];
    const started = Date.now();
    const r = admin(['--json', 'hosts', 'remove', one.hostId]);
    assert.equal(r.code, 0, r.err);
    assert.deepEqual((JSON.parse(r.out) as { revokedKeys: string[] }).revokedKeys, [one.publicKey]);
    await conns.get(one.hostId)!.closed();
    assert.ok(Date.now() - started < 10_000, `disconnected after ${Date.now() - started} ms`);
    await assert.rejects(
      connect({ servers: nats.url(), ...natsConnectOptions({ credsFile: one.credsFile, hostId: one.hostId }), maxReconnectAttempts: 0 }),
      (err: Error) => /authorization violation/i.test(err.message),
    );
    // Its key cannot be recorded again (a removal is for good); the other host is untouched.
    const again = admin(['nats', 'migrate-from-nkeys', '--dir', nkeysDir, '--jwt-dir', jwtDir, '--out', join(root, 'out')]);
    assert.equal(again.code, 1);
    assert.match(again.err, /key of legacy-1 was not recorded with the policy server.*revoked/);
    assert.equal(conns.get(two.hostId)!.isClosed(), false);
    assert.equal(await syncAs(two), undefined, 'nothing to renew any more, and it still syncs');
  });
});
