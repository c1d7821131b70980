// The contents tasks against a small in-memory stand-in for the one table
// they use (blocklist_contents): what a commit reads and writes, and when.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { commitTask, diffTask, TaskDb, versionTask } from './contents.tasks';
import { hashOf } from './contents.work';

/** blocklist_contents in a Map, recording each statement it is asked. */
class ContentsTable implements TaskDb {
  readonly rows = new Map<string, { canonical: string; entry_count: number }>();
  readonly asked: string[] = [];

  async query<T>(sql: string, params: unknown[]): Promise<T[]> {
    const verb = sql.trim().split(/\s+/)[0]!;
    this.asked.push(verb);
    if (verb === 'insert') {
      const [hash, canonical, count] = params as [string, string, number];
      if (!this.rows.has(hash)) this.rows.set(hash, { canonical, entry_count: count });
      return [];
    }
    const row = this.rows.get(params[0] as string);
    return (row ? [row] : []) as T[];
  }
}

const bytes = (s: string | Uint8Array): Uint8Array => (typeof s === 'string' ? new Uint8Array(Buffer.from(s, 'utf8')) : s);

describe('contents tasks', () => {
  it('commits a text list: canonical content stored once under its hash, with what it adds', async () => {
    const db = new ContentsTable();
    const r = await commitTask(db, { media: 'text', body: bytes('b.example\n# comment\na.example\nA.example.\n'), baseHash: null });
    assert.ok(r.ok && !r.refused);
    if (!r.ok || r.refused) return;
    assert.deepEqual([r.entryCount, r.merged, r.added, r.removed], [2, 1, 2, 0]);
    assert.equal(r.hash, hashOf('a.example\nb.example\n'));
    assert.equal(db.rows.get(r.hash)?.canonical, 'a.example\nb.example\n');
    // The same content again, on top of itself: nothing new is written.
    db.asked.length = 0;
    const again = await commitTask(db, { media: 'text', body: bytes('a.example\nb.example\n'), baseHash: r.hash });
    assert.ok(again.ok && !again.refused && again.hash === r.hash && again.added === 0);
    assert.ok(!db.asked.includes('insert'));
  });

  it('refuses bad bytes, NUL, a bad JSON body and bad entries before it reads the latest version or writes anything', async () => {
    const db = new ContentsTable();
    const base = hashOf('x.example\n');
    db.rows.set(base, { canonical: 'x.example\n', entry_count: 1 });
    const cases = [
      { media: 'text' as const, body: bytes(new Uint8Array([0x61, 0xff, 0x0a])), code: 'request.malformed' },
      { media: 'text' as const, body: bytes('a.example\u0000\n'), code: 'validation.failed' },
      { media: 'json' as const, body: bytes('{"add": ['), code: 'request.malformed' },
      { media: 'json' as const, body: bytes('{"add": "a.example"}'), code: 'validation.failed' },
    ];
    for (const c of cases) {
      const r = await commitTask(db, { media: c.media, body: c.body, baseHash: base });
      assert.equal(r.ok ? 'ok' : r.code, c.code, JSON.stringify(c.body));
    }
    const refused = await commitTask(db, { media: 'json', body: bytes('{"add": ["-bad-"], "remove": []}'), baseHash: base });
    assert.ok(refused.ok && refused.refused && !refused.refused.ok && refused.refused.errors.length === 1);
    assert.deepEqual(db.asked, [], 'no statement: the base was not read, nothing was written');
  });

  it('applies a JSON change to the base version, and serves diffs and versions from stored content', async () => {
    const db = new ContentsTable();
    const v1 = await commitTask(db, { media: 'json', body: bytes('{"entries": ["a.example", "b.example"], "message": "one"}'), baseHash: null });
    assert.ok(v1.ok && !v1.refused && v1.message === 'one');
    if (!v1.ok || v1.refused) return;
    const v2 = await commitTask(db, { media: 'json', body: bytes('{"add": ["c.example"], "remove": ["a.example"], "expectedVersion": 1}'), baseHash: v1.hash });
    assert.ok(v2.ok && !v2.refused);
    if (!v2.ok || v2.refused) return;
    assert.deepEqual([v2.added, v2.removed, v2.expectedVersion], [1, 1, 1]);
    const diff = JSON.parse(Buffer.from(await diffTask(db, { blocklist: 'l', from: 1, to: 2, fromHash: v1.hash, toHash: v2.hash })).toString()) as { added: { value: string }[]; removed: { value: string }[] };
    assert.deepEqual([diff.added.map((e) => e.value), diff.removed.map((e) => e.value)], [['c.example'], ['a.example']]);
    const view = { blocklist: 'l', version: 2, contentHash: v2.hash, entryCount: 2, addedCount: 1, removedCount: 1, message: '', committedAt: '', committedBy: '' };
    assert.equal(Buffer.from(await versionTask(db, { view, format: 'text' })).toString(), 'b.example\nc.example\n');
    await assert.rejects(diffTask(db, { blocklist: 'l', from: 1, to: 3, fromHash: v1.hash, toHash: 'sha256:missing' }), /missing from blocklist_contents/);
  });
});
