import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { AuditRecord } from '@cgfence/proto';
import { TestPolicyServer } from '../testing/test-server';
import { AuditController } from './audit.controller';

describe(AuditController.name, () => {
  let env: TestPolicyServer;

  before(async () => {
    env = await TestPolicyServer.start('audit');
  });
  after(() => env?.stop());

  it('lists who did what, newest first, with paging and an actor filter, and never a secret', async () => {
    const carol = await env.tokenFor('operator', 'carol');
    const dave = await env.tokenFor('operator', 'dave');
    await env.http.post('/blocklists').set({ Authorization: `Bearer ${carol}` }).send({ name: 'audited' }).expect(201);
    await env.http.post('/blocklists/audited/versions').set({ Authorization: `Bearer ${dave}`, 'X-Correlation-Id': 'change-42' }).send({ entries: ['x.example'] }).expect(201);

    const res = await env.http.get('/audit?limit=2').set({ Authorization: `Bearer ${carol}` });
    assert.equal(res.status, 200);
    const records = res.body.records as AuditRecord[];
    assert.deepEqual(records.map((r) => [r.actor, r.type, r.stream]), [
      ['dave', 'BlocklistVersionCommitted', 'blocklist-audited'],
      ['carol', 'BlocklistCreated', 'blocklist-audited'],
    ]);
    assert.equal(records[0]?.correlationId, 'change-42');
    assert.ok(res.body.next);

    const older = await env.http.get(`/audit?before=${res.body.next}`).set({ Authorization: `Bearer ${carol}` });
    const olderTypes = (older.body.records as AuditRecord[]).map((r) => r.type);
    assert.ok(olderTypes.includes('TokenIssued'));
    assert.ok(!JSON.stringify(older.body).includes('secretHash'));

    const byDave = await env.http.get('/audit?actor=dave').set({ Authorization: `Bearer ${carol}` });
    assert.deepEqual((byDave.body.records as AuditRecord[]).map((r) => r.type), ['BlocklistVersionCommitted']);
  });

  it('is for operators and admins only', async () => {
    const viewer = await env.tokenFor('viewer', 'eve');
    const res = await env.http.get('/audit').set({ Authorization: `Bearer ${viewer}` });
    assert.equal(res.status, 403);
  });

  it('rejects a malformed page cursor with 400', async () => {
    const res = await env.http.get('/audit?before=yesterday').set({ Authorization: `Bearer ${env.adminSecret}` });
    assert.equal(res.status, 400);
    assert.match(res.body.message, /before/);
  });
});
