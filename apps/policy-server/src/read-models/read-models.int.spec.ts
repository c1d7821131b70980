import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { DataSource } from 'typeorm';
import { TestPolicyServer } from '../testing/test-server';
import { ReadModels } from './read-models.service';

describe(ReadModels.name, () => {
  let env: TestPolicyServer;
  let sut: ReadModels;

  before(async () => {
    env = await TestPolicyServer.start('read_models');
    sut = env.get(ReadModels);
  });
  after(() => env?.stop());

  async function snapshot(): Promise<Record<string, unknown[]>> {
    const db = env.get(DataSource);
    const out: Record<string, unknown[]> = {};
    for (const table of sut.tables) out[table] = await db.query(`select * from ${table} order by 1, 2`);
    return out;
  }

  it('rebuilds every read model from the events into identical rows', async () => {
    const op = await env.tokenFor('operator', 'ops');
    const auth = { Authorization: `Bearer ${op}` };
    for (const name of ['alpha', 'beta', 'gamma']) {
      await env.http.post('/blocklists').set(auth).send({ name, description: `list ${name}` }).expect(201);
      await env.http.post(`/blocklists/${name}/versions`).set(auth).send({ entries: [`${name}.example`, '10.0.0.0/8'] }).expect(201);
      await env.http.post(`/blocklists/${name}/versions`).set(auth).send({ add: [`*.${name}.example`], remove: ['10.0.0.0/8'] }).expect(201);
    }
    const admin = { Authorization: `Bearer ${env.adminSecret}` };
    const issued = await env.http.post('/tokens').set(admin).send({ name: 'ci', role: 'viewer' }).expect(201);
    await env.http.delete(`/tokens/${issued.body.token.id}`).set(admin).expect(204);

    const before = await snapshot();
    assert.equal(before['rm_blocklists']?.length, 3);
    assert.equal(before['rm_blocklist_versions']?.length, 6);

    // Tamper with a read model: a rebuild must put it right, not just leave it.
    await env.get(DataSource).query(`update rm_blocklists set latest_version = 99 where name = 'beta'`);

    const result = await sut.rebuild();
    assert.ok(result.events >= 10);
    assert.deepEqual(await snapshot(), before);
  });
});
