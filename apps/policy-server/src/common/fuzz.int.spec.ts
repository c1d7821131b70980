// Property: whatever request a client builds from the OpenAPI document, with
// hostile strings and boundary numbers in every path parameter, query
// parameter and body field, the server answers with a status the operation
// documents (never a 5xx), every error in the ErrorBody shape, and stays ready.
// fast-check generates the requests; the run is bounded in count and time.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import fc from 'fast-check';
import { ContractChecker, OpenApiDoc, OpenApiOperation } from '../testing/contract-checker';
import { TestPolicyServer } from '../testing/test-server';

const HOSTILE_STRINGS = [
  '',
  ' ',
  '\u0000',
  'a\u0000b',
  '\ud800',
  'x\udc00y',
  '\ud83d\ude00',
  '../../etc/passwd',
  "'; drop table blocklists; --",
  '%',
  '%ff',
  '{}',
  '[object Object]',
  'core',
  '1',
  '-1',
  '2147483648',
  '9223372036854775808',
  '0000-01-01',
  '10000-01-01T00:00:00Z',
  '999999w',
  'a=b',
  '*.example.com',
  'x'.repeat(5000),
  '\u202e\ufeff',
];
const BOUNDARY_NUMBERS = [0, -1, 1, 2, 0.5, 2 ** 31 - 1, 2 ** 31, 2 ** 32, 2 ** 53 - 1, 2 ** 53 + 2, -(2 ** 63), 1e21, 1e308];

/** A URL component with hostile strings kept hostile: lone surrogates become their (invalid) UTF-8 bytes, not an exception. */
function encode(s: string): string {
  let out = '';
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    if (c >= 0xd800 && c <= 0xdfff) out += `%${(0xe0 | (c >> 12)).toString(16)}%${(0x80 | ((c >> 6) & 0x3f)).toString(16)}%${(0x80 | (c & 0x3f)).toString(16)}`;
    else out += encodeURIComponent(ch);
  }
  return out;
}

type Schema = Record<string, unknown> & { type?: string; properties?: Record<string, Schema>; items?: Schema; enum?: unknown[]; anyOf?: Schema[]; oneOf?: Schema[] };

const hostileString = fc.oneof(fc.constantFrom(...HOSTILE_STRINGS), fc.string({ unit: 'binary', maxLength: 40 }), fc.string({ maxLength: 20 }));
const boundaryNumber = fc.oneof(fc.constantFrom(...BOUNDARY_NUMBERS), fc.integer(), fc.double({ noNaN: true, noDefaultInfinity: true }));

/** Values for a JSON schema: mostly of the right type (hostile within it), sometimes anything. */
function valueOf(schema: Schema | undefined, depth = 0): fc.Arbitrary<unknown> {
  const wrong = fc.oneof(hostileString, boundaryNumber, fc.boolean(), fc.constant(null), fc.constant({}), fc.constant([]));
  if (!schema || depth > 4) return wrong;
  const alts = schema.anyOf ?? schema.oneOf;
  if (alts) return fc.oneof(...alts.map((s) => valueOf(s, depth + 1)));
  let right: fc.Arbitrary<unknown>;
  if (schema.enum) right = fc.oneof(fc.constantFrom(...schema.enum), hostileString);
  else if (schema.type === 'string') right = hostileString;
  else if (schema.type === 'integer' || schema.type === 'number') right = boundaryNumber;
  else if (schema.type === 'boolean') right = fc.boolean();
  else if (schema.type === 'array') right = fc.array(valueOf(schema.items, depth + 1), { maxLength: 4 });
  else if (schema.type === 'object') {
    const props = Object.entries(schema.properties ?? {});
    right = fc.record(Object.fromEntries(props.map(([k, s]) => [k, valueOf(s, depth + 1)])), { requiredKeys: [] }).chain((o) =>
      fc.oneof({ weight: 4, arbitrary: fc.constant(o) }, { weight: 1, arbitrary: hostileString.map((k) => ({ ...o, [k]: 1 })) }),
    );
  } else right = wrong;
  return fc.oneof({ weight: 5, arbitrary: right }, { weight: 1, arbitrary: wrong });
}

interface GeneratedRequest {
  method: string;
  path: string;
  type?: string;
  body?: string;
}

function requestsFor(path: string, method: string, op: OpenApiOperation): fc.Arbitrary<GeneratedRequest> {
  const params = op.parameters ?? [];
  const pathParams = params.filter((p) => p.in === 'path');
  const queryParams = params.filter((p) => p.in === 'query');
  const asText = (v: unknown): string => (typeof v === 'string' ? v : JSON.stringify(v));
  const pathArb = fc.tuple(...pathParams.map((p) => fc.oneof(fc.constantFrom('core', '1', 'nosuch'), valueOf(p.schema as Schema).map(asText)))).map((vals) => {
    let out = path;
    pathParams.forEach((p, i) => (out = out.replace(`{${p.name}}`, encode(vals[i]!) || 'x')));
    return out;
  });
  const queryArb = fc
    .array(
      fc.oneof(
        { weight: 6, arbitrary: fc.constantFrom(...(queryParams.length > 0 ? queryParams : [{ name: 'q', schema: {} }])).chain((p) => valueOf(p.schema as Schema).map((v) => `${encode(p.name)}=${encode(asText(v))}`)) },
        { weight: 1, arbitrary: fc.constantFrom('a[b]=1', 'x=%ff', '%ff=1', 'limit=1&limit=2', '&&', '=', 'label') },
      ),
      { maxLength: 4 },
    )
    .map((parts) => (parts.length > 0 ? `?${parts.join('&')}` : ''));
  const content = op.requestBody?.content ?? {};
  const bodyArb: fc.Arbitrary<{ type?: string; body?: string }> = op.requestBody
    ? fc.oneof(
        { weight: 6, arbitrary: valueOf(content['application/json']?.schema as Schema).map((v) => ({ type: 'application/json', body: JSON.stringify(v) ?? 'null' })) },
        { weight: 1, arbitrary: hostileString.map((s) => ({ type: 'text/plain', body: s })) },
        { weight: 1, arbitrary: fc.constantFrom({ type: 'application/json', body: '{"a":' }, { type: 'application/xml', body: '<a/>' }, { type: 'application/x-www-form-urlencoded', body: 'a=1' }, {}) },
      )
    : fc.constant({});
  return fc.tuple(pathArb, queryArb, bodyArb).map(([p, q, b]) => ({ method: method.toUpperCase(), path: `${p}${q}`, ...b }));
}

describe('policy server under generated requests', () => {
  let env: TestPolicyServer;
  let checker: ContractChecker;

  before(async () => {
    env = await TestPolicyServer.start('fuzz');
    checker = new ContractChecker((await env.http.get('/openapi.json')).body as OpenApiDoc);
    const auth = { Authorization: `Bearer ${env.adminSecret}` };
    await env.http.post('/blocklists').set(auth).send({ name: 'core' }).expect(201);
    await env.http.post('/blocklists/core/versions').set(auth).send({ entries: ['a.example'] }).expect(201);
  });
  after(() => env?.stop());

  it('never answers 5xx or an undocumented status or shape, and stays ready', async () => {
    const port = (env.server.app.getHttpServer().address() as AddressInfo).port;
    const send = (r: GeneratedRequest): Promise<{ status: number; type: string | undefined; text: string }> =>
      new Promise((resolve, reject) => {
        const headers: Record<string, string> = { authorization: `Bearer ${env.adminSecret}` };
        if (r.type) headers['content-type'] = r.type;
        if (r.body !== undefined) headers['content-length'] = String(Buffer.byteLength(r.body));
        const req = httpRequest({ host: '127.0.0.1', port, method: r.method, path: r.path, headers }, (res) => {
          // A live stream (GET /live) never ends: its status and type are what can be checked.
          if ((res.headers['content-type'] ?? '').startsWith('text/event-stream')) {
            res.destroy();
            resolve({ status: res.statusCode!, type: res.headers['content-type'], text: '' });
            return;
          }
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve({ status: res.statusCode!, type: res.headers['content-type'], text: Buffer.concat(chunks).toString('utf8') }));
        });
        req.on('error', reject);
        req.end(r.body);
      });
    const operations = Object.entries(checker.doc.paths).flatMap(([path, item]) => Object.entries(item).map(([method, op]) => requestsFor(path, method, op)));
    let count = 0;
    await fc.assert(
      fc.asyncProperty(fc.oneof(...operations), async (r) => {
        count++;
        const res = await send(r);
        let body: unknown = res.text;
        if ((res.type ?? '').startsWith('application/json')) body = JSON.parse(res.text) as unknown;
        assert.ok(res.status < 500, `${r.method} ${r.path.slice(0, 200)} answered ${res.status}: ${res.text.slice(0, 300)}`);
        assert.deepEqual(checker.check(r.method, r.path, res.status, res.type, body), [], `${r.method} ${r.path.slice(0, 200)} ${r.body?.slice(0, 200) ?? ''}`);
      }),
      { numRuns: 1500, interruptAfterTimeLimit: 30_000, seed: Number(process.env['CGFENCE_FUZZ_SEED'] ?? Date.now() % 2 ** 31), endOnFailure: true },
    );
    assert.ok(count >= 100, `only ${count} requests ran in the time limit`);
    const ready = await env.http.get('/ready');
    assert.equal(ready.status, 200, JSON.stringify(ready.body));
  });
});
