import assert from 'node:assert/strict';
import { waitFor } from '@cgfence/devservices';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import pino from 'pino';
import { byteSize } from '../cli/main';
import type { JournalRecord } from '../journal/journal-record';
import { EventShipper, type EventTransport, type PublishAck } from './event-shipper';

/** A transport that records what it was asked to publish and fails on demand. */
class FakeTransport implements EventTransport {
  up = true;
  readonly published: { subject: string; msgId: string }[] = [];
  /** msgIds that fail once. */
  readonly failOnce = new Set<string>();
  connected(): boolean {
    return this.up;
  }
  publish(subject: string, _data: Uint8Array, msgId: string): Promise<PublishAck> {
    this.published.push({ subject, msgId });
    if (this.failOnce.delete(msgId)) return Promise.reject(new Error(`no ack for ${msgId}`));
    return Promise.resolve({ stream: 'CGF_EVENTS', seq: this.published.length, duplicate: false });
  }
}

const rec = (id: string) => ({ id }) as unknown as JournalRecord;

const eventually = (what: string, probe: () => boolean, timeoutMs = 5000): Promise<void> => waitFor(what, probe, timeoutMs, 5);

describe(EventShipper.name, () => {
  let dir: string;
  let sut: EventShipper | undefined;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'cgfence-shipper-'));
  });
  afterEach(async () => {
    await sut?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('sends again from the first unacked event, in order, and then only new ones', async () => {
    const t = new FakeTransport();
    sut = new EventShipper({ hostId: 'h1', transport: t, spool: { dir }, logger: pino({ level: 'silent' }), window: 4, retryMs: 5 });
    t.failOnce.add('e2');
    for (const id of ['e1', 'e2', 'e3', 'e4', 'e5']) sut.event(rec(id));
    sut.runSummary({ runId: 'r1' } as never);
    sut.start();
    await sut.idle();
    const sent = t.published.map((p) => p.msgId);
    // e1 acked; e2 failed (e3, e4 went out in the same window); from e2 on again.
    assert.deepEqual(sent, ['e1', 'e2', 'e3', 'e4', 'e2', 'e3', 'e4', 'e5', 'run-r1']);
    assert.deepEqual(t.published.at(-1), { subject: 'cgf.events.h1.run', msgId: 'run-r1' });
    assert.equal(t.published[0]!.subject, 'cgf.events.h1.block');
    const s = sut.status();
    assert.equal(s.pending, 0);
    assert.match(s.lastError!.message, /no ack for e2/);
  });

  it('waits while disconnected and ships when woken', async () => {
    const t = new FakeTransport();
    t.up = false;
    sut = new EventShipper({ hostId: 'h1', transport: t, spool: { dir }, logger: pino({ level: 'silent' }), retryMaxMs: 60_000 });
    sut.start();
    sut.event(rec('e1'));
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(t.published.length, 0);
    assert.equal(sut.status().lastError?.message, 'not connected to NATS');
    t.up = true;
    sut.wake();
    await eventually('e1 shipped', () => sut!.status().pending === 0);
    assert.deepEqual(t.published.map((p) => p.msgId), ['e1']);
  });
});

describe('--spool-max-bytes', () => {
  it('takes plain bytes and K/M/G suffixes', () => {
    const parse = byteSize('--spool-max-bytes', 1024, 1024 ** 4);
    assert.equal(parse('65536'), 65536);
    assert.equal(parse('64M'), 64 * 1024 * 1024);
    assert.equal(parse('64MiB'), 64 * 1024 * 1024);
    assert.equal(parse('1g'), 1024 ** 3);
    assert.equal(parse('512K'), 512 * 1024);
    assert.throws(() => parse('12'), /byte count/);
    assert.throws(() => parse('lots'), /byte count/);
  });
});
