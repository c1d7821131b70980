import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AddressLearner, type AddressBlocker, type NameResolver, type ResolvedAddresses } from './address-learner';

class TableResolver implements NameResolver {
  lookups = 0;
  constructor(private readonly table: Record<string, ResolvedAddresses | Error>) {}
  async resolveAddresses(name: string): Promise<ResolvedAddresses> {
    this.lookups++;
    const hit = this.table[name];
    if (hit instanceof Error) throw hit;
    return hit ?? { addresses: [], ttlSeconds: undefined };
  }
}

class RecordingBlocker implements AddressBlocker {
  readonly blocked: Array<{ addrs: string[]; ttl: number }> = [];
  learn(addrs: string[], ttlSeconds: number): void {
    this.blocked.push({ addrs, ttl: ttlSeconds });
  }
}

describe(AddressLearner.name, () => {
  it('blocks the addresses of a name for its smallest TTL', async () => {
    const blocker = new RecordingBlocker();
    const sut = new AddressLearner(new TableResolver({ 'github.com': { addresses: ['140.82.112.3', '2001:db8::3'], ttlSeconds: 120 } }), blocker);
    const outcome = await sut.learn('github.com');
    assert.deepEqual(outcome, { status: 'learned', addresses: ['140.82.112.3', '2001:db8::3'], ttlSeconds: 120 });
    assert.deepEqual(blocker.blocked, [{ addrs: ['140.82.112.3', '2001:db8::3'], ttl: 120 }]);
  });

  it('clamps the TTL to at least 30 s and at most an hour', async () => {
    const blocker = new RecordingBlocker();
    const sut = new AddressLearner(
      new TableResolver({ short: { addresses: ['192.0.2.1'], ttlSeconds: 1 }, long: { addresses: ['192.0.2.2'], ttlSeconds: 86_400 } }),
      blocker,
    );
    await sut.learn('short');
    await sut.learn('long');
    assert.deepEqual(blocker.blocked.map((b) => b.ttl), [30, 3600]);
  });

  it('does not resolve a name again while its addresses are still fresh, and shares a lookup in progress', async () => {
    let now = 1_000_000;
    const resolver = new TableResolver({ 'github.com': { addresses: ['192.0.2.1'], ttlSeconds: 100 } });
    const sut = new AddressLearner(resolver, new RecordingBlocker(), { now: () => now });
    await Promise.all([sut.learn('github.com'), sut.learn('github.com')]);
    assert.equal(resolver.lookups, 1);
    assert.deepEqual(await sut.learn('github.com'), { status: 'cached' });
    now += 81_000; // past 80% of the TTL
    assert.equal((await sut.learn('github.com')).status, 'learned');
    assert.equal(resolver.lookups, 2);
  });

  it('reports a failed or empty lookup without blocking anything', async () => {
    const blocker = new RecordingBlocker();
    const sut = new AddressLearner(new TableResolver({ broken: new Error('upstream down') }), blocker);
    assert.deepEqual(await sut.learn('broken'), { status: 'failed', error: 'upstream down' });
    assert.deepEqual(await sut.learn('nothing.example'), { status: 'empty' });
    assert.equal(blocker.blocked.length, 0);
  });
});
