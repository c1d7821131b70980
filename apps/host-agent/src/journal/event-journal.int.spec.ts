import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { EventJournal, JournalReader } from './event-journal';
import { alertRecord, type JournalRecord } from './journal-record';

function record(n: number, time = new Date(Date.UTC(2026, 3, 16, 10, 0, n))): JournalRecord {
  return alertRecord(`event ${n} ${'x'.repeat(100)}`, { host: 'web-01' }, { time });
}

/** The first `count` records the reader follows, or what came before `timeoutMs` passed. */
async function take(reader: JournalReader, count: number, timeoutMs = 5000): Promise<JournalRecord[]> {
  const out: JournalRecord[] = [];
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), timeoutMs);
  try {
    for await (const r of reader.follow({ pollMs: 20, signal: abort.signal })) {
      out.push(r);
      if (out.length === count) break;
    }
  } finally {
    clearTimeout(timer);
  }
  return out;
}

describe(EventJournal.name, () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'cgfence-journal-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('appends one JSON object per line and lists them back in order', () => {
    const path = join(dir, 'list');
    const sut = new EventJournal({ dir: path });
    const written = [record(1), record(2), record(3)];
    for (const r of written) sut.append(r);
    sut.close();
    const lines = readFileSync(join(path, 'events.jsonl'), 'utf8').split('\n');
    assert.equal(lines.length, 4);
    assert.equal(lines[3], '');
    assert.deepEqual(new JournalReader(path).list(), written);
    assert.deepEqual(new JournalReader(path).list({ limit: 2 }), written.slice(1));
    assert.deepEqual(new JournalReader(path).list({ since: new Date(written[2].time) }), written.slice(2));
  });

  it('keeps appending to the same file after a restart', () => {
    const path = join(dir, 'restart');
    const first = new EventJournal({ dir: path });
    first.append(record(1));
    first.close();
    const second = new EventJournal({ dir: path });
    second.append(record(2));
    second.close();
    assert.deepEqual(new JournalReader(path).list().map((r) => r.message?.slice(0, 7)), ['event 1', 'event 2']);
  });

  it('rotates at the size limit, keeps N files, and lists across them oldest first', () => {
    const path = join(dir, 'rotate');
    const sut = new EventJournal({ dir: path, maxBytes: 2000, keep: 2 });
    const written = Array.from({ length: 60 }, (_, i) => record(i));
    for (const r of written) sut.append(r);
    sut.close();
    const reader = new JournalReader(path);
    assert.deepEqual(reader.files().map((f) => f.slice(path.length + 1)), ['events.jsonl.2', 'events.jsonl.1', 'events.jsonl']);
    for (const f of reader.files()) assert.ok(statSync(f).size <= 2000, `${f} is over the limit`);
    const listed = reader.list();
    assert.ok(listed.length < written.length, 'the oldest files were dropped');
    assert.deepEqual(listed, written.slice(written.length - listed.length));
  });

  it('skips a torn line instead of failing the listing', () => {
    const path = join(dir, 'torn');
    const sut = new EventJournal({ dir: path });
    sut.append(record(1));
    sut.close();
    // A crash mid-write leaves half a line; the next start appends after it.
    appendFileSync(join(path, 'events.jsonl'), '{"id":"half');
    const again = new EventJournal({ dir: path });
    again.append(record(2));
    again.close();
    assert.deepEqual(new JournalReader(path).list().map((r) => r.message?.slice(0, 7)), ['event 1']);
  });
});

describe(JournalReader.name, () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'cgfence-follow-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('follows new events as they are appended, across rotation, without repeats', async () => {
    const journal = new EventJournal({ dir, maxBytes: 1500, keep: 3 });
    journal.append(record(0)); // already there: not shown when following from now
    const seen = take(new JournalReader(dir), 30);
    await new Promise((r) => setTimeout(r, 50));
    const written: JournalRecord[] = [];
    for (let i = 1; i <= 30; i++) {
      const r = record(i);
      written.push(r);
      journal.append(r);
      if (i % 5 === 0) await new Promise((r) => setTimeout(r, 30));
    }
    const got = await seen;
    journal.close();
    assert.deepEqual(
      got.map((r) => r.id),
      written.map((r) => r.id),
    );
  });

  it('can start from the beginning and stops when aborted', async () => {
    const path = join(dir, 'from-start');
    const journal = new EventJournal({ dir: path });
    journal.append(record(1));
    journal.append(record(2));
    const abort = new AbortController();
    const got: JournalRecord[] = [];
    const following = (async () => {
      for await (const r of new JournalReader(path).follow({ fromStart: true, pollMs: 20, signal: abort.signal })) got.push(r);
    })();
    await new Promise((r) => setTimeout(r, 60));
    journal.append(record(3));
    await new Promise((r) => setTimeout(r, 100));
    abort.abort();
    await following;
    journal.close();
    assert.deepEqual(got.map((r) => r.message?.slice(0, 7)), ['event 1', 'event 2', 'event 3']);
  });
});
