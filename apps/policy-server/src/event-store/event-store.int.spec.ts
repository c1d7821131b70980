import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { DataSource } from 'typeorm';
import { DomainError } from '../common/errors';
import { TestPolicyServer } from '../testing/test-server';
import { EventStore } from './event-store.service';

const meta = { actor: 'alice', correlationId: 'c-1', time: '2026-11-21T00:00:00.000Z' };

describe(EventStore.name, () => {
  let env: TestPolicyServer;
  let sut: EventStore;
  let db: DataSource;

  before(async () => {
    env = await TestPolicyServer.start('event_store');
    sut = env.get(EventStore);
    db = env.get(DataSource);
  });
  after(() => env?.stop());

  it('appends events with consecutive stream versions and reads them back in order', async () => {
    await db.transaction((m) => sut.append('s-1', 0, [{ type: 'A', data: { n: 1 } }, { type: 'B', data: { n: 2 } }], meta, m));
    await db.transaction((m) => sut.append('s-1', 2, [{ type: 'C', data: { n: 3 } }], meta, m));
    const events = await sut.readStream('s-1');
    assert.deepEqual(events.map((e) => [e.streamVersion, e.type, e.data]), [[1, 'A', { n: 1 }], [2, 'B', { n: 2 }], [3, 'C', { n: 3 }]]);
    assert.deepEqual(events[0]?.metadata, meta);
    assert.ok(events[0]!.position < events[2]!.position);
  });

  it('refuses an append with a stale expected version and writes nothing', async () => {
    await db.transaction((m) => sut.append('s-2', 0, [{ type: 'A', data: {} }], meta, m));
    await assert.rejects(
      db.transaction((m) => sut.append('s-2', 0, [{ type: 'B', data: {} }, { type: 'C', data: {} }], meta, m)),
      (err: unknown) => err instanceof DomainError && err.code === 'stream.conflict',
    );
    assert.equal((await sut.readStream('s-2')).length, 1);
  });

  it('lets exactly one of two racing writers win; the loser writes nothing', async () => {
    const write = (tag: string) =>
      db.transaction(async (m) => {
        await sut.append('s-3', 0, [{ type: tag, data: {} }], meta, m);
        // Hold the transaction open so both writers pass the version check first.
        await m.query('select pg_sleep(0.2)');
      });
    const results = await Promise.allSettled([write('first'), write('second')]);
    const won = results.filter((r) => r.status === 'fulfilled');
    const lost = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    assert.equal(won.length, 1);
    assert.equal(lost.length, 1);
    assert.ok(lost[0]!.reason instanceof DomainError && lost[0]!.reason.code === 'stream.conflict');
    assert.equal((await sut.readStream('s-3')).length, 1);
  });

  it('is append-only: the database refuses to update or delete events', async () => {
    await assert.rejects(db.query(`update events set event_type = 'X' where stream_id = 's-1'`), /append-only/);
    await assert.rejects(db.query(`delete from events where stream_id = 's-1'`), /append-only/);
  });
});
