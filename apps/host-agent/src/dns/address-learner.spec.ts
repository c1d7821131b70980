import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AddressLearner, type AddressBlocker, type NameResolver, type ResolvedAddresses } from './address-learner';

class TableResolver implements NameResolver {
  lookups = 0;
  constructor(readonly table: Record<string, ResolvedAddresses | Error>) {}
  async resolveAddresses(name: string): Promise<ResolvedAddresses> {
    this.lookups++;
    const hit = this.table[name];
    if (hit instanceof Error) throw hit;
    return hit ?? { addresses: [], ttlSeconds: undefined };
  }
}

class RecordingBlocker implements AddressBlocker {
  readonly blocked: Array<{ addrs: string[]; ttl: number }> = [];
  readonly entries: string[] = [];
  learn(addrs: string[], ttlSeconds: number, entry: string): void {
    this.blocked.push({ addrs, ttl: ttlSeconds });
    this.entries.push(entry);
  }
}

async function until(what: string, cond: () => boolean, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
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

  it("counts a name's addresses against the entry that matched it", async () => {
    const blocker = new RecordingBlocker();
    const sut = new AddressLearner(new TableResolver({ 'a.cdn.example': { addresses: ['192.0.2.7'], ttlSeconds: 60 } }), blocker);
    await sut.learn('a.cdn.example', '*.cdn.example');
    assert.deepEqual(blocker.entries, ['*.cdn.example']);
  });

  it('keeps the last addresses of a pinned name blocked while refreshes fail, retrying within half their TTL, until one succeeds', async () => {
    const blocker = new RecordingBlocker();
    const resolver = new TableResolver({ 'github.com': { addresses: ['192.0.2.1'], ttlSeconds: 0.2 } });
    const sut = new AddressLearner(resolver, blocker, { minTtlSeconds: 0.2, retrySeconds: 60, refreshGraceSeconds: 0.05 });
    try {
      sut.setPinnedNames(['github.com']);
      await until('the first learn', () => blocker.blocked.length === 1);
      resolver.table['github.com'] = new Error('upstream timeout');
      // Blocked for TTL + grace; the refresh at 160 ms fails: blocked again for as long, and retried 100 ms later (not after 60 s).
      await until('two failed refreshes', () => blocker.blocked.length >= 3);
      assert.deepEqual(blocker.blocked.slice(0, 3), [
        { addrs: ['192.0.2.1'], ttl: 0.25 },
        { addrs: ['192.0.2.1'], ttl: 0.25 },
        { addrs: ['192.0.2.1'], ttl: 0.25 },
      ]);
      resolver.table['github.com'] = { addresses: ['192.0.2.2'], ttlSeconds: 0.2 };
      await until('a successful refresh', () => blocker.blocked.some((b) => b.addrs[0] === '192.0.2.2'));
      resolver.table['github.com'] = new Error('down again');
      const at = blocker.blocked.length;
      await until('the next failed refresh', () => blocker.blocked.length > at);
      assert.deepEqual(blocker.blocked.at(-1), { addrs: ['192.0.2.2'], ttl: 0.25 }, 'what the last success learned is what is kept');
    } finally {
      sut.close();
    }
  });

  it('lets the addresses of a pinned name lapse when the name has none any more (an answer, not a failure)', async () => {
    const blocker = new RecordingBlocker();
    const resolver = new TableResolver({ 'github.com': { addresses: ['192.0.2.1'], ttlSeconds: 0.2 } });
    const sut = new AddressLearner(resolver, blocker, { minTtlSeconds: 0.2, retrySeconds: 0.1 });
    try {
      sut.setPinnedNames(['github.com']);
      await until('the first learn', () => blocker.blocked.length === 1);
      delete resolver.table['github.com'];
      const lookups = resolver.lookups;
      await until('two empty refreshes', () => resolver.lookups >= lookups + 2);
      assert.equal(blocker.blocked.length, 1);
    } finally {
      sut.close();
    }
  });

  it('retries a pinned name whose first lookup failed within about a second, not after retrySeconds', async () => {
    const blocker = new RecordingBlocker();
    const resolver = new TableResolver({ 'github.com': new Error('upstream timeout (agent still starting)') });
    const sut = new AddressLearner(resolver, blocker, { retrySeconds: 60 });
    try {
      sut.setPinnedNames(['github.com']);
      await until('the first lookup', () => resolver.lookups === 1);
      resolver.table['github.com'] = { addresses: ['192.0.2.9'], ttlSeconds: 300 };
      await until('the retry', () => blocker.blocked.length === 1, 2500);
      assert.deepEqual(blocker.blocked[0]!.addrs, ['192.0.2.9']);
    } finally {
      sut.close();
    }
  });
});
