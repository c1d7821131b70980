// The cap on big blocklist work (CGFENCE_CONTENTS_QUEUE): with one thread and
// one waiting place, a burst of big diffs, versions, commits and replays fills
// the pool; the rest are refused at once with 503 server.busy, Retry-After and
// the documented error body, while /ready keeps answering; then the same
// requests succeed. A real server on a real PostgreSQL.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ContractChecker, OpenApiDoc } from '../testing/contract-checker';
import { TestPolicyServer } from '../testing/test-server';
import { ContentsPool } from './contents.pool';

const ENTRIES = 150_000;

describe(ContentsPool.name, () => {
  let env: TestPolicyServer;
  let operator: string;
  let checker: ContractChecker;
  const auth = (t: string) => ({ Authorization: `Bearer ${t}` });

  before(async () => {
    env = await TestPolicyServer.start('contents_queue', { env: { CGFENCE_CONTENTS_THREADS: '1', CGFENCE_CONTENTS_QUEUE: '1' } });
    operator = await env.tokenFor('operator', 'ops-queue');
    checker = new ContractChecker((await env.http.get('/openapi.json')).body as OpenApiDoc);
    assert.equal((await env.http.post('/blocklists').set(auth(operator)).send({ name: 'big' })).status, 201);
    const lines = Array.from({ length: ENTRIES }, (_, i) => `h${i}.example${i % 100}.net`);
    const v1 = await env.http.post('/blocklists/big/versions').set(auth(operator)).set('Content-Type', 'text/plain').send(`${lines.join('\n')}\n`);
    assert.equal(v1.status, 201, JSON.stringify(v1.body));
  });
  after(() => env?.stop());

  it('refuses work beyond the threads and the queue with 503 server.busy and Retry-After, and serves it once there is room', async () => {
    const requests = [
      ...Array.from({ length: 4 }, () => ({ method: 'GET', path: '/blocklists/big/diff?from=0&to=1' })),
      ...Array.from({ length: 2 }, () => ({ method: 'GET', path: '/blocklists/big/versions/1' })),
      { method: 'POST', path: '/blocklists/big/replay', body: { version: 1, since: '7d' } },
      { method: 'POST', path: '/blocklists/big/versions', body: { add: ['one-more.example'] } },
    ];
    const send = (r: { method: string; path: string; body?: unknown }) =>
      (r.method === 'GET' ? env.http.get(r.path) : env.http.post(r.path).send(r.body as object)).set(auth(operator));
    // All at once; /ready is asked while they are in flight.
    const burst = Promise.all(requests.map(send));
    const ready = await env.http.get('/ready');
    const answers = await burst;
    assert.equal(ready.status, 200);
    for (const [i, a] of answers.entries()) {
      assert.deepEqual(checker.check(requests[i]!.method, requests[i]!.path, a.status, a.headers['content-type'], a.body), [], `${requests[i]!.path}: as documented`);
    }
    const busy = answers.filter((a) => a.status === 503);
    const served = answers.filter((a) => a.status === 200 || a.status === 201);
    assert.ok(busy.length >= 1, `some of ${answers.length} were refused: ${answers.map((a) => a.status).join(',')}`);
    assert.ok(served.length >= 2, `one running and one waiting were served: ${answers.map((a) => a.status).join(',')}`);
    assert.equal(busy.length + served.length, answers.length, answers.map((a) => a.status).join(','));
    for (const b of busy) {
      assert.equal(b.body.code, 'server.busy');
      assert.match(b.body.message, /busy/);
      assert.ok(b.body.correlationId.length > 0);
      assert.ok(Number(b.headers['retry-after']) >= 1, 'Retry-After in seconds');
    }
    const metrics = (await env.http.get('/metrics')).text;
    assert.match(metrics, new RegExp(`^cgfence_contents_refused_total ${busy.length}$`, 'm'), 'each refusal is counted');
    assert.match(metrics, /^cgfence_contents_jobs 0$/m, 'and nothing is left running');
    // Once the burst is over, each is served.
    for (const r of requests.slice(0, 1).concat(requests.slice(4, 5), requests.slice(6))) {
      const again = await send(r);
      assert.ok(again.status === 200 || again.status === 201, `${r.path}: ${again.status} ${JSON.stringify(again.body).slice(0, 200)}`);
    }
  });
});
