import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { DiskSpool } from './spool';

const body = (i: number) => ({ n: i, pad: 'x'.repeat(60) });
const ids = (entries: { msgId: string }[]) => entries.map((e) => e.msgId);
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, k) => `e${from + k}`);

describe(DiskSpool.name, () => {
  let dir: string;
  const open: DiskSpool[] = [];
  const spool = (o: { maxBytes?: number; segmentBytes?: number } = {}) => {
    const s = new DiskSpool({ dir, fsyncIntervalMs: 0, ...o });
    open.push(s);
    return s;
  };

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'cgfence-spool-'));
  });
  afterEach(() => {
    for (const s of open.splice(0)) s.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('hands entries out in order, across segments, and forgets what is acked', () => {
    const sut = spool({ maxBytes: 1 << 20, segmentBytes: 1024 });
    for (let i = 1; i <= 50; i++) sut.append(i % 7 === 0 ? 'run' : 'block', `e${i}`, body(i));
    assert.ok(sut.stats().segments > 3, 'several segments');
    assert.deepEqual(ids(sut.read(0, 10)), range(1, 10));
    assert.deepEqual(ids(sut.read(10, 100)), range(11, 50), 'reads on where the last read stopped, into later segments');
    assert.deepEqual(sut.read(0, 1)[0]!.body, body(1));
    assert.equal(sut.read(6, 1)[0]!.kind, 'run');

    sut.ack(30);
    assert.equal(sut.stats().pending, 20);
    assert.deepEqual(ids(sut.read(0, 3)), range(31, 33), 'acked entries are not handed out again');
    const files = readdirSync(dir).filter((f) => f.startsWith('seg-'));
    assert.ok(files.length < 7, `shipped segments deleted (${files.join(' ')})`);
    sut.ack(50);
    assert.equal(sut.stats().pending, 0);
    assert.deepEqual(sut.read(0, 10), []);
  });

  it('stays within its bound: the oldest unshipped entries are dropped and counted', () => {
    const sut = spool({ maxBytes: 8 * 1024, segmentBytes: 1024 });
    let dropped = 0;
    for (let i = 1; i <= 400; i++) dropped += sut.append('block', `e${i}`, body(i)).dropped;
    const s = sut.stats();
    assert.ok(s.bytes <= 8 * 1024, `${s.bytes} bytes on disk`);
    const onDisk = readdirSync(dir).filter((f) => f.startsWith('seg-')).reduce((n, f) => n + statSync(join(dir, f)).size, 0);
    assert.equal(onDisk, s.bytes);
    assert.ok(dropped > 250, `dropped ${dropped}`);
    assert.equal(s.dropped, dropped);
    assert.equal(s.pending + s.dropped, 400, 'every entry is pending or counted as dropped');
    const left = ids(sut.read(0, 1000));
    assert.equal(left.length, s.pending);
    assert.deepEqual(left, range(400 - s.pending + 1, 400), 'the newest are kept, in order');
  });

  it('counts only unshipped entries as dropped', () => {
    const sut = spool({ maxBytes: 4 * 1024, segmentBytes: 1024 });
    for (let i = 1; i <= 20; i++) sut.append('block', `e${i}`, body(i));
    sut.ack(20);
    let dropped = 0;
    for (let i = 21; i <= 60; i++) dropped += sut.append('block', `e${i}`, body(i)).dropped;
    assert.equal(sut.stats().pending + dropped, 40);
  });

  it('drops an entry larger than the whole spool, and keeps the rest', () => {
    const sut = spool({ maxBytes: 2048, segmentBytes: 1024 });
    sut.append('block', 'e1', body(1));
    assert.deepEqual(sut.append('block', 'huge', { pad: 'x'.repeat(4096) }), { seq: -1, dropped: 1 });
    sut.append('block', 'e2', body(2));
    assert.deepEqual(ids(sut.read(0, 10)), ['e1', 'e2']);
    assert.deepEqual([sut.stats().pending, sut.stats().dropped], [2, 1]);
  });

  it('survives a restart: pending entries, the ack cursor and the drop count are kept', () => {
    const first = spool({ maxBytes: 8 * 1024, segmentBytes: 1024 });
    for (let i = 1; i <= 200; i++) first.append('block', `e${i}`, body(i));
    const before = first.stats();
    const oldest = first.read(0, 1)[0]!.seq;
    first.ack(oldest + 4);
    first.close();
    open.length = 0;

    const second = spool({ maxBytes: 8 * 1024, segmentBytes: 1024 });
    const after = second.stats();
    assert.equal(after.dropped, before.dropped);
    assert.equal(after.pending, before.pending - 5);
    const pending = ids(second.read(0, 1000));
    assert.deepEqual(pending, range(200 - after.pending + 1, 200));
    second.append('block', 'e201', body(201));
    const all = second.read(0, 1000);
    assert.equal(all.at(-1)!.msgId, 'e201');
    assert.equal(all.at(-1)!.seq, all.at(-2)!.seq + 1, 'seqs carry on after the restart');
  });

  it('re-sends (never loses) entries when the cursor is missing or unreadable', () => {
    const first = spool();
    for (let i = 1; i <= 5; i++) first.append('block', `e${i}`, body(i));
    first.ack(2);
    first.close();
    open.length = 0;
    writeFileSync(join(dir, 'cursor.json'), '{not json');
    const second = spool();
    assert.deepEqual(ids(second.read(0, 10)), range(1, 5));
  });

  it('tolerates a torn last line (a crash mid-write) and a garbled line', () => {
    const first = spool();
    for (let i = 1; i <= 3; i++) first.append('block', `e${i}`, body(i));
    first.close();
    open.length = 0;
    const seg = join(dir, readdirSync(dir).find((f) => f.startsWith('seg-'))!);
    // A line of garbage (zeros after a power loss), then a write cut short.
    appendFileSync(seg, `${'\0'.repeat(20)}\n{"seq":5,"kind":"block","msgId":"e5","bo`);

    const second = spool();
    assert.equal(second.stats().corrupt, 2);
    assert.deepEqual(ids(second.read(0, 10)), range(1, 3));
    second.append('block', 'e4', body(4));
    assert.deepEqual(ids(second.read(0, 10)), range(1, 4), 'the next append starts on a clean line');
    assert.ok(readFileSync(seg, 'utf8').endsWith('\n'));
    second.close();
    open.length = 0;
    assert.deepEqual(ids(spool().read(0, 10)), range(1, 4));
  });
});
