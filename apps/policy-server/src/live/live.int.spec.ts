import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createServer } from '../server';
import { TestPolicyServer } from '../testing/test-server';
import { LiveController } from './live.controller';
import { waitFor } from '@cgfence/devservices';
import { LIVE_POLL_MS, LiveService, MAX_LIVE_STREAMS } from './live.service';

/** Reads a Server-Sent Events response until an event of `type` arrives (or the time is up). */
async function nextEvent(reader: ReadableStreamDefaultReader<string>, type: string, ms: number): Promise<{ event: string; data: unknown }> {
  const deadline = setTimeout(() => void reader.cancel(), ms);
  let buf = '';
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`no "${type}" event within ${ms} ms; got:\n${buf}`);
      buf += value;
      const blocks = buf.split('\n\n');
      buf = blocks.pop()!;
      for (const block of blocks) {
        const event = /^event: (.*)$/m.exec(block)?.[1];
        const data = /^data: (.*)$/m.exec(block)?.[1];
        if (event === type && data) return { event, data: JSON.parse(data) as unknown };
      }
    }
  } finally {
    clearTimeout(deadline);
  }
}

describe(LiveController.name, () => {
  let env: TestPolicyServer;
  let viewer: string;
  let operator: string;
  const auth = (t: string) => ({ Authorization: `Bearer ${t}` });

  before(async () => {
    env = await TestPolicyServer.start('live');
    viewer = await env.tokenFor('viewer');
    operator = await env.tokenFor('operator');
  });
  after(() => env?.stop());

  it('needs a token like every route, answering in the error shape', async () => {
    const res = await fetch(`${env.server.url}/live`, { headers: { Accept: 'text/event-stream' } });
    assert.equal(res.status, 401);
    assert.equal(((await res.json()) as { code: string }).code, 'auth.missing_token');
  });

  it('tells an open stream which topic changed when a blocklist is created', async () => {
    const res = await fetch(`${env.server.url}/live`, { headers: { ...auth(viewer), Accept: 'text/event-stream' } });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /text\/event-stream/);
    const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
    // "ready" first: from then on every change is told.
    await nextEvent(reader, 'ready', LIVE_POLL_MS * 10);
    await env.http.post('/blocklists').set(auth(operator)).send({ name: 'live-demo' }).expect(201);
    const ev = await nextEvent(reader, 'change', LIVE_POLL_MS * 10);
    assert.deepEqual((ev.data as { topics: string[] }).topics, ['fleet']);
    await reader.cancel();
  });

  it(`refuses a stream past ${MAX_LIVE_STREAMS} open ones with a 503 in the error shape, and takes one again when one closes`, async () => {
    const open: AbortController[] = [];
    try {
      for (let i = 0; i < MAX_LIVE_STREAMS; i++) {
        const ac = new AbortController();
        const res = await fetch(`${env.server.url}/live`, { headers: auth(viewer), signal: ac.signal });
        assert.equal(res.status, 200);
        open.push(ac);
      }
      const refused = await fetch(`${env.server.url}/live`, { headers: auth(viewer) });
      assert.equal(refused.status, 503);
      assert.equal(((await refused.json()) as { code: string }).code, 'live.too_many_streams');
      open.pop()!.abort();
      await waitFor('a closed stream to be let go', () => env.get(LiveService).openStreams < MAX_LIVE_STREAMS, 10_000);
      const again = new AbortController();
      const res = await fetch(`${env.server.url}/live`, { headers: auth(viewer), signal: again.signal });
      assert.equal(res.status, 200);
      open.push(again);
    } finally {
      for (const ac of open) ac.abort();
    }
    await waitFor('every stream to be let go', () => env.get(LiveService).openStreams === 0, 10_000);
  });

  it('GET /whoami names the token and its role (the dashboard hides what the role may not do)', async () => {
    const res = await env.http.get('/whoami').set(auth(viewer)).expect(200);
    assert.equal(res.body.name, 'viewer-user');
    assert.equal(res.body.role, 'viewer');
    await env.http.get('/whoami').expect(401);
  });

  it('POST /rollouts/preview answers with the error POST /rollouts would give, and starts nothing', async () => {
    const bad = await env.http.post('/rollouts/preview').set(auth(viewer)).send({ blocklist: 'live-demo', version: 1, stages: [{ name: 'a', select: {} }] }).expect(200);
    assert.equal(bad.body.valid, false);
    assert.equal(bad.body.error.code, 'rollout.invalid_plan');
    assert.ok(Array.isArray(bad.body.error.details) && bad.body.error.details.length > 0);
    const missing = await env.http.post('/rollouts/preview').set(auth(viewer)).send({ blocklist: 'live-demo', version: 1, stages: [{ name: 'a', select: { percent: 50 } }] }).expect(200);
    assert.equal(missing.body.valid, false);
    assert.equal(missing.body.error.code, 'version.not_found');
    assert.deepEqual(missing.body.stages, [{ name: 'a', hosts: [] }]);
    const list = await env.http.get('/rollouts').set(auth(viewer)).expect(200);
    assert.deepEqual(list.body, []);
  });
});

describe('the dashboard at /', () => {
  let env: TestPolicyServer;
  before(async () => {
    env = await TestPolicyServer.start('dashboard-serving', { env: { CGFENCE_DASHBOARD_DIR: '/nonexistent-for-now' } });
  });
  after(() => env?.stop());

  it('serves index.html to a browser on any page path, the built assets, and leaves the API and docs to API clients', async () => {
    const dir = join(env.dir, 'web');
    mkdirSync(join(dir, 'assets'), { recursive: true });
    writeFileSync(join(dir, 'index.html'), '<!doctype html><div id="root"></div>');
    writeFileSync(join(dir, 'assets', 'app-1234.js'), 'console.log(1)');
    await env.server.close();
    env.server = await createServer({ ...env.config, dashboardDir: dir });
    const html = 'text/html,application/xhtml+xml,*/*;q=0.8';
    for (const path of ['/', '/hosts', '/rollouts/r-1234', '/history?from=24h']) {
      const res = await env.http.get(path).set('Accept', html);
      assert.equal(res.status, 200, path);
      assert.match(res.text, /<div id="root">/, path);
      assert.match(res.headers['content-security-policy'] ?? '', /default-src 'self'/);
    }
    const asset = await env.http.get('/assets/app-1234.js');
    assert.equal(asset.status, 200);
    assert.match(asset.headers['cache-control'] ?? '', /immutable/);
    const api = await env.http.get('/hosts').set('Accept', 'application/json');
    assert.equal(api.status, 401);
    assert.equal(api.body.code, 'auth.missing_token');
    const anyType = await env.http.get('/hosts').set('Accept', '*/*');
    assert.equal(anyType.status, 401, 'a client that takes anything gets the API');
    const post = await env.http.post('/blocklists').set('Accept', html).send({ name: 'x' });
    assert.equal(post.status, 401, 'only GET and HEAD reach the dashboard');
    const docs = await env.http.get('/openapi.json').set('Accept', html);
    assert.equal(docs.status, 200);
    assert.ok(docs.body.paths['/hosts']);
  });

  it('says how to build it when it is not built, instead of a blank page', async () => {
    await env.server.close();
    env.server = await createServer({ ...env.config, dashboardDir: join(env.dir, 'missing') });
    const res = await env.http.get('/').set('Accept', 'text/html');
    assert.equal(res.status, 503);
    assert.match(res.text, /npm run build/);
  });
});
