// Account signing key rotation and the nkeys → JWT migration against a real
// nats-server (JWT authorization, full resolver): a host stays connected
// across the rotation, the revocations made before it survive it, and the
// old key is refused once removed.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AuthorizationError, connect, type NatsConnection, type Status } from '@nats-io/transport-node';
import { NatsServer, waitFor } from '@cgfence/devservices';
import { FLEET_SUBJECTS } from '@cgfence/proto';
import { addHost, initAuth } from './auth-dir';
import { natsConnectOptions } from './connect';
import { decodeJwt, formatCreds, initJwtAuth, issueHostJwt, JWT_FILES, loadJwtIssuer, newUserKey, renderResolverConfig } from './jwt-dir';
import { migrateNkeysHosts } from './jwt-migrate';
import { revokeUsers } from './jwt-push';
import { accountSigningKeys, beginAccountKeyRotation, credsIdentity, finishAccountKeyRotation, replaceCredsJwt, ROTATION_FILES } from './jwt-rotate';

const isAuthError = (err: unknown): boolean => err instanceof AuthorizationError || (err instanceof Error && /authorization violation|authentication/i.test(err.message));

describe('account signing key rotation and nkeys migration against a real nats-server', () => {
  let root: string;
  let dir: string;
  let nats: NatsServer;
  let sys: NatsConnection;
  const open: NatsConnection[] = [];

  const hostCreds = async (hostId: string): Promise<string> => {
    const user = newUserKey();
    const file = join(root, `${hostId}.creds`);
    writeFileSync(file, formatCreds(await issueHostJwt(loadJwtIssuer(dir), hostId, user.getPublicKey()), user), { mode: 0o600 });
    return file;
  };
  const connectAs = async (credsFile: string, hostId?: string, extra: object = {}): Promise<NatsConnection> => {
    const nc = await connect({ servers: nats.url(), ...natsConnectOptions({ credsFile, hostId }), reconnectTimeWait: 100, maxReconnectAttempts: -1, ...extra });
    open.push(nc);
    return nc;
  };
  const once = (credsFile: string, hostId?: string) =>
    connect({ servers: nats.url(), ...natsConnectOptions({ credsFile, hostId }), maxReconnectAttempts: 0 }).then((nc) => nc.close());

  before(async () => {
    root = mkdtempSync(join(tmpdir(), 'cgfence-rotate-int-'));
    dir = join(root, 'jwt');
    await initJwtAuth(dir);
    nats = await NatsServer.start({ dir: join(root, 'nats'), extraConfig: renderResolverConfig(dir, join(root, 'resolver')) });
    sys = await connect({ servers: nats.url(), ...natsConnectOptions({ credsFile: join(dir, JWT_FILES.sysCreds) }) });
  });

  after(async () => {
    await Promise.allSettled([...open, sys].map((nc) => nc?.close()));
    await nats?.stop();
    rmSync(root, { recursive: true, force: true });
  });

  it('keeps a host connected across a rotation, keeps revocations, and refuses the old key once removed', async () => {
    const aFile = await hostCreds('a');
    const staleFile = await hostCreds('stale');
    const revokedFile = await hostCreds('revoked');
    const a = await connectAs(aFile, 'a');
    const aStatus: Status[] = [];
    void (async () => {
      for await (const s of a.status()) aStatus.push(s);
    })();
    const oldKey = loadJwtIssuer(dir).accountSigning.getPublicKey();
    await revokeUsers(sys, loadJwtIssuer(dir), [(await credsIdentity(revokedFile)).user], new Date());
    await assert.rejects(once(revokedFile, 'revoked'), isAuthError);

    const begun = await beginAccountKeyRotation(dir, sys);
    assert.equal(begun.previousKey, oldKey);
    assert.notEqual(begun.newKey, oldKey);
    assert.deepEqual(new Set(begun.signingKeys), new Set([oldKey, begun.newKey]));
    assert.equal(loadJwtIssuer(dir).accountSigning.getPublicKey(), begun.newKey);
    assert.equal(statSync(join(dir, ROTATION_FILES.retiringSeed)).mode & 0o777, 0o600);
    // Both keys are good now: the host on the old one, a new host on the new one, the server on its re-issued creds.
    assert.equal(a.isClosed(), false);
    await once(staleFile, 'stale');
    const bFile = await hostCreds('b');
    assert.equal((await credsIdentity(bFile)).issuer, begun.newKey);
    await once(bFile, 'b');
    assert.equal(decodeJwt(readFileSync(join(dir, JWT_FILES.serverCreds), 'utf8').split('\n')[1]!).iss, begun.newKey);
    await once(join(dir, JWT_FILES.serverCreds));
    // The revocation made before the rotation still holds.
    await assert.rejects(once(revokedFile, 'revoked'), isAuthError);
    await assert.rejects(beginAccountKeyRotation(dir, sys), /a rotation is under way/);

    // a is still on the old key: finishing is refused, naming it.
    await assert.rejects(finishAccountKeyRotation(dir, sys), /1 connection\(s\) still use a JWT signed by the old key: cgfence-agent-a/);
    // a gets its renewed JWT (as the policy server hands it at a sync) and reconnects with it.
    await assert.rejects(replaceCredsJwt(aFile, await issueHostJwt(loadJwtIssuer(dir), 'b', newUserKey().getPublicKey())), /not this host's key/);
    await replaceCredsJwt(aFile, await issueHostJwt(loadJwtIssuer(dir), 'a', (await credsIdentity(aFile)).user));
    assert.equal(statSync(aFile).mode & 0o777, 0o600);
    assert.equal((await credsIdentity(aFile)).issuer, begun.newKey);
    await a.reconnect();
    await waitFor('a reconnected', () => aStatus.some((s) => s.type === 'reconnect'), 10_000);

    const finished = await finishAccountKeyRotation(dir, sys);
    assert.equal(finished.removedKey, oldKey);
    assert.deepEqual(finished.signingKeys, [begun.newKey]);
    assert.deepEqual(accountSigningKeys(readFileSync(join(dir, JWT_FILES.accountJwt), 'utf8').trim()), [begun.newKey]);
    assert.equal(existsSync(join(dir, ROTATION_FILES.retiringSeed)), false);
    // a stays on and works; a JWT of the old key is refused; the revocation still holds.
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(a.isClosed(), false);
    a.publish(FLEET_SUBJECTS.report('a'), '{}');
    await a.flush();
    await assert.rejects(once(staleFile, 'stale'), isAuthError);
    await assert.rejects(once(revokedFile, 'revoked'), isAuthError);
    await once(bFile, 'b');
    await assert.rejects(finishAccountKeyRotation(dir, sys), /no rotation is under way/);
  });

  it('finish --force cuts off the connections still on the old key', async () => {
    const cFile = await hostCreds('c');
    const c = await connectAs(cFile, 'c', { maxReconnectAttempts: 0 });
    await beginAccountKeyRotation(dir, sys);
    const r = await finishAccountKeyRotation(dir, sys, { force: true });
    // a (renewed in the first rotation) is on the key now retired too.
    assert.deepEqual(r.stillOnOldKey.map((x) => x.name).sort(), ['cgfence-agent-a', 'cgfence-agent-c']);
    await waitFor('c disconnected', () => c.isClosed(), 10_000);
  });

  it('migrates nkeys hosts: each keeps its key and connects with a JWT for it, with the same permissions', async () => {
    const nkeys = join(root, 'nkeys');
    initAuth(nkeys);
    const h1 = addHost(nkeys, 'web-1');
    addHost(nkeys, 'web-2');
    const out = join(root, 'migrated');
    const migrated = await migrateNkeysHosts(nkeys, dir, out);
    assert.deepEqual(migrated.map((m) => m.hostId), ['web-1', 'web-2']);
    assert.equal(migrated[0]!.publicKey, h1.publicKey);
    assert.equal(statSync(out).mode & 0o777, 0o700);
    assert.equal(statSync(migrated[0]!.credsFile).mode & 0o777, 0o600);
    assert.deepEqual(await credsIdentity(migrated[0]!.credsFile), { user: h1.publicKey, issuer: loadJwtIssuer(dir).accountSigning.getPublicKey() });
    const nc = await connectAs(migrated[0]!.credsFile, 'web-1', { maxReconnectAttempts: 0 });
    const errors: Status[] = [];
    void (async () => {
      for await (const s of nc.status()) errors.push(s);
    })();
    nc.publish(FLEET_SUBJECTS.report('web-2'), 'as another host');
    await nc.flush();
    await waitFor('the permissions violation', () => errors.some((s) => s.type === 'error' && /permissions violation/i.test(String((s as { error?: Error }).error?.message))), 5000);
  });
});
