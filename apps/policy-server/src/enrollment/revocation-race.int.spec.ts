// Two policy server replicas removing hosts at the same moment (issue 17): a
// revocation reads the account JWT from NATS, adds keys and pushes it back,
// so unguarded, one replica's push can overwrite the other's. They take turns
// on a database lock; every removed host's key ends up revoked.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import supertest from 'supertest';
import { connect } from '@nats-io/transport-node';
import { NatsServer, waitFor } from '@cgfence/devservices';
import { decodeJwt, initJwtAuth, JWT_FILES, loadJwtIssuer, lookupAccountJwt, natsConnectOptions, newUserKey, renderResolverConfig } from '@cgfence/nats-auth';
import type { StartedServer } from '../server';
import { TestPolicyServer } from '../testing/test-server';

const HOSTS = 10;
const auth = (t: string) => ({ Authorization: `Bearer ${t}` });

describe('host removals on two replicas at once', () => {
  let dir: string;
  let jwtDir: string;
  let nats: NatsServer;
  let env: TestPolicyServer;
  let replica: StartedServer;
  let operator: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'cgfence-revoke-race-'));
    jwtDir = join(dir, 'jwt');
    const init = await initJwtAuth(jwtDir);
    nats = await NatsServer.start({ dir: join(dir, 'nats'), extraConfig: renderResolverConfig(jwtDir, join(dir, 'resolver')) });
    env = await TestPolicyServer.start('revoke_race', { natsUrl: nats.url(), env: { CGFENCE_NATS_CREDS: init.serverCredsFile, CGFENCE_NATS_JWT_DIR: jwtDir } });
    replica = await env.replica();
    operator = await env.tokenFor('operator');
    await waitFor('NATS connected', async () => (await env.http.get('/ready')).body.nats === 'connected', 30_000);
  });

  after(async () => {
    await replica?.close().catch(() => undefined);
    await env?.stop();
    await nats?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('revokes every removed host, whichever replica removed it', async () => {
    const token = ((await env.http.post('/enroll-tokens').set(auth(operator)).send({ uses: HOSTS })).body as { secret: string }).secret;
    const keys: string[] = [];
    for (let i = 0; i < HOSTS; i++) {
      const key = newUserKey().getPublicKey();
      const res = await env.http.post('/enroll').send({ token, hostId: `race-${i}`, natsPublicKey: key, hostname: `race-${i}` });
      assert.equal(res.status, 201, JSON.stringify(res.body));
      keys.push(key);
    }
    const apis = [env.http, supertest(replica.app.getHttpServer())];
    const removed = await Promise.all(keys.map((_k, i) => apis[i % 2]!.delete(`/hosts/race-${i}`).set(auth(operator))));
    for (const r of removed) assert.equal(r.status, 200, JSON.stringify(r.body));
    const sys = await connect({ servers: nats.url(), ...natsConnectOptions({ credsFile: join(jwtDir, JWT_FILES.sysCreds) }) });
    try {
      const jwt = await lookupAccountJwt(sys, loadJwtIssuer(jwtDir).accountPublicKey);
      const revoked = decodeJwt<{ revocations?: Record<string, number> }>(jwt).nats.revocations ?? {};
      assert.deepEqual(keys.filter((k) => revoked[k] === undefined), [], 'keys removed but not revoked');
    } finally {
      await sys.close();
    }
  });
});
