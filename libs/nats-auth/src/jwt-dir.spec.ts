import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Account, User } from '@nats-io/jwt';
import { NatsAuthError } from './auth-dir';
import { natsConnectOptions, readCreds } from './connect';
import { createAccount } from '@nats-io/nkeys';
import { decodeJwt, initJwtAuth, issueHostJwt, JWT_FILES, loadJwtIssuer, nativeSigning, newUserKey, revokedAccountJwt } from './jwt-dir';
import { hostPermissions, InvalidHostIdError } from './render';

const mode = (file: string): number => statSync(file).mode & 0o777;

describe('nats-auth: the JWT directory', () => {
  const root = mkdtempSync(join(tmpdir(), 'cgfence-jwt-dir-'));
  after(() => rmSync(root, { recursive: true, force: true }));

  it('init creates private keys and creds once; a second init keeps every key and the revocations', async () => {
    const dir = join(root, 'a');
    const first = await initJwtAuth(dir);
    assert.equal(first.created, true);
    assert.equal(mode(dir), 0o700);
    for (const f of ['operatorSeed', 'operatorSigningSeed', 'accountSeed', 'accountSigningSeed', 'sysAccountSeed', 'serverCreds', 'sysCreds'] as const) {
      assert.equal(mode(join(dir, JWT_FILES[f])), 0o600, f);
    }
    const serverCreds = readFileSync(first.serverCredsFile, 'utf8');
    // A revocation recorded in account.jwt survives a re-init.
    const issuer = loadJwtIssuer(dir);
    const revoked = newUserKey().getPublicKey();
    const next = await revokedAccountJwt(issuer, readFileSync(join(dir, JWT_FILES.accountJwt), 'utf8').trim(), [revoked], new Date());
    writeFileSync(join(dir, JWT_FILES.accountJwt), `${next}\n`);
    const again = await initJwtAuth(dir);
    assert.equal(again.created, false);
    assert.deepEqual([again.operatorPublicKey, again.accountPublicKey], [first.operatorPublicKey, first.accountPublicKey]);
    assert.equal(/^SU[A-Z2-7]{56}$/m.exec(readFileSync(again.serverCredsFile, 'utf8'))?.[0], /^SU[A-Z2-7]{56}$/m.exec(serverCreds)?.[0], 'the server keeps its key');
    const account = decodeJwt<Account>(readFileSync(join(dir, JWT_FILES.accountJwt), 'utf8').trim());
    assert.ok(account.nats.revocations?.[revoked] !== undefined);
    assert.equal(account.nats.limits?.conn, -1, 'no account-wide connection cap (a missing limit is 0 for nats-server)');
    assert.equal(account.nats.limits?.disk_storage, -1, 'JetStream enabled');
    assert.equal(readCreds(again.serverCredsFile).length > 0, true);
  });

  it("issues a host exactly today's per-host permissions, for its own key, signed by the account signing key", async () => {
    const dir = join(root, 'b');
    const init = await initJwtAuth(dir);
    const issuer = loadJwtIssuer(dir);
    const key = newUserKey();
    const claims = decodeJwt<User>(await issueHostJwt(issuer, 'web-1', key.getPublicKey()));
    assert.equal(claims.sub, key.getPublicKey());
    assert.equal(claims.iss, issuer.accountSigning.getPublicKey());
    assert.equal(claims.nats.issuer_account, init.accountPublicKey);
    const p = hostPermissions('web-1');
    assert.deepEqual(claims.nats.pub, { allow: p.publish });
    assert.deepEqual(claims.nats.sub, { allow: p.subscribe });
    await assert.rejects(issueHostJwt(issuer, 'Web.1', key.getPublicKey()), InvalidHostIdError);
    await assert.rejects(issueHostJwt(issuer, 'web-1', 'UNOPE'), NatsAuthError);
    await assert.rejects(issueHostJwt(issuer, 'web-1', init.accountPublicKey), NatsAuthError, 'an account key is not a user key');
  });

  it('signs through node:crypto with the very bytes nkeys.js would, and JWTs verify alike', async () => {
    const kp = createAccount();
    const fast = nativeSigning(kp);
    assert.notEqual(fast, kp, 'the raw seed is reachable (else the fallback is used)');
    assert.equal(fast.getPublicKey(), kp.getPublicKey());
    for (const text of ['', 'a', 'x'.repeat(1000)]) {
      const data = new TextEncoder().encode(text);
      assert.deepEqual(fast.sign(data), kp.sign(data));
      assert.equal(kp.verify(data, fast.sign(data)), true);
    }
    assert.deepEqual(fast.getPrivateKey(), kp.getPrivateKey());
    assert.deepEqual(fast.getSeed(), kp.getSeed(), 'everything else is the key pair itself');
  });

  it('names a directory never initialised, a damaged seed, and a creds file that is not one', async () => {
    assert.throws(() => loadJwtIssuer(join(root, 'none')), /cgfence nats init-jwt/);
    const dir = join(root, 'c');
    await initJwtAuth(dir);
    writeFileSync(join(dir, JWT_FILES.accountSigningSeed), 'garbage\n');
    assert.throws(() => loadJwtIssuer(dir), (e: unknown) => e instanceof NatsAuthError && e.message.includes(JWT_FILES.accountSigningSeed));
    const bad = join(root, 'bad.creds');
    writeFileSync(bad, 'not creds');
    assert.throws(() => natsConnectOptions({ credsFile: bad }), /is not a NATS creds file/);
    assert.throws(() => natsConnectOptions({ credsFile: bad, seedFile: bad }), /not both/);
    assert.throws(() => natsConnectOptions({}), /no NATS credentials given/);
    assert.throws(() => natsConnectOptions({ credsFile: join(dir, JWT_FILES.serverCreds), caFile: bad }), /holds no PEM certificate/);
  });
});
