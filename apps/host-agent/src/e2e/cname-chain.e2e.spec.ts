// Issue 13, "CNAME chains", as a user of `cgfence run` sees them: an allowed
// name whose answer is a CNAME chain to a listed name gets NXDOMAIN (glibc's
// getent, dig over UDP and TCP), and the journal's event names both the asked
// name and the listed one; in audit mode the answer passes and the event says
// it would have been blocked. Real kernel, real agent, the test's own upstream.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { UpstreamRecords } from '../dns/testing/loopback-upstream';
import { AgentUnderTest } from './agent-harness';

const RECORDS: Record<string, UpstreamRecords> = {
  'releases.internal.example': { CNAME: 'cdn.internal.example' },
  'cdn.internal.example': { CNAME: 'objects.githubusercontent.com' },
  'objects.githubusercontent.com': { A: ['127.0.0.55'] },
  'docs.internal.example': { CNAME: 'pages.github.com' },
  'pages.github.com': { A: ['127.0.0.56'] },
  'mirror.internal.example': { CNAME: 'mirror.example.net' },
  'mirror.example.net': { A: ['127.0.0.57'] },
};

const POLICY = 'objects.githubusercontent.com\n*.github.com\n';

for (const mode of ['enforce', 'audit'] as const) {
  describe(`${AgentUnderTest.name}: CNAME chains to listed names (${mode})`, () => {
    let sut: AgentUnderTest;
    before(async () => {
      sut = await AgentUnderTest.start({ policy: POLICY, mode, records: RECORDS });
    });
    after(async () => sut?.stop());

    it(`getent hosts of an allowed name whose chain reaches a listed name ${mode === 'enforce' ? 'finds nothing' : 'gets the address'}; the event names both`, async () => {
      const r = await sut.run(['sh', '-c', 'echo pid=$$; exec getent hosts releases.internal.example'], { labels: { test: 'cname' } });
      const pid = Number(/pid=(\d+)/.exec(r.stdout)?.[1]);
      if (mode === 'enforce') {
        assert.equal(r.code, 2, `getent: not found (${r.stdout}${r.stderr})`);
        assert.doesNotMatch(r.stdout, /127\.0\.0\.55/);
      } else {
        assert.equal(r.code, 0, r.stderr);
        assert.match(r.stdout, /127\.0\.0\.55\s+objects\.githubusercontent\.com/);
      }
      const e = await sut.waitForEvent('the chain event', (x) => x.qname === 'releases.internal.example' && x.pid === pid);
      assert.equal(e.action, mode === 'enforce' ? 'blocked' : 'audited');
      assert.equal(e.method, 'dns');
      assert.equal(e.entry, 'objects.githubusercontent.com');
      assert.equal(e.cnameTarget, 'objects.githubusercontent.com');
      assert.deepEqual(e.labels, { test: 'cname' });
      assert.match(e.cmdline ?? '', /getent hosts releases\.internal\.example/);
    });

    it(`dig over UDP and TCP: a wildcard entry matched by a chain target ${mode === 'enforce' ? 'is NXDOMAIN' : 'passes'}; a clean chain passes`, async () => {
      const dig = async (name: string, tcp: boolean): Promise<string> => {
        const r = await sut.run(['dig', '+tries=1', '+time=3', ...(tcp ? ['+tcp'] : []), name, 'A']);
        assert.equal(r.code, 0, `dig ${name}: ${r.stdout}${r.stderr}`);
        return /status: (\w+)/.exec(r.stdout)?.[1] ?? r.stdout;
      };
      for (const tcp of [false, true]) {
        assert.equal(await dig('docs.internal.example', tcp), mode === 'enforce' ? 'NXDOMAIN' : 'NOERROR', `tcp=${tcp}`);
        assert.equal(await dig('mirror.internal.example', tcp), 'NOERROR', `tcp=${tcp}`);
      }
      const chained = sut.events().filter((x) => x.qname === 'docs.internal.example');
      assert.ok(chained.length >= 2, JSON.stringify(chained));
      for (const e of chained) {
        assert.equal(e.entry, '*.github.com');
        assert.equal(e.cnameTarget, 'pages.github.com');
      }
      assert.equal(sut.events().filter((x) => x.qname === 'mirror.internal.example').length, 0, 'a clean chain records nothing');
    });
  });
}
