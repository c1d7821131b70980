// The edge's pure parts: the query-string parser and the string checks.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { z } from 'zod';
import { badStrings, checkJsonText, parseQuery, queryShapeOf, typeProblems } from './edge';

describe('parseQuery', () => {
  const shape = queryShapeOf(z.object({ label: z.array(z.string()).optional(), limit: z.number().int().optional(), on: z.boolean().optional(), q: z.string().optional() }).strict());

  it('converts by the schema type, repeats only arrays, refuses nesting and bad percent-encoding', () => {
    const ok = parseQuery('label=a%3Db&label=c&limit=10&on=false&q=a+b', shape);
    assert.deepEqual(ok, { value: { label: ['a=b', 'c'], limit: 10, on: false, q: 'a b' }, problems: [] });
    assert.deepEqual(parseQuery('q=a&q=b', shape).problems, [{ field: 'q', reason: 'given 2 times; give it once' }]);
    assert.deepEqual(parseQuery('q[x]=a', shape).problems.map((p) => p.field), ['q[x]']);
    assert.deepEqual(parseQuery('q=%ff', shape).problems, [{ field: 'q', reason: 'is not valid UTF-8 percent-encoding' }]);
    assert.deepEqual(parseQuery('q=%ED%A0%80', shape).problems.map((p) => p.field), ['q'], 'an encoded surrogate is not UTF-8');
    const typed = parseQuery('limit=1e3&on=maybe', shape);
    assert.deepEqual(typeProblems(typed.value).map((p) => p.field), ['limit', 'on']);
    assert.equal(parseQuery(Array.from({ length: 101 }, (_, i) => `x${i}=1`).join('&'), shape).problems.length, 1);
  });
});

describe('badStrings', () => {
  it('names every NUL or unpaired surrogate, in values and keys, and lets paired surrogates through', () => {
    assert.deepEqual(badStrings({ a: ['ok', 'x\u0000'], b: { c: '\ud800' }, d: '\ud83d\ude00', ['k\u0000']: 1 }, 'body').map((p) => p.field), [
      'body.a.1',
      'body.b.c',
      'body."k\\u0000"',
    ]);
  });

  it('is what a JSON body parsed off the event loop gets checked with', () => {
    const schema = z.object({ name: z.string() }).strict();
    assert.deepEqual(checkJsonText('{"name":"a"}', schema), { ok: true, data: { name: 'a' } });
    const nul = checkJsonText('{"name":"a\\u0000"}', schema);
    assert.ok(!nul.ok && nul.code === 'validation.failed' && nul.problems[0]?.field === 'name');
    const bad = checkJsonText('{"name":', schema);
    assert.ok(!bad.ok && bad.code === 'request.malformed');
  });
});
