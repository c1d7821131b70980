import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { CommitResult, DiffView, EntryView, VersionDetailView } from '@cgfence/proto';
import { TestPolicyServer } from '../testing/test-server';
import { BlocklistsController } from './blocklists.controller';

describe(BlocklistsController.name, () => {
  let env: TestPolicyServer;
  let operator: string;
  let viewer: string;
  const auth = (t: string) => ({ Authorization: `Bearer ${t}` });

  before(async () => {
    env = await TestPolicyServer.start('blocklists_api');
    operator = await env.tokenFor('operator', 'ops-alice');
    viewer = await env.tokenFor('viewer', 'viewer-bob');
  });
  after(() => env?.stop());

  const create = (name: string, description = '') =>
    env.http.post('/blocklists').set(auth(operator)).send({ name, description });

  it('creates, lists and shows a blocklist, recording who created it', async () => {
    const res = await create('deploy-core', 'things deploys must not need');
    assert.equal(res.status, 201);
    assert.equal(res.body.name, 'deploy-core');
    assert.equal(res.body.latestVersion, 0);
    assert.equal(res.body.createdBy, 'ops-alice');
    const list = await env.http.get('/blocklists').set(auth(viewer));
    assert.equal(list.status, 200);
    assert.ok(list.body.some((b: { name: string }) => b.name === 'deploy-core'));
    const show = await env.http.get('/blocklists/deploy-core').set(auth(viewer));
    assert.equal(show.body.description, 'things deploys must not need');
  });

  it('refuses a second blocklist with the same name with 409', async () => {
    await create('dup');
    const res = await create('dup');
    assert.equal(res.status, 409);
    assert.equal(res.body.code, 'blocklist.already_exists');
  });

  it('refuses a bad name with 400 naming the field', async () => {
    const res = await env.http.post('/blocklists').set(auth(operator)).send({ name: 'Bad Name!' });
    assert.equal(res.status, 400);
    assert.equal(res.body.code, 'validation.failed');
    assert.match(res.body.message, /name/);
  });

  it('commits versions 1, 2, 3 from full lists and diffs, canonicalised and hashed', async () => {
    await create('history');
    const v1 = await env.http
      .post('/blocklists/history/versions')
      .set(auth(operator))
      .send({ entries: ['GitHub.com.', { value: '*.githubusercontent.com', comment: 'release assets' }, '10.1.2.3/8', 'github.com'], message: 'first' });
    assert.equal(v1.status, 201, JSON.stringify(v1.body));
    const r1 = v1.body as CommitResult;
    assert.equal(r1.created, true);
    assert.equal(r1.version.version, 1);
    assert.equal(r1.version.entryCount, 3);
    assert.equal(r1.merged, 1);
    assert.match(r1.version.contentHash, /^sha256:[0-9a-f]{64}$/);

    const v2 = await env.http.post('/blocklists/history/versions').set(auth(operator)).send({ add: ['bücher.example'], remove: ['10.0.0.0/8'] });
    assert.equal(v2.status, 201, JSON.stringify(v2.body));
    assert.equal((v2.body as CommitResult).version.version, 2);
    assert.equal((v2.body as CommitResult).version.addedCount, 1);
    assert.equal((v2.body as CommitResult).version.removedCount, 1);

    const text = '# from a file\napi.github.com   # the API\n\n2001:DB8::1/32\n';
    const v3 = await env.http.post('/blocklists/history/versions?message=from%20file').set(auth(operator)).set('Content-Type', 'text/plain').send(text);
    assert.equal(v3.status, 201, JSON.stringify(v3.body));
    assert.equal((v3.body as CommitResult).version.version, 3);

    const shown = await env.http.get('/blocklists/history/versions/2').set(auth(viewer));
    const detail = shown.body as VersionDetailView;
    assert.deepEqual(
      detail.entries.map((e: EntryView) => e.value),
      ['github.com', 'xn--bcher-kva.example', '*.githubusercontent.com'],
    );
    assert.equal(detail.entries.find((e) => e.value === '*.githubusercontent.com')?.comment, 'release assets');

    const v3detail = (await env.http.get('/blocklists/history/versions/3').set(auth(viewer))).body as VersionDetailView;
    assert.deepEqual(v3detail.entries.map((e) => e.value), ['api.github.com', '2001:db8::/32']);
    assert.equal(v3detail.message, 'from file');

    const asText = await env.http.get('/blocklists/history/versions/3?format=text').set(auth(viewer));
    assert.match(asText.text, /^api\.github\.com {2}# the API\n2001:db8::\/32\n$/);

    const list = await env.http.get('/blocklists/history/versions').set(auth(viewer));
    assert.deepEqual(list.body.map((v: { version: number }) => v.version), [1, 2, 3]);
  });

  it('reports identical content as unchanged instead of committing it again', async () => {
    await create('same');
    const first = await env.http.post('/blocklists/same/versions').set(auth(operator)).send({ entries: ['a.example', 'b.example'] });
    assert.equal(first.body.version.version, 1);
    const again = await env.http.post('/blocklists/same/versions').set(auth(operator)).send({ entries: ['B.EXAMPLE', 'a.example.'] });
    assert.equal(again.status, 200, 'nothing was created');
    assert.equal(again.body.created, false);
    assert.equal(again.body.version.version, 1);
    const versions = await env.http.get('/blocklists/same/versions').set(auth(viewer));
    assert.equal(versions.body.length, 1);
  });

  it('diffs any two versions', async () => {
    await create('diffs');
    await env.http.post('/blocklists/diffs/versions').set(auth(operator)).send({ entries: ['a.example', 'b.example', '192.0.2.0/24'] });
    await env.http.post('/blocklists/diffs/versions').set(auth(operator)).send({ entries: ['b.example', 'c.example', '192.0.2.0/24'] });
    const res = await env.http.get('/blocklists/diffs/diff?from=1&to=2').set(auth(viewer));
    const diff = res.body as DiffView;
    assert.deepEqual(diff.added.map((e) => e.value), ['c.example']);
    assert.deepEqual(diff.removed.map((e) => e.value), ['a.example']);
    const back = (await env.http.get('/blocklists/diffs/diff?from=2&to=1').set(auth(viewer))).body as DiffView;
    assert.deepEqual(back.added.map((e) => e.value), ['a.example']);
    const missing = await env.http.get('/blocklists/diffs/diff?from=1&to=9').set(auth(viewer));
    assert.equal(missing.status, 404);
    assert.equal(missing.body.code, 'version.not_found');
  });

  it('rejects a list with bad entries, naming every one with its line and reason, and commits nothing', async () => {
    await create('invalid');
    const res = await env.http
      .post('/blocklists/invalid/versions')
      .set(auth(operator))
      .set('Content-Type', 'text/plain')
      .send(['good.example', 'bad_label-.example', '', `${'a'.repeat(64)}.example`, 'a.*.example', '10.0.0.0/33', '# comment', 'ok.example'].join('\n'));
    assert.equal(res.status, 400);
    assert.equal(res.body.code, 'entries.invalid');
    const lines = (res.body.details as { line: number; entry: string; reason: string }[]).map((d) => d.line);
    assert.deepEqual(lines, [2, 4, 5, 6]);
    for (const d of res.body.details) assert.ok(d.reason.length > 0 && d.entry.length > 0, JSON.stringify(d));
    const versions = await env.http.get('/blocklists/invalid/versions').set(auth(viewer));
    assert.deepEqual(versions.body, []);
  });

  it('refuses a change based on an older version with 409', async () => {
    await create('race');
    await env.http.post('/blocklists/race/versions').set(auth(operator)).send({ entries: ['a.example'] });
    await env.http.post('/blocklists/race/versions').set(auth(operator)).send({ entries: ['b.example'], expectedVersion: 1 });
    const stale = await env.http.post('/blocklists/race/versions').set(auth(operator)).send({ entries: ['c.example'], expectedVersion: 1 });
    assert.equal(stale.status, 409);
    assert.equal(stale.body.code, 'version.conflict');
  });

  it('lets one of two concurrent commits win and refuses the other with 409, writing nothing for it', async () => {
    await create('concurrent');
    const results = await Promise.all(
      ['x.example', 'y.example', 'z.example'].map((e) => env.http.post('/blocklists/concurrent/versions').set(auth(operator)).send({ entries: [e], expectedVersion: 0 })),
    );
    const statuses = results.map((r) => r.status).sort();
    assert.deepEqual(statuses, [201, 409, 409]);
    const versions = await env.http.get('/blocklists/concurrent/versions').set(auth(viewer));
    assert.equal(versions.body.length, 1);
  });

  it('requires a token, and the operator role to change anything', async () => {
    assert.equal((await env.http.get('/blocklists')).status, 401);
    assert.equal((await env.http.get('/blocklists').set(auth('cgf_not-a-real-token'))).status, 401);
    const res = await env.http.post('/blocklists').set(auth(viewer)).send({ name: 'nope' });
    assert.equal(res.status, 403);
    assert.equal(res.body.code, 'auth.forbidden');
  });

  it('answers 404 for a blocklist that does not exist', async () => {
    const res = await env.http.get('/blocklists/ghost').set(auth(viewer));
    assert.equal(res.status, 404);
    assert.equal(res.body.code, 'blocklist.not_found');
    assert.ok(res.body.correlationId);
  });
});
