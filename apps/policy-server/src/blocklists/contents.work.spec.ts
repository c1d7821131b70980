// The worker-thread functions give what the in-process functions they
// replace gave: hash, counts, diff, errors.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { canonicalise, canonicalText, contentHash, diffEntries, parseBlocklistText } from '@cgfence/proto';
import { countChanges, diffJson, MAX_REPORTED_ERRORS, prepareCommit, versionJson } from './contents.work';

describe('contents work', () => {
  const base = canonicalText(canonicalise(['a.example', '*.b.example', '10.0.0.0/8', 'c.example  # note']).entries);

  it('canonicalises a commit to the same text and hash as before', () => {
    const sut = prepareCommit({ kind: 'entries', entries: ['B.example.', 'a.example', 'a.example'] });
    assert.ok(sut.ok);
    const expected = canonicalise(['B.example.', 'a.example', 'a.example']);
    assert.equal(sut.canonical, canonicalText(expected.entries));
    assert.equal(sut.hash, contentHash(expected.entries));
    assert.deepEqual([sut.entryCount, sut.merged], [2, 1]);
    const text = prepareCommit({ kind: 'text', text: 'b.example\n# c\na.example\n' });
    assert.ok(text.ok);
    assert.equal(text.canonical, 'a.example\nb.example\n');
  });

  it('applies a change to the base text, and counts changes as diffEntries does', () => {
    const sut = prepareCommit({ kind: 'change', baseText: base, add: ['d.example'], remove: ['a.example'] });
    assert.ok(sut.ok);
    const counts = countChanges({ baseText: base, canonical: sut.canonical });
    const d = diffEntries(parseBlocklistText(base).entries, parseBlocklistText(sut.canonical).entries);
    assert.deepEqual(counts, { added: d.added.length, removed: d.removed.length });
    assert.deepEqual(counts, { added: 1, removed: 1 });
    assert.deepEqual(countChanges({ baseText: '', canonical: base }), { added: 4, removed: 0 });
  });

  it('reports errors (at most MAX_REPORTED_ERRORS listed, all counted)', () => {
    const bad = Array.from({ length: MAX_REPORTED_ERRORS + 5 }, (_, i) => `-bad${i}-`);
    const sut = prepareCommit({ kind: 'entries', entries: bad });
    assert.ok(!sut.ok);
    assert.equal(sut.errors.length, MAX_REPORTED_ERRORS);
    assert.equal(sut.errorCount, MAX_REPORTED_ERRORS + 5);
    const missing = prepareCommit({ kind: 'change', baseText: base, add: [], remove: ['nosuch.example'] });
    assert.ok(!missing.ok);
    assert.match(missing.errors[0]!.reason, /not in the base version/);
  });

  it('writes diffs and versions as the JSON the API promises', () => {
    const next = canonicalText(canonicalise(['a.example', 'z.example']).entries);
    const diff = JSON.parse(Buffer.from(diffJson({ blocklist: 'l', from: 1, to: 2, fromText: base, toText: next })).toString()) as { added: { value: string }[]; removed: { value: string }[] };
    assert.deepEqual(diff.added.map((e) => e.value), ['z.example']);
    assert.equal(diff.removed.length, 3);
    const view = { blocklist: 'l', version: 1, contentHash: 'h', entryCount: 4, addedCount: 4, removedCount: 0, message: '', committedAt: 't', committedBy: 'u' };
    const v = JSON.parse(Buffer.from(versionJson({ view, text: base })).toString()) as { entries: { value: string; comment?: string }[] };
    assert.equal(v.entries.length, 4);
    assert.ok(v.entries.some((e) => e.comment === 'note'));
  });
});
