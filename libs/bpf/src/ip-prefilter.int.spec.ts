// Real kernel: the IPv4 /16 prefilter (cgf_prefilter4) in front of the LPM
// trie and the learned addresses. A /16 whose slot is 0 is never looked up,
// so these tests check both what gets through and what the map holds: listed
// and learned addresses are refused, their /16 neighbours and clean /16s pass,
// marks follow the policy through swaps (and survive for learned addresses),
// and nothing leaks while a swap moves the blocked set to other /16s.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataPlane } from './data-plane';
import { prefilterSlotOf } from './prefilter';
import { bulkCidrs, closedPort, forgetLearned, KernelSandbox, markedCount, prefilterMarks, sleep } from './testing/kernel-fixture';

const slot = prefilterSlotOf;

describe(`${DataPlane.name} IPv4 /16 prefilter`, () => {
  let box: KernelSandbox;
  let sut: DataPlane;
  let port: number;
  const config = { proxyPort: 5399, mode: 'enforce' as const, failMode: 'open' as const, heartbeatTimeoutMs: 0 };
  const connect = async (host: string): Promise<string | undefined> => (await box.run({ op: 'connect', host, port })).result;
  const marks = () => prefilterMarks(box.pinDir);

  before(async () => {
    box = new KernelSandbox('prefilter');
    sut = DataPlane.attach({ cgroupPath: box.cgroupPath, pinDir: box.pinDir, config });
    port = await closedPort();
  });

  after(async () => {
    sut?.close();
    await box?.destroy();
  });

  it('starts fail safe with every /16 marked, and the first apply settles it to what is listed', () => {
    assert.equal(markedCount(marks()), 65_536, 'attach marks every slot');
    assert.deepEqual(sut.ipPrefilterStatus(), { markedSlots: 65_536, settled: false });

    sut.applyIpPolicy({ v4: [], v6: ['2001:db8::/32'] });

    assert.equal(markedCount(marks()), 0, 'nothing listed, nothing learned: no /16 needs the lookup');
    assert.deepEqual(sut.ipPrefilterStatus(), { markedSlots: 0, settled: true });
  });

  it('refuses a listed /32 while an unlisted address in the same /16 and one in a clean /16 pass', async () => {
    sut.applyIpPolicy({ v4: ['127.1.0.2/32'], v6: [] });

    const m = marks();
    assert.equal(m[slot('127.1.0.0')], 1);
    assert.equal(m[slot('127.2.0.0')], 0);
    assert.equal(markedCount(m), 1);
    assert.equal(await connect('127.1.0.2'), 'EPERM');
    assert.equal(await connect('127.1.0.3'), 'ECONNREFUSED', 'same /16, not listed: full lookup, let through');
    assert.equal(await connect('127.2.0.1'), 'ECONNREFUSED', 'clean /16: prefilter lets it through');
  });

  it('marks every /16 a shorter prefix covers: a /8 and a /0 block addresses across all their /16s', async () => {
    await sut.applyIpPolicyAsync({ v4: ['127.0.0.0/8', '198.51.100.0/24', '10.0.0.0/12'], v6: [] });
    let m = marks();
    assert.equal(markedCount(m), 256 + 1 + 16);
    for (let b = 0; b < 256; b++) assert.equal(m[127 * 256 + b], 1, `127.${b}.0.0/16 marked`);
    assert.equal(m[slot('126.255.0.0')], 0);
    assert.equal(m[slot('128.0.0.0')], 0);
    assert.equal(m[slot('10.15.0.0')], 1);
    assert.equal(m[slot('10.16.0.0')], 0);
    for (const host of ['127.0.0.9', '127.5.0.1', '127.200.3.4', '127.255.255.254']) assert.equal(await connect(host), 'EPERM', host);

    sut.applyIpPolicy({ v4: ['0.0.0.0/0'], v6: [] });
    m = marks();
    assert.equal(markedCount(m), 65_536);
    for (const host of ['127.9.9.9', '127.128.0.1']) assert.equal(await connect(host), 'EPERM', host);

    sut.applyIpPolicy({ v4: [], v6: [] });
    assert.equal(markedCount(marks()), 0, 'replacing the /0 clears every mark');
    assert.equal(await connect('127.9.9.9'), 'ECONNREFUSED');
  });

  it('blocks a learned address in an otherwise clean /16, and stops once it expired or was removed', async () => {
    sut.applyIpPolicy({ v4: [], v6: [] });
    sut.learnAddresses(['127.77.0.5'], 60);
    sut.learnAddresses(['127.78.0.5', '::ffff:127.79.0.5'], 60);

    const m = marks();
    assert.deepEqual(
      [m[slot('127.77.0.0')], m[slot('127.78.0.0')], m[slot('127.79.0.0')]],
      [1, 1, 1],
      'a learned address (also in its v4-mapped IPv6 form) marks its /16 before it is inserted',
    );
    assert.equal(markedCount(m), 3);
    assert.equal(await connect('127.77.0.5'), 'EPERM');
    assert.equal(await connect('127.77.0.6'), 'ECONNREFUSED');
    assert.equal(await connect('127.78.0.5'), 'EPERM');
    assert.equal(await connect('127.79.0.5'), 'EPERM');

    assert.equal(forgetLearned(box.pinDir), 3); // removed behind the DataPlane's back
    assert.equal(await connect('127.78.0.5'), 'ECONNREFUSED', 'removed: the mark stays, the full lookup finds nothing');
    const learnedAt = Date.now();
    sut.learnAddresses(['127.77.0.5'], 1);
    assert.equal(await connect('127.77.0.5'), 'EPERM');
    await sleep(learnedAt + 1300 - Date.now());
    assert.equal(await connect('127.77.0.5'), 'ECONNREFUSED', 'expired');

    sut.applyIpPolicy({ v4: [], v6: [] });
    assert.equal(markedCount(marks()), 0, 'the next apply clears the marks of expired and removed addresses');
  });

  it('after a swap, clears the /16s only the old policy needed and keeps the marks of live learned addresses', async () => {
    sut.applyIpPolicy({ v4: ['127.10.0.1/32', '127.11.0.0/24', '127.12.0.0/20'], v6: [] });
    sut.learnAddresses(['127.10.0.9', '127.13.0.9'], 60);
    try {
      assert.deepEqual(await sut.applyIpPolicyAsync({ v4: ['127.14.0.1/32'], v6: [] }), { v4: 1, v6: 0 });

      const m = marks();
      assert.equal(m[slot('127.10.0.0')], 1, 'listed before, and a learned address lives there');
      assert.equal(m[slot('127.11.0.0')], 0, 'listed before only: cleared');
      assert.equal(m[slot('127.12.0.0')], 0, 'listed before only: cleared');
      assert.equal(m[slot('127.13.0.0')], 1, 'learned');
      assert.equal(m[slot('127.14.0.0')], 1, 'listed now');
      assert.equal(markedCount(m), 3);
      assert.equal(sut.ipPrefilterStatus().settled, true);
      assert.equal(await connect('127.11.0.5'), 'ECONNREFUSED');
      assert.equal(await connect('127.10.0.1'), 'ECONNREFUSED');
      assert.equal(await connect('127.10.0.9'), 'EPERM');
      assert.equal(await connect('127.13.0.9'), 'EPERM');
      assert.equal(await connect('127.14.0.1'), 'EPERM');
    } finally {
      forgetLearned(box.pinDir);
    }
  });

  it('leaves the marks a superset while applies overlap, and the last one settles them', async () => {
    sut.applyIpPolicy({ v4: ['127.20.0.1/32'], v6: [] });
    const a = sut.prepareIpPolicy({ v4: ['127.21.0.1/32'], v6: [] });
    const b = sut.prepareIpPolicy({ v4: ['127.22.0.1/32'], v6: [] });

    const first = a.commit();
    const second = b.commit();
    await first;
    const between = marks();
    await second;
    const m = marks();

    // When the first commit came back the second was still on its way (it
    // may already have marked its /16): nothing was cleared then.
    assert.equal(between[slot('127.20.0.0')], 1);
    assert.equal(between[slot('127.21.0.0')], 1);
    assert.deepEqual([m[slot('127.20.0.0')], m[slot('127.21.0.0')], m[slot('127.22.0.0')]], [0, 0, 1]);
    assert.equal(markedCount(m), 1);
    assert.equal(await connect('127.22.0.1'), 'EPERM');
    assert.equal(await connect('127.21.0.1'), 'ECONNREFUSED');
  });

  describe('swaps that move the blocked set to other /16s', () => {
    const stop = join(tmpdir(), `cgfence-prefilter-stop-${process.pid}-${Date.now()}`);
    const progress = `${stop}.rounds`;
    after(() => {
      rmSync(stop, { force: true });
      rmSync(progress, { force: true });
    });

    it('never lets a listed address through: old set, new set and common entries, under a connect loop', async (t) => {
      // A and B share no /16 but the one of the common entry; each swap marks
      // the new set's /16s before the trie goes in and clears the old ones after.
      const a = '127.30.0.2';
      const b = '127.31.0.2';
      const common = '127.32.0.2';
      const setA = [...bulkCidrs(10, 50_000), `${a}/32`, `${common}/32`];
      const setB = [...bulkCidrs(11, 50_000), `${b}/32`, `${common}/32`];
      sut.applyIpPolicy({ v4: setA, v6: [] });

      const probe = box.spawnClient({ op: 'probe_seq', host: a, hosts: [a, common, b, common], port, stop, progress });
      await probe.nextLine();
      const rounds = (): number => Number(readFileSync(progress, 'utf8').trim() || 0);
      const swaps = 10;
      for (let i = 0; i < swaps; i++) {
        const next = { v4: i % 2 === 0 ? setB : setA, v6: [] };
        // Mostly through the builder thread (the agent's path), every third on this thread.
        if (i % 3 === 2) sut.applyIpPolicy(next);
        else await sut.applyIpPolicyAsync(next);
        // Let the probe make two whole rounds under each set, however loaded
        // the machine (a starved probe once saw only set A in all ten swaps).
        const since = existsSync(progress) ? rounds() : 0;
        for (let w = 0; w < 500 && (!existsSync(progress) || rounds() < since + 2); w++) await sleep(10);
        await sleep(30);
      }
      writeFileSync(stop, '');
      const { seq } = await probe.done;
      assert.ok(seq, 'the probe reported');
      t.diagnostic(`${seq.length} connects during ${swaps} swaps of 50,002 CIDRs`);

      const at = (host: 0 | 1 | 2 | 3) => [...seq].filter((_, i) => i % 4 === host);
      assert.deepEqual(new Set(at(1)), new Set(['E']), 'the common entry was refused every time');
      assert.deepEqual(new Set(at(3)), new Set(['E']), 'the common entry was refused every time');
      // The tries swap atomically, so at any moment exactly one of a and b is
      // blocked, and swaps are tens of ms apart while three probes take well
      // under one. So of three consecutive probes of a, b, a (or b, a, b) at
      // least one must be refused: all three let through means the one in
      // the middle leaked (its set was in force, its /16 was not marked), or
      // an outer one did.
      const ab = [...seq].filter((_, i) => i % 2 === 0);
      for (let i = 1; i + 1 < ab.length; i++) {
        if (ab[i - 1] === 'R' && ab[i] === 'R' && ab[i + 1] === 'R') {
          assert.fail(`a listed address got through at probe ${i} of ${ab.length}: …${ab.slice(Math.max(0, i - 8), i + 8).join('')}…`);
        }
      }
      assert.ok(!ab.includes('X'), 'every probe was refused or reached the closed port');
      const tally = (list: string[]) => ({ E: list.filter((x) => x === 'E').length, R: list.filter((x) => x === 'R').length });
      const ta = tally(at(0));
      const tb = tally(at(2));
      t.diagnostic(`a: ${JSON.stringify(ta)}, b: ${JSON.stringify(tb)}`);
      assert.ok(ta.E > 0 && ta.R > 0 && tb.E > 0 && tb.R > 0, 'both sets were in force at times while the probe ran');

      // The last swap installed A.
      const m = marks();
      assert.equal(m[slot(a)], 1);
      assert.equal(m[slot(b)], 0, "B's /16 was cleared after A went back in");
      assert.equal(m[slot('11.0.0.0')], 0);
      assert.equal(m[slot('10.0.0.0')], 1);
      assert.equal(await connect(a), 'EPERM');
      assert.equal(await connect(b), 'ECONNREFUSED');
    });
  });

  it('creates and pins the prefilter next to pins of an older agent without it, and blocks before the first apply', async () => {
    sut.applyIpPolicy({ v4: ['127.40.0.2/32'], v6: [] });
    sut.learnAddresses(['127.41.0.2'], 60);
    sut.close();
    try {
      const pin = join(box.pinDir, 'maps', 'cgf_prefilter4');
      unlinkSync(pin); // what an older agent left: every pin but this one

      sut = DataPlane.attach({ cgroupPath: box.cgroupPath, pinDir: box.pinDir, config });

      assert.equal(sut.adopted, true);
      assert.ok(existsSync(pin), 'pinned again');
      assert.equal(await connect('127.40.0.2'), 'EPERM', 'the adopted trie is enforced at once');
      assert.equal(await connect('127.41.0.2'), 'EPERM', 'and the adopted learned address');
      assert.equal(markedCount(marks()), 65_536, 'a fresh prefilter starts with every /16 marked');

      sut.applyIpPolicy({ v4: ['127.40.0.2/32'], v6: [] });
      const m = marks();
      assert.equal(markedCount(m), 2);
      assert.deepEqual([m[slot('127.40.0.0')], m[slot('127.41.0.0')]], [1, 1]);
      assert.equal(await connect('127.41.0.2'), 'EPERM');
    } finally {
      forgetLearned(box.pinDir);
    }
  });
});
