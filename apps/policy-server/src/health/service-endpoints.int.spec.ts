import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { TestPolicyServer } from '../testing/test-server';
import { HealthController } from './health.controller';

describe(HealthController.name, () => {
  let env: TestPolicyServer;

  before(async () => {
    env = await TestPolicyServer.start('endpoints');
  });
  after(() => env?.stop());

  it('answers health and readiness without a token', async () => {
    assert.deepEqual((await env.http.get('/health')).body, { status: 'ok' });
    const ready = await env.http.get('/ready');
    assert.equal(ready.status, 200);
    assert.deepEqual(ready.body, { status: 'ready', nats: 'disabled', outboxPending: 0 });
  });

  it('serves Prometheus metrics that count requests by route', async () => {
    await env.http.get('/blocklists').set({ Authorization: `Bearer ${env.adminSecret}` }).expect(200);
    const res = await env.http.get('/metrics');
    assert.equal(res.status, 200);
    assert.match(res.text, /cgfence_http_requests_total\{method="GET",route="\/blocklists",status="200"\} \d+/);
    assert.match(res.text, /cgfence_server_process_cpu_seconds_total/);
  });

  it('serves an OpenAPI document with the blocklist operations and interactive docs', async () => {
    const doc = await env.http.get('/openapi.json');
    assert.equal(doc.status, 200);
    assert.ok(doc.body.paths['/blocklists/{name}/versions']?.post);
    assert.ok(doc.body.paths['/audit']?.get);
    const body = doc.body.paths['/blocklists']?.post?.requestBody?.content?.['application/json']?.schema;
    assert.ok(body?.properties?.name, 'create-blocklist body schema comes from the zod schema');
    const ui = await env.http.get('/docs/');
    assert.equal(ui.status, 200);
    assert.match(ui.text, /swagger/i);
  });

  it('wrote the bootstrap admin token to the state directory, readable by root only', () => {
    const file = join(env.config.stateDir, 'admin-token');
    assert.equal(readFileSync(file, 'utf8').trim(), env.adminSecret);
    assert.equal(statSync(file).mode & 0o777, 0o600);
  });

  it('keeps the same admin token across restarts instead of minting another', async () => {
    await env.restart();
    assert.equal(env.server.bootstrapSecret, undefined);
    assert.equal((await env.http.get('/tokens').set({ Authorization: `Bearer ${env.adminSecret}` })).status, 200);
  });

  it('answers unknown routes with a 404 error body carrying a correlation id', async () => {
    const res = await env.http.get('/no/such/route').set({ Authorization: `Bearer ${env.adminSecret}` });
    assert.equal(res.status, 404);
    assert.ok(res.body.correlationId);
  });
});
