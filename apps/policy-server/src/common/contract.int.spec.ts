// The whole REST API against its own OpenAPI document, with real requests on
// a real server and PostgreSQL: every answer must have a status its operation
// lists and a body matching that status's schema; every operation is called.
// Then each class of bad request the fuzzer found gets its own test.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initJwtAuth, newUserKey } from '@cgfence/nats-auth';
import { ContractChecker, OpenApiDoc } from '../testing/contract-checker';
import { TestPolicyServer } from '../testing/test-server';
import { EdgeInterceptor } from './edge.interceptor';

interface Answer {
  status: number;
  body: unknown;
  text: string;
  headers: Record<string, string | string[] | undefined>;
}

describe(EdgeInterceptor.name, () => {
  let env: TestPolicyServer;
  let checker: ContractChecker;
  let admin: string;
  let viewer: string;
  let jwtDir: string;
  const problems: string[] = [];

  /** One raw request (bytes as given: no client-side encoding), checked against the document. */
  function call(method: string, path: string, opts: { token?: string; type?: string; body?: string | Buffer; headers?: Record<string, string> } = {}): Promise<Answer> {
    const port = (env.server.app.getHttpServer().address() as AddressInfo).port;
    return new Promise((resolve, reject) => {
      const headers: Record<string, string> = { ...opts.headers };
      if (opts.token) headers['authorization'] = `Bearer ${opts.token}`;
      if (opts.type) headers['content-type'] = opts.type;
      if (opts.body !== undefined) headers['content-length'] = String(Buffer.byteLength(opts.body));
      const req = httpRequest({ host: '127.0.0.1', port, method, path, headers }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let body: unknown = text;
          if ((res.headers['content-type'] ?? '').startsWith('application/json')) body = JSON.parse(text) as unknown;
          problems.push(...checker.check(method, path, res.statusCode!, res.headers['content-type'], body));
          resolve({ status: res.statusCode!, body, text, headers: res.headers });
        });
      });
      req.on('error', reject);
      req.end(opts.body);
    });
  }
  const json = (method: string, path: string, token: string | undefined, body: unknown): Promise<Answer> =>
    call(method, path, { token, type: 'application/json', body: JSON.stringify(body) });
  const errorOf = (a: Answer): { code: string; correlationId: string; details?: { field: string; reason: string }[] } =>
    a.body as { code: string; correlationId: string; details?: { field: string; reason: string }[] };

  before(async () => {
    // Enrollment on: a JWT directory and a NATS URL to hand to hosts, but no NATS connection
    // (so removing an enrolled host answers its documented 503 nats.unavailable).
    jwtDir = mkdtempSync(join(tmpdir(), 'cgfence-contract-jwt-'));
    await initJwtAuth(jwtDir);
    env = await TestPolicyServer.start('contract', { env: { CGFENCE_NATS_JWT_DIR: jwtDir, CGFENCE_NATS_ADVERTISE: 'nats://127.0.0.1:4222' } });
    admin = env.adminSecret;
    viewer = await env.tokenFor('viewer');
    checker = new ContractChecker((await env.http.get('/openapi.json')).body as OpenApiDoc);
  });
  after(async () => {
    await env?.stop();
    if (jwtDir) rmSync(jwtDir, { recursive: true, force: true });
  });

  it('answers every operation with a status and body its OpenAPI document lists', async () => {
    await call('GET', '/health');
    await call('GET', '/ready');
    await call('GET', '/metrics');
    const issued = await json('POST', '/tokens', admin, { name: 'ci', role: 'operator' });
    assert.equal(issued.status, 201);
    await call('GET', '/tokens', { token: admin });
    await call('DELETE', `/tokens/${(issued.body as { token: { id: string } }).token.id}`, { token: admin });
    await call('DELETE', '/tokens/nosuch', { token: admin });
    assert.equal((await json('POST', '/blocklists', admin, { name: 'core', description: 'd' })).status, 201);
    assert.equal((await json('POST', '/blocklists', admin, { name: 'core' })).status, 409);
    await call('GET', '/blocklists', { token: viewer });
    await call('GET', '/blocklists/core', { token: viewer });
    await call('GET', '/blocklists/nosuch', { token: viewer });
    assert.equal((await json('POST', '/blocklists/core/versions', admin, { entries: ['a.example', '*.b.example', '10.0.0.0/8'] })).status, 201);
    assert.equal((await json('POST', '/blocklists/core/versions', admin, { entries: ['a.example', '*.b.example', '10.0.0.0/8'] })).status, 200);
    assert.equal((await call('POST', '/blocklists/core/versions?message=text&expectedVersion=1', { token: admin, type: 'text/plain', body: 'c.example\n' })).status, 201);
    assert.equal((await call('POST', '/blocklists/core/versions?expectedVersion=1', { token: admin, type: 'text/plain', body: 'd.example\n' })).status, 409);
    await call('GET', '/blocklists/core/versions', { token: viewer });
    await call('GET', '/blocklists/core/versions/1', { token: viewer });
    await call('GET', '/blocklists/core/versions/1?format=text', { token: viewer });
    await call('GET', '/blocklists/core/versions/9', { token: viewer });
    await call('GET', '/blocklists/core/diff?from=1&to=2', { token: viewer });
    await call('GET', '/audit?limit=2', { token: admin });
    await call('GET', '/audit', { token: viewer });
    await call('GET', '/events?from=24h&label=team=web&label=env=prod', { token: viewer });
    await call('GET', '/events?format=ndjson', { token: viewer });
    await call('GET', '/events?format=csv', { token: viewer });
    await call('GET', '/events/aggregate?by=domain&bucket=hour', { token: viewer });
    await call('GET', '/events/summary?from=7d&cmd=curl&bucket=hour&top=5&labelKey=job', { token: viewer });
    assert.equal((await call('GET', '/events/summary?top=0', { token: viewer })).status, 400);
    await call('GET', '/runs/nosuch', { token: viewer });
    await call('GET', '/runs?since=7d&label=team=web&limit=5', { token: viewer });
    await call('GET', '/runs?limit=0', { token: viewer });
    await json('POST', '/blocklists/core/replay', viewer, { version: 1, since: '7d' });
    assert.equal((await json('POST', '/blocklists/core/assign', admin, { version: 2 })).status, 200);
    assert.equal((await json('POST', '/blocklists/core/assign', admin, { version: 1 })).status, 409);
    await call('GET', '/fleet', { token: viewer });
    assert.equal((await json('POST', '/fleet/audit-mode', admin, { on: true, cohort: 'canary' })).status, 200);
    await call('GET', '/fleet/signing-key');
    await call('GET', '/hosts?stale=false', { token: viewer });
    await call('GET', '/hosts?label=team=web&label=env=prod&state=in-sync&agentVersion=1.0.0&applied=core@1&desired=core&limit=10&after=a', { token: viewer });
    assert.equal((await call('GET', '/hosts?state=sideways', { token: viewer })).status, 400);
    await call('GET', '/hosts/nosuch', { token: viewer });
    const plan = { blocklist: 'core', version: 2, stages: [{ name: 'all', select: { percent: 100 } }] };
    await json('POST', '/rollouts', admin, plan);
    await call('GET', '/rollouts?status=active', { token: viewer });
    await call('GET', '/rollouts/nosuch', { token: viewer });
    await call('GET', '/rollouts/nosuch/history', { token: viewer });
    await json('POST', '/rollouts/nosuch/pause', admin, { reason: 'x' });
    await call('POST', '/rollouts/nosuch/resume', { token: admin });
    await json('POST', '/rollouts/nosuch/promote', admin, {});
    await json('POST', '/rollouts/nosuch/abort', admin, {});
    await json('POST', '/owners', admin, { value: 'api', team: 'payments', webhook: { url: 'http://127.0.0.1:9/hook', digest: '1h' } });
    await call('GET', '/owners', { token: viewer });
    await call('GET', '/owners/service/api', { token: viewer });
    await call('GET', '/owners/service/nosuch', { token: viewer });
    await call('DELETE', '/owners/service/api/targets/tgt_0000000000000000', { token: admin });
    await call('GET', '/findings?state=new&since=7d&limit=5', { token: viewer });
    await call('GET', '/findings/f-00000000000000000000', { token: viewer });
    await json('POST', '/findings/f-00000000000000000000/ack', admin, { reason: 'x' });
    await json('POST', '/findings/f-00000000000000000000/resolve', admin, { reason: 'x' });
    await json('POST', '/findings/f-00000000000000000000/accept', admin, { reason: 'x', until: '30d' });
    await call('GET', '/notifications/deliveries?status=dead', { token: admin });
    await call('POST', '/notifications/deliveries/00000000-0000-0000-0000-000000000000/retry', { token: admin });
    await call('GET', '/blocklists', {});
    await json('POST', '/blocklists', viewer, { name: 'nope' });
    const enrollToken = await json('POST', '/enroll-tokens', admin, { cohort: 'web', uses: 1, ttl: '1h' });
    assert.equal(enrollToken.status, 201, enrollToken.text);
    const joinSecret = (enrollToken.body as { secret: string }).secret;
    await call('GET', '/enroll-tokens', { token: admin });
    await call('GET', '/enroll-tokens', { token: viewer });
    const webKey = newUserKey().getPublicKey();
    const enrolled = await json('POST', '/enroll', undefined, { token: joinSecret, hostId: 'contract-web-1', natsPublicKey: webKey });
    assert.equal(enrolled.status, 201, enrolled.text);
    const usedUp = await json('POST', '/enroll', undefined, { token: joinSecret, hostId: 'contract-web-2', natsPublicKey: newUserKey().getPublicKey() });
    assert.deepEqual([usedUp.status, errorOf(usedUp).code], [403, 'enroll.token_refused']);
    const second = await json('POST', '/enroll-tokens', admin, { uses: 2 });
    const taken = await json('POST', '/enroll', undefined, { token: (second.body as { secret: string }).secret, hostId: 'contract-web-1', natsPublicKey: newUserKey().getPublicKey() });
    assert.deepEqual([taken.status, errorOf(taken).code], [409, 'enroll.host_exists']);
    assert.equal((await call('DELETE', `/enroll-tokens/${(second.body as { token: { id: string } }).token.id}`, { token: admin })).status, 204);
    assert.equal((await call('DELETE', '/enroll-tokens/enr_0000000000000000', { token: admin })).status, 404);
    const removed = await call('DELETE', '/hosts/contract-web-1', { token: admin });
    assert.deepEqual([removed.status, errorOf(removed).code], [503, 'nats.unavailable']);
    assert.equal((await call('DELETE', '/hosts/nosuch', { token: admin })).status, 404);
    // A key from nkeys (migrate-from-nkeys records it); a revoked key is refused.
    const legacyKey = newUserKey().getPublicKey();
    const adopted = await json('POST', '/hosts/contract-legacy-1/nats-keys', admin, { natsPublicKey: legacyKey });
    assert.deepEqual([adopted.status, adopted.body], [200, { hostId: 'contract-legacy-1', natsKeys: [legacyKey], adopted: true }]);
    const readopted = await json('POST', '/hosts/contract-web-1/nats-keys', admin, { natsPublicKey: webKey });
    assert.deepEqual([readopted.status, errorOf(readopted).code], [409, 'enroll.key_revoked']);
    // The dashboard's routes (the stream is called without a token: it answers at once).
    await call('GET', '/whoami', { token: viewer });
    await json('POST', '/rollouts/preview', viewer, plan);
    await json('POST', '/rollouts/preview', viewer, { stages: 'not a list' });
    await call('GET', '/live');

    assert.deepEqual(problems, []);
    const documented = Object.entries(checker.doc.paths).flatMap(([p, item]) => Object.keys(item).map((m) => `${m.toUpperCase()} ${p}`));
    assert.deepEqual(documented.filter((op) => !checker.seen.has(op)), [], 'every documented operation was called');
  });

  it('documents every operation: a success schema, the error body for each status, typed parameters, security', () => {
    for (const [path, item] of Object.entries(checker.doc.paths)) {
      for (const [method, op] of Object.entries(item)) {
        const where = `${method.toUpperCase()} ${path}`;
        const statuses = Object.keys(op.responses).map(Number);
        assert.ok(statuses.some((s) => s >= 200 && s < 300), `${where}: a success response`);
        assert.ok(statuses.includes(400), `${where}: 400`);
        for (const p of op.parameters ?? []) assert.ok(p.schema && Object.keys(p.schema).length > 0, `${where}: parameter ${p.name} has a schema`);
        const isPublic = Array.isArray(op.security) && op.security.length === 0;
        assert.equal(statuses.includes(401), !isPublic, `${where}: 401 listed exactly when a token is needed`);
        for (const s of statuses.filter((x) => x >= 400 && x !== 503)) {
          assert.deepEqual(op.responses[String(s)]!.content?.['application/json']?.schema, { $ref: '#/components/schemas/ErrorBody' }, `${where} ${s}`);
        }
        if (method === 'post' && !statuses.includes(201)) assert.ok(statuses.includes(200), `${where}: an action answers 200`);
      }
    }
    const doc = checker.doc.paths;
    assert.deepEqual(doc['/fleet/signing-key']!['get']!.security, []);
    assert.deepEqual(doc['/health']!['get']!.security, []);
    assert.deepEqual(doc['/enroll']!['post']!.security, []);
    assert.deepEqual(Object.keys(doc['/enroll']!['post']!.responses).sort(), ['201', '400', '403', '409', '413', '415', '503']);
    assert.equal(doc['/blocklists/{name}/versions']!['post']!.requestBody!.content['text/plain']!.schema['type'], 'string');
    assert.deepEqual(Object.keys(doc['/blocklists/{name}/assign']!['post']!.responses).filter((s) => s.startsWith('2')), ['200']);
    const limit = doc['/events']!['get']!.parameters!.find((p) => p.name === 'limit')!;
    assert.deepEqual([limit.schema['type'], limit.schema['minimum'], limit.schema['maximum']], ['integer', 0, 1000]);
    const label = doc['/events']!['get']!.parameters!.find((p) => p.name === 'label')!;
    assert.equal(label.schema['type'], 'array');
    const hostParams = doc['/hosts']!['get']!.parameters!;
    assert.equal(hostParams.find((p) => p.name === 'label')!.schema['type'], 'array');
    assert.deepEqual(hostParams.find((p) => p.name === 'state')!.schema['enum'], ['in-sync', 'converging', 'rejected', 'drifted', 'stale']);
  });

  it('refuses NUL, unpaired surrogates and invalid UTF-8 in path, query and body, naming the field', async () => {
    const cases: [string, Answer, string][] = [
      ['path', await call('GET', '/blocklists/a%00b', { token: viewer }), 'name'],
      ['query', await call('GET', '/audit?actor=a%00b', { token: admin }), 'actor'],
      ['query', await call('GET', '/audit?actor=a%ff', { token: admin }), 'actor'],
      ['query', await call('GET', '/audit?actor=%ed%a0%80', { token: admin }), 'actor'],
      ['body', await json('POST', '/blocklists', admin, { name: 'n1', description: 'a\u0000b' }), 'description'],
      ['body', await call('POST', '/blocklists', { token: admin, type: 'application/json', body: '{"name":"n2","description":"\\ud800"}' }), 'description'],
      ['body', await call('POST', '/blocklists/core/versions', { token: admin, type: 'application/json', body: '{"entries":["x.example\\u0000"]}' }), 'entries.0'],
      ['body', await call('POST', '/blocklists/core/versions', { token: admin, type: 'text/plain', body: 'x.example\u0000\n' }), '(body)'],
    ];
    for (const [where, a, field] of cases) {
      assert.equal(a.status, 400, `${where}: ${a.text}`);
      assert.equal(errorOf(a).code, 'validation.failed');
      assert.ok(errorOf(a).details?.some((d) => d.field === field), `${where} names ${field}: ${a.text}`);
    }
    const bytes = await call('POST', '/blocklists', { token: admin, type: 'application/json', body: Buffer.from([0x7b, 0x22, 0x6e, 0x61, 0x6d, 0x65, 0x22, 0x3a, 0x22, 0xff, 0x22, 0x7d]) });
    assert.equal(bytes.status, 400);
    assert.equal(errorOf(bytes).code, 'request.malformed');
    assert.match(bytes.text, /UTF-8/);
    assert.equal((await call('GET', '/ready')).status, 200);
  });

  it('refuses numbers the columns cannot hold, and cursors and times out of range, before any query', async () => {
    for (const [path, field] of [
      ['/blocklists/core/versions/2147483648', 'version'],
      ['/blocklists/core/versions/9007199254740993', 'version'],
      ['/blocklists/core/diff?from=1&to=4294967296', 'to'],
      ['/audit?before=18446744073709551616', 'before'],
      ['/events?from=0000-06-01', 'from'],
      ['/events?to=10000-01-01', 'to'],
      ['/events?from=999999w', 'from'],
      ['/events?pid=2147483648', 'pid'],
      [`/events?after=${Buffer.from('-9223372036854775808|01941f29-7c00-7abc-8def-0123456789ab').toString('base64url')}`, 'after'],
    ] as const) {
      const a = await call('GET', path, { token: admin });
      assert.equal(a.status, 400, `${path}: ${a.text}`);
      assert.ok(errorOf(a).details?.some((d) => d.field === field), `${path} names ${field}: ${a.text}`);
    }
    for (const body of [{ version: 2 ** 31 }, { version: 2 ** 53 - 1 }]) {
      const a = await json('POST', '/blocklists/core/assign', admin, body);
      assert.equal(a.status, 400, a.text);
    }
    const big = await json('POST', '/blocklists/core/versions', admin, { entries: ['z.example'], expectedVersion: 2 ** 40 });
    assert.equal(big.status, 400, big.text);
  });

  it('refuses repeated and nested query parameters unless the schema is an array', async () => {
    const twice = await call('POST', '/blocklists/core/versions?message=a&message=b', { token: admin, type: 'text/plain', body: 'y.example\n' });
    assert.equal(twice.status, 400);
    assert.deepEqual(errorOf(twice).details?.map((d) => d.field), ['message']);
    const nested = await call('POST', '/blocklists/core/versions?message[x]=a', { token: admin, type: 'text/plain', body: 'y.example\n' });
    assert.equal(nested.status, 400);
    assert.deepEqual(errorOf(nested).details?.map((d) => d.field), ['message[x]']);
    const stream = await call('GET', '/audit?stream=a&stream=b', { token: admin });
    assert.equal(stream.status, 400);
    const labels = await call('GET', '/events?label=a=b&label=c=d', { token: viewer });
    assert.equal(labels.status, 200, labels.text);
    const unknown = await call('GET', '/blocklists?page=2', { token: viewer });
    assert.equal(unknown.status, 400);
    assert.deepEqual(errorOf(unknown).details, [{ field: 'page', reason: 'unknown query parameter' }]);
  });

  it('checks the token before reading a body: an unauthenticated 200 MB upload is refused at once', async () => {
    const port = (env.server.app.getHttpServer().address() as AddressInfo).port;
    const answer = await new Promise<{ status: number; connection: string | undefined }>((resolve, reject) => {
      const req = httpRequest(
        { host: '127.0.0.1', port, method: 'POST', path: '/blocklists/core/versions', headers: { 'content-type': 'text/plain', 'content-length': String(200 * 1024 * 1024) } },
        (res) => {
          res.resume();
          resolve({ status: res.statusCode!, connection: res.headers['connection'] });
          req.destroy();
        },
      );
      req.on('error', (err) => (err.message.includes('socket hang up') || err.message.includes('EPIPE') ? undefined : reject(err)));
      // Only the first megabyte is ever sent: the answer must not wait for the rest.
      req.write(Buffer.alloc(1024 * 1024, 0x61));
    });
    assert.equal(answer.status, 401);
    assert.equal(answer.connection, 'close');
  });

  it('answers 413, 415 and 405 with documented codes and a real correlation id', async () => {
    const large = await call('POST', '/blocklists', { token: admin, type: 'application/json', body: JSON.stringify({ name: 'big', description: 'x'.repeat(2 * 1024 * 1024) }) });
    assert.equal(large.status, 413);
    assert.equal(errorOf(large).code, 'request.too_large');
    const entries = Array.from({ length: 60_000 }, (_, i) => `host-${i}.large.example`);
    const commit = await json('POST', '/blocklists/core/versions', admin, { entries });
    assert.equal(commit.status, 201, 'the commit route takes a body over the default limit');
    for (const type of ['application/x-www-form-urlencoded', 'application/xml', 'text/plain']) {
      const a = await call('POST', '/blocklists', { token: admin, type, body: type === 'application/xml' ? '<a/>' : 'name=x' });
      assert.equal(a.status, 415, `${type}: ${a.text}`);
      assert.equal(errorOf(a).code, 'request.unsupported_media_type');
    }
    const latin1 = await call('POST', '/blocklists/core/versions', { token: admin, type: 'text/plain; charset=latin1', body: 'x.example\n' });
    assert.equal(latin1.status, 415);
    const notJson = await call('POST', '/blocklists', { token: admin, type: 'application/json', body: '{"name":', headers: { 'x-correlation-id': 'req-42' } });
    assert.equal(notJson.status, 400);
    assert.deepEqual([errorOf(notJson).code, errorOf(notJson).correlationId], ['request.malformed', 'req-42']);
    const noCorrelation = await call('POST', '/blocklists', { token: admin, type: 'application/json', body: '[' });
    assert.match(errorOf(noCorrelation).correlationId, /^[0-9a-f-]{36}$/);
    const method = await call('DELETE', '/blocklists/core', { token: admin });
    assert.equal(method.status, 405);
    assert.equal(errorOf(method).code, 'request.method_not_allowed');
    assert.equal(method.headers['allow'], 'GET, HEAD');
    const route = await call('GET', '/no/such/route', { token: admin });
    assert.deepEqual([route.status, errorOf(route).code], [404, 'route.not_found']);
    assert.deepEqual(problems, []);
  });
});
