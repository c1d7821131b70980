// JWT renewal during an account signing key rotation (issue 17), against a
// real nats-server and PostgreSQL: only a server started after the rotation
// began renews, only from the retiring key to the new one, only for a key
// enrolled for that host and not revoked.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from '@nats-io/transport-node';
import { NatsServer, waitFor } from '@cgfence/devservices';
import { beginAccountKeyRotation, decodeJwt, initJwtAuth, JWT_FILES, natsConnectOptions, newUserKey, renderResolverConfig } from '@cgfence/nats-auth';
import { TestPolicyServer } from '../testing/test-server';
import { HostCredentialsService } from './host-credentials.service';

const auth = (t: string) => ({ Authorization: `Bearer ${t}` });

describe(HostCredentialsService.name, () => {
  let dir: string;
  let jwtDir: string;
  let nats: NatsServer;
  let env: TestPolicyServer;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'cgfence-renew-int-'));
    jwtDir = join(dir, 'jwt');
    const init = await initJwtAuth(jwtDir);
    nats = await NatsServer.start({ dir: join(dir, 'nats'), extraConfig: renderResolverConfig(jwtDir, join(dir, 'resolver')) });
    env = await TestPolicyServer.start('renew_int', { natsUrl: nats.url(), env: { CGFENCE_NATS_CREDS: init.serverCredsFile, CGFENCE_NATS_JWT_DIR: jwtDir } });
    await waitFor('NATS connected', async () => (await env.http.get('/ready')).body.nats === 'connected', 30_000);
  });

  after(async () => {
    await env?.stop();
    await nats?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('renews from the retiring key to the new one, for the host\'s own enrolled key only, and never once it is removed', async () => {
    const operator = await env.tokenFor('operator');
    const token = ((await env.http.post('/enroll-tokens').set(auth(operator)).send({ uses: 2 })).body as { secret: string }).secret;
    const key = newUserKey().getPublicKey();
    const enrolled = await env.http.post('/enroll').send({ token, hostId: 'web-1', natsPublicKey: key, hostname: 'web-1' });
    assert.equal(enrolled.status, 201, JSON.stringify(enrolled.body));
    const oldIssuer = decodeJwt((enrolled.body as { natsJwt: string }).natsJwt).iss;
    let sut = env.get(HostCredentialsService);
    assert.equal(await sut.renewed('web-1', { user: key, issuer: oldIssuer }), undefined, 'no rotation under way');

    const sys = await connect({ servers: nats.url(), ...natsConnectOptions({ credsFile: join(jwtDir, JWT_FILES.sysCreds) }) });
    const { newKey } = await beginAccountKeyRotation(jwtDir, sys);
    await sys.close();
    assert.equal(await sut.renewed('web-1', { user: key, issuer: oldIssuer }), undefined, 'a server started before the rotation renews nothing');

    await env.restart();
    sut = env.get(HostCredentialsService);
    const jwt = await sut.renewed('web-1', { user: key, issuer: oldIssuer });
    assert.ok(jwt);
    assert.deepEqual([decodeJwt(jwt).sub, decodeJwt(jwt).iss], [key, newKey]);
    assert.equal(await sut.renewed('web-1', { user: key, issuer: newKey }), undefined, 'already on the new key');
    assert.equal(await sut.renewed('web-1', { user: newUserKey().getPublicKey(), issuer: oldIssuer }), undefined, 'a key not enrolled for the host');
    assert.equal(await sut.renewed('web-2', { user: key, issuer: oldIssuer }), undefined, 'another host id');
    assert.equal((await env.http.delete('/hosts/web-1').set(auth(operator))).status, 200);
    assert.equal(await sut.renewed('web-1', { user: key, issuer: oldIssuer }), undefined, 'a removed host');
  });
});
