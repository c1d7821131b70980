import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LastGoodStore } from './last-good';
import { anHourAgo, makeBundle, makeDesired, ringOf, signingKey } from './testing/fleet-fixtures';

const root = mkdtempSync(join(tmpdir(), 'cgfence-last-good-'));
after(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const freshStore = () => new LastGoodStore(join(root, `state-${n++}`));

const server = signingKey();
const ring = ringOf(server);
const bundle = makeBundle(server, { text: 'evil.example\n10.0.0.0/8\n', version: 2 });
const desired = makeDesired(server, { revision: 5, baseline: bundle });
const record = { revision: 5, desired: desired.signed, bundle: bundle.signed, appliedAt: '2025-01-01T00:00:00.000Z' };

describe(LastGoodStore.name, () => {
  it('saves and loads a verified bundle, leaving no temp files', () => {
    const store = freshStore();
    store.save(record, bundle.content);
    const loaded = store.load(ring, new Date());

    assert.ok(loaded.ok);
    assert.equal(loaded.lastGood.revision, 5);
    assert.equal(loaded.lastGood.text, 'evil.example\n10.0.0.0/8\n');
    assert.equal(loaded.lastGood.header.version, 2);
    assert.deepEqual(loaded.lastGood.expired, []);
    assert.deepEqual(readdirSync(store.dir).sort(), ['last-good.content', 'last-good.json']);
  });

  it('says when there is none', () => {
    const loaded = freshStore().load(ring, new Date());
    assert.deepEqual(loaded, { ok: false, missing: true, message: loaded.ok ? '' : loaded.message });
  });

  it('moves only the document when the bundle stays', () => {
    const store = freshStore();
    store.save(record, bundle.content);
    const next = makeDesired(server, { revision: 6, baseline: bundle, audit: { fleet: true } });
    store.save({ ...record, revision: 6, desired: next.signed });
    const loaded = store.load(ring, new Date());

    assert.ok(loaded.ok);
    assert.equal(loaded.lastGood.revision, 6);
    assert.equal(loaded.lastGood.doc.audit.fleet, true);
  });

  it('loads an expired bundle and says so (enforcing it beats nothing)', () => {
    const store = freshStore();
    store.save(record, bundle.content);
    const loaded = store.load(ring, new Date(Date.now() + 2 * 3600_000));

    assert.ok(loaded.ok);
    assert.equal(loaded.lastGood.expired.length, 2);
    assert.match(loaded.lastGood.expired.join('\n'), /desired-state revision 5 expired at .*\nbundle prod-deny v2 expired at/);
  });

  it('refuses tampered content', () => {
    const store = freshStore();
    store.save(record, bundle.content);
    writeFileSync(store.contentFile, 'evil.example\n');
    const loaded = store.load(ring, new Date());
    assert.ok(!loaded.ok && !loaded.missing);
    assert.match(loaded.message, /content is 13 bytes, the signed header says 24/);
  });

  it('refuses documents the keyring does not trust', () => {
    const store = freshStore();
    store.save(record, bundle.content);
    const loaded = store.load(ringOf(signingKey()), new Date());
    assert.ok(!loaded.ok);
    assert.match(loaded.message, /desired-state document: unknown-key/);
  });

  it('refuses a bundle the stored document does not name', () => {
    const store = freshStore();
    const other = makeBundle(server, { text: 'other.example\n', version: 3 });
    store.save({ ...record, bundle: other.signed }, other.content);
    const loaded = store.load(ring, new Date());
    assert.ok(!loaded.ok);
    assert.match(loaded.message, /revision 5 does not name bundle prod-deny v3/);
  });

  it('refuses a malformed file', () => {
    const store = freshStore();
    store.save(record, bundle.content);
    const json = JSON.parse(readFileSync(store.jsonFile, 'utf8')) as Record<string, unknown>;
    writeFileSync(store.jsonFile, JSON.stringify({ ...json, revision: 'five' }));
    const loaded = store.load(ring, new Date());
    assert.ok(!loaded.ok);
    assert.match(loaded.message, /malformed: revision/);
    store.clear();
    assert.equal(existsSync(store.jsonFile), false);
  });

  it('keeps an old expiry check honest: an expired desired document alone is reported', () => {
    const store = freshStore();
    const stale = makeDesired(server, { revision: 5, baseline: bundle, expiresAt: anHourAgo() });
    store.save({ ...record, desired: stale.signed }, bundle.content);
    const loaded = store.load(ring, new Date());
    assert.ok(loaded.ok);
    assert.deepEqual(loaded.lastGood.expired.map((e) => e.split(' expired')[0]), ['desired-state revision 5']);
  });
});
