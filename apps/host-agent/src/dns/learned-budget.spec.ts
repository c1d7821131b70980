import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { BlocklistEntry } from '../policy/entry-types';
import { LearnedAddressBudget, type QuotaAlert } from './learned-budget';

const plain: BlocklistEntry = { kind: 'domain', value: 'github.com', resolve: true };
const wild: BlocklistEntry = { kind: 'wildcard', value: '*.cdn.example', resolve: true };
const notResolved: BlocklistEntry = { kind: 'domain', value: 'other.example' };

function setup(capacity: number, maxPerEntry: number, entries: BlocklistEntry[] = [plain, wild, notResolved]) {
  let now = 1_000_000;
  const kernel: string[][] = [];
  const alerts: QuotaAlert[] = [];
  const sut = new LearnedAddressBudget((addrs) => void kernel.push([...addrs]), (a) => void alerts.push(a), { capacity, maxPerEntry, now: () => now });
  sut.setPolicy(entries);
  return { sut, kernel, alerts, advance: (ms: number) => (now += ms) };
}

const addr = (i: number): string => `10.0.${i >> 8}.${i & 0xff}`;

describe(LearnedAddressBudget.name, () => {
  it("splits the map's room between the '!resolve' entries, each share capped", () => {
    assert.equal(setup(100, 4096).sut.quota, 50, 'two resolving entries');
    assert.equal(setup(100_000, 4096).sut.quota, 4096, 'capped per entry');
    assert.equal(setup(100, 4096, []).sut.quota, 100, 'no entries: the cap of one');
    const many = Array.from({ length: 300 }, (_, i): BlocklistEntry => ({ kind: 'domain', value: `n${i}.example`, resolve: true }));
    assert.equal(setup(100, 4096, many).sut.quota, 1, 'never below one');
  });

  it('a wildcard filling its quota keeps its oldest addresses, refuses the new ones with an alert, and never touches a plain entry', () => {
    const { sut, kernel, alerts } = setup(20, 4096);
    assert.equal(sut.learn(['140.82.112.3', '140.82.112.4'], 60, 'github.com'), 0);
    for (let i = 0; i < 25; i++) sut.learn([addr(i)], 60, '*.cdn.example');
    assert.equal(sut.count('*.cdn.example'), 10);
    assert.deepEqual(kernel.slice(1).flat(), Array.from({ length: 10 }, (_, i) => addr(i)), 'the first ten learned, none after');
    assert.equal(alerts.length, 1, 'one alert per interval');
    assert.equal(alerts[0]!.entry, '*.cdn.example');
    assert.equal(alerts[0]!.quota, 10);
    assert.match(alerts[0]!.message, /quota full for !resolve entry \*\.cdn\.example \(10 addresses\): 1 new address/);
    // The plain entry still learns (a new address after a rotation) and renews.
    assert.equal(sut.learn(['140.82.112.3', '140.82.112.5'], 60, 'github.com'), 0);
    assert.equal(sut.count('github.com'), 3);
    assert.deepEqual(kernel.at(-1), ['140.82.112.3', '140.82.112.5']);
  });

  it('renews an address it holds even when the quota is full, and frees room as TTLs run out', () => {
    const { sut, kernel, advance } = setup(4, 4096, [wild, plain]);
    sut.learn([addr(1), addr(2)], 30, '*.cdn.example');
    assert.equal(sut.learn([addr(3)], 30, '*.cdn.example'), 1);
    assert.equal(sut.learn([addr(1)], 30, '*.cdn.example'), 0, 'renewal of a held address');
    advance(31_000);
    assert.equal(sut.learn([addr(3)], 30, '*.cdn.example'), 0, 'the expired ones left the count');
    assert.deepEqual(kernel.at(-1), [addr(3)]);
  });

  it('adds up refusals between alerts and says them in the next one', () => {
    const { sut, alerts, advance } = setup(2, 4096, [wild, plain]);
    sut.learn([addr(1)], 600, '*.cdn.example');
    sut.learn([addr(2), addr(3)], 600, '*.cdn.example');
    sut.learn([addr(4)], 600, '*.cdn.example');
    advance(61_000);
    sut.learn([addr(5)], 600, '*.cdn.example');
    assert.deepEqual(alerts.map((a) => a.refused), [2, 2]);
  });

  it('alerts and throws when the kernel map itself refuses, and does not count what it could not write', () => {
    const alerts: QuotaAlert[] = [];
    const sut = new LearnedAddressBudget(
      () => {
        throw new Error('bpf_map_update_elem(cgf_learned): E2BIG');
      },
      (a) => void alerts.push(a),
      { capacity: 10, maxPerEntry: 10 },
    );
    sut.setPolicy([plain]);
    assert.throws(() => sut.learn(['192.0.2.1'], 60, 'github.com'), /E2BIG/);
    assert.match(alerts[0]!.message, /learned-address map full: 1 address\(es\) of !resolve entry github.com not blocked/);
    assert.equal(sut.count('github.com'), 0);
  });

  it('forgets the counts of entries a new policy no longer has', () => {
    const { sut } = setup(20, 4096);
    sut.learn([addr(1)], 60, '*.cdn.example');
    sut.setPolicy([plain]);
    assert.equal(sut.count('*.cdn.example'), 0);
    assert.equal(sut.quota, 20);
  });
});
