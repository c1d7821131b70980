// What a user of `cgfence agent` sees at the DNS layer: listed names fail for
// processes of the deploy cgroup, everything else resolves through the
// upstream, processes outside the cgroup are untouched, and policy reloads
// (good and bad) behave. Real kernel, real agent, real dig; the only resolver
// ever asked is the harness's loopback upstream.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { AgentUnderTest, exec, Ran } from './agent-harness';
import type { JournalRecord } from '../journal/journal-record';
import { waitFor } from '@cgfence/devservices';

const DIG = ['dig', '+time=2', '+tries=1'];

/** The rcode dig printed ("NXDOMAIN", "NOERROR", ...), or undefined when it got no answer. */
function rcodeOf(r: Ran): string | undefined {
  return /status: ([A-Z]+)/.exec(r.stdout)?.[1];
}

/** The answer section's addresses, as `dig +short` prints them. */
function shortAnswers(r: Ran): string[] {
  return r.stdout.split('\n').map((l) => l.trim()).filter((l) => l !== '').sort();
}

function describeRan(r: Ran): string {
  return `exit ${r.code}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`;
}

/** What the upstream was asked for `name` (lower case, no trailing dot), from log entry `since` on. */
function upstreamAsked(sut: AgentUnderTest, name: string, since = 0): string[] {
  return sut.upstream.log.slice(since).filter((q) => q.name.replace(/\.$/, '') === name).map((q) => `${q.type}/${q.transport}`);
}

describe(`${AgentUnderTest.name}: DNS enforcement`, () => {
  let sut: AgentUnderTest;
  before(async () => {
    sut = await AgentUnderTest.start({
      policy: 'github.com\n*.githubusercontent.com\n',
      // Every blocked name has an upstream answer too: if a query leaked past
      // the proxy, the run would get an address instead of NXDOMAIN.
      records: {
        'github.com': { A: ['192.0.2.1'], AAAA: ['2001:db8::1'], HTTPS: true },
        'raw.githubusercontent.com': { A: ['192.0.2.2'] },
        'a.b.githubusercontent.com': { A: ['192.0.2.3'] },
        'githubusercontent.com': { A: ['192.0.2.4'] },
        'notgithub.com': { A: ['192.0.2.5'] },
        'allowed.example': { A: ['192.0.2.44'] },
      },
    });
  });
  after(() => sut?.stop());

  describe('blocked and allowed names, inside and outside the cgroup', () => {
    it('answers NXDOMAIN, marked as a cgfence block, for a listed name asked from a run, without asking the upstream', async () => {
      const seen = sut.upstream.log.length;
      const r = await sut.run([...DIG, '@127.0.0.53', 'github.com']);
      assert.equal(rcodeOf(r), 'NXDOMAIN', describeRan(r));
      assert.match(r.stdout, /blocked by cgfence policy/, 'the NXDOMAIN carries the cgfence extended error');
      assert.deepEqual(upstreamAsked(sut, 'github.com', seen), []);
      const e = await sut.waitForEvent('the block event for github.com', (x) => x.qname === 'github.com' && x.action === 'blocked');
      assert.equal(e.entry, 'github.com');
      assert.equal(e.method, 'dns');
    });

    it('returns the upstream answer for a name that is not listed', async () => {
      const r = await sut.run([...DIG, '+short', '@127.0.0.53', 'allowed.example']);
      assert.deepEqual(shortAnswers(r), ['192.0.2.44'], describeRan(r));
      assert.ok(upstreamAsked(sut, 'allowed.example').length > 0, 'the query went to the upstream through the proxy');
    });

    it('does not touch processes outside the cgroup: the same listed name resolves when asked directly', async () => {
      const direct = await exec('dig', [...DIG.slice(1), '+short', `@${sut.upstream.host}`, '-p', String(sut.upstream.port), 'github.com']);
      assert.deepEqual(shortAnswers(direct), ['192.0.2.1'], describeRan(direct));

      // And port 53 is not redirected for us: nothing listens on 127.0.0.53
      // here, so the query gets no cgfence answer (a timeout or a refusal).
      const before = sut.events().filter((x) => x.qname === 'github.com').length;
      const unredirected = await exec('dig', ['+time=1', '+tries=1', '@127.0.0.53', 'github.com']);
      assert.doesNotMatch(unredirected.stdout, /blocked by cgfence/, describeRan(unredirected));
      assert.equal(sut.events().filter((x) => x.qname === 'github.com').length, before, 'no event for a process outside the cgroup');
    });
  });

  describe('wildcards and label boundaries', () => {
    const cases: Array<{ name: string; blocked: boolean; address?: string; entry?: string; qname?: string }> = [
      { name: 'raw.githubusercontent.com', blocked: true, entry: '*.githubusercontent.com' },
      { name: 'a.b.githubusercontent.com', blocked: true, entry: '*.githubusercontent.com' },
      { name: 'githubusercontent.com', blocked: false, address: '192.0.2.4' },
      { name: 'notgithub.com', blocked: false, address: '192.0.2.5' },
      { name: 'GitHub.COM.', blocked: true, entry: 'github.com', qname: 'github.com' },
    ];
    for (const c of cases) {
      it(`${c.blocked ? 'blocks' : 'allows'} ${c.name}`, async () => {
        const seen = sut.upstream.log.length;
        const r = await sut.run([...DIG, '@127.0.0.53', c.name]);
        if (c.blocked) {
          assert.equal(rcodeOf(r), 'NXDOMAIN', describeRan(r));
          assert.deepEqual(upstreamAsked(sut, (c.qname ?? c.name), seen), [], 'the upstream was not asked');
          const qname = c.qname ?? c.name;
          const e = await sut.waitForEvent(`the block event for ${qname}`, (x) => x.qname === qname && x.action === 'blocked');
          assert.equal(e.entry, c.entry);
        } else {
          assert.equal(rcodeOf(r), 'NOERROR', describeRan(r));
          assert.match(r.stdout, new RegExp(`IN\\s+A\\s+${c.address!.replace(/\./g, '\\.')}`));
          assert.equal(sut.events().filter((x) => x.qname === c.name).length, 0, `no event for ${c.name}`);
        }
      });
    }
  });

  describe('query types', () => {
    for (const [flag, qtype] of [['A', 'A'], ['AAAA', 'AAAA'], ['TYPE65', 'HTTPS']] as const) {
      it(`answers NXDOMAIN to a ${qtype} query for a listed name, without asking the upstream`, async () => {
        const seen = sut.upstream.log.length;
        const r = await sut.run([...DIG, '-t', flag, '@127.0.0.53', 'github.com']);
        assert.deepEqual(upstreamAsked(sut, 'github.com', seen), []);
        assert.equal(rcodeOf(r), 'NXDOMAIN', describeRan(r));
        assert.equal(r.stdout.match(/ANSWER: (\d+)/)?.[1], '0', 'no records in the answer');
        await sut.waitForEvent(`a ${qtype} block event`, (x) => x.qname === 'github.com' && x.qtype === qtype && x.action === 'blocked');
      });
    }
  });
});

describe(`${AgentUnderTest.name}: DNS audit mode`, () => {
  let sut: AgentUnderTest;
  before(async () => {
    sut = await AgentUnderTest.start({ mode: 'audit', policy: 'github.com\n', records: { 'github.com': { A: ['192.0.2.1'] } } });
  });
  after(() => sut?.stop());

  it('lets a listed name resolve through the upstream and records an audited event', async () => {
    const r = await sut.run([...DIG, '+short', '@127.0.0.53', 'github.com'], { labels: { job: 'audit' } });
    assert.deepEqual(shortAnswers(r), ['192.0.2.1'], describeRan(r));
    assert.ok(upstreamAsked(sut, 'github.com').length > 0, 'the upstream was asked');
    const e = await sut.waitForEvent('the audited event', (x) => x.qname === 'github.com');
    assert.equal(e.action, 'audited');
    assert.equal(e.entry, 'github.com');
    assert.equal(e.labels['job'], 'audit');
    assert.equal(sut.events().filter((x) => x.action === 'blocked').length, 0, 'nothing is recorded as blocked in audit mode');
  });
});

describe(`${AgentUnderTest.name}: policy reload on SIGHUP`, () => {
  let sut: AgentUnderTest;
  before(async () => {
    sut = await AgentUnderTest.start({
      policy: 'github.com\n',
      records: {
        'github.com': { A: ['192.0.2.1'] },
        'added.example': { A: ['192.0.2.20'] },
        'in-bad-file.example': { A: ['192.0.2.21'] },
      },
    });
  });
  after(() => sut?.stop());

  const ask = (name: string): Promise<Ran> => sut.run([...DIG, '@127.0.0.53', name]);

  it('blocks a name added to the policy file after SIGHUP', async () => {
    assert.equal(rcodeOf(await ask('added.example')), 'NOERROR', 'not blocked before the reload');
    assert.equal(rcodeOf(await ask('github.com')), 'NXDOMAIN', 'blocked before the reload');
    sut.writePolicy('github.com\nadded.example\n');
    sut.signal('SIGHUP');
    let last: Ran | undefined;
    await waitFor('added.example to be blocked after SIGHUP', async () => {
      last = await ask('added.example');
      return rcodeOf(last) === 'NXDOMAIN';
    }, 10_000).catch((err: Error) => assert.fail(`${err.message}\nlast answer: ${last ? describeRan(last) : '(none)'}`));
    assert.equal(rcodeOf(await ask('github.com')), 'NXDOMAIN', 'the old entry is still blocked');
  });

  it('keeps the last good policy enforced and records an alert when the new file is bad', async () => {
    const earlier = new Set(sut.events().map((x) => x.id));
    sut.writePolicy('github.com\nhttps://in-bad-file.example/\nin-bad-file.example\n');
    sut.signal('SIGHUP');
    const alert = await sut.waitForEvent('an alert about the rejected policy file', (x) => x.action === 'alert' && !earlier.has(x.id));
    assert.match(alert.message ?? '', /policy/i);

    assert.equal(rcodeOf(await ask('github.com')), 'NXDOMAIN', 'old entry still blocked');
    assert.equal(rcodeOf(await ask('added.example')), 'NXDOMAIN', 'entry of the last good file still blocked');
    const r = await ask('in-bad-file.example');
    assert.equal(rcodeOf(r), 'NOERROR', `a name only in the rejected file is not blocked\n${describeRan(r)}`);

    const status = await sut.cli(['agent', 'status', '--json']);
    const s = JSON.parse(status.stdout) as { policy: { lastError?: string; domains: number } };
    assert.ok(s.policy.lastError, 'status shows the rejected reload');
    assert.equal(s.policy.domains, 2);
  });

  it('records events with the version of the policy that blocked them', async () => {
    const events: JournalRecord[] = sut.events().filter((x) => x.action === 'blocked');
    const versions = new Set(events.map((x) => x.policyVersion));
    assert.ok(versions.size >= 2, `blocks before and after the reload carry different policy versions: ${[...versions].join(', ')}`);
  });
});
