// Issue 13, "'!resolve' learned addresses", on the real kernel through a real
// agent: a wildcard '!resolve' entry whose subdomains a run invents fills only
// its own quota (its oldest addresses stay blocked, an alert says the quota is
// full) while a plain entry's address stays blocked; and an upstream that
// stops answering the refresh of a plain entry never lets its address lapse.
// The quota is made small (--learned-per-entry 4) and the TTL short
// (--resolve-ttl-min 2) so both happen in seconds.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { constants } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort, waitFor } from '@cgfence/devservices';
import type { UpstreamRecords } from '../dns/testing/loopback-upstream';
import { AgentUnderTest } from './agent-harness';

const EPERM = constants.errno.EPERM;
const SUBDOMAINS = 10;
const QUOTA = 4;

/** Resolves each name of argv[1] (errors ignored), one at a time, 300 ms apart; prints nothing. */
const RESOLVE = `
import socket, sys, time
for n in sys.argv[1].split(','):
    try:
        socket.getaddrinfo(n, 80, socket.AF_INET)
    except socket.gaierror:
        pass
    time.sleep(0.3)
`;

/** connect_ex to each address of argv[1] on port argv[2]; prints {address: errno}. */
const CONNECT = `
import json, socket, sys
out = {}
for a in sys.argv[1].split(','):
    s = socket.socket(); s.settimeout(2)
    out[a] = s.connect_ex((a, int(sys.argv[2])))
    s.close()
print(json.dumps(out))
`;

const fillAddress = (i: number): string => `127.0.1.${10 + i}`;

function records(): Record<string, UpstreamRecords> {
  const r: Record<string, UpstreamRecords> = { 'plain.example': { A: ['127.0.0.77'], ttl: 2 } };
  for (let i = 0; i < SUBDOMAINS; i++) r[`n${i}.fill.example`] = { A: [fillAddress(i)], ttl: 600 };
  return r;
}

for (const mode of ['enforce', 'audit'] as const) {
  describe(`${AgentUnderTest.name}: '!resolve' learned addresses (${mode})`, () => {
    let sut: AgentUnderTest;
    let port: number;
    before(async () => {
      sut = await AgentUnderTest.start({
        policy: '*.fill.example !resolve\nplain.example !resolve\n',
        mode,
        records: records(),
        extraArgs: ['--learned-per-entry', String(QUOTA), '--resolve-ttl-min', '2'],
      });
      port = await freePort();
    });
    after(async () => sut?.stop());

    const connect = async (addrs: string[]): Promise<Record<string, number>> => {
      const r = await sut.run(['python3', '-c', CONNECT, addrs.join(','), String(port)]);
      assert.equal(r.code, 0, r.stderr);
      return JSON.parse(r.stdout) as Record<string, number>;
    };
    // Audit mode refuses nothing; the kernel records what it would have refused.
    const refused = mode === 'enforce' ? EPERM : constants.errno.ECONNREFUSED;

    it(`a wildcard filling its quota keeps its oldest ${QUOTA} addresses, alerts, and leaves the plain entry's address blocked`, async () => {
      if (mode === 'enforce') await waitFor('the plain entry learned at load', async () => (await connect(['127.0.0.77']))['127.0.0.77'] === EPERM, 10_000);
      else {
        // As in enforce mode, connect again until the address is learned: one connect made before that is never audited.
        await waitFor('the plain entry learned at load (audited connect)', async () => {
          await connect(['127.0.0.77']);
          await sleep(200);
          return sut.events().some((x) => x.method === 'ip' && x.destination === `127.0.0.77:${port}`);
        }, 10_000);
      }
      const names = Array.from({ length: SUBDOMAINS }, (_, i) => `n${i}.fill.example`);
      // One name at a time, each learned before the next is asked: "oldest" is then the first asked.
      const r = await sut.run(['python3', '-c', RESOLVE, names.join(',')], { timeoutMs: 60_000 });
      assert.equal(r.code, 0, r.stderr);
      const alert = await sut.waitForEvent('the quota alert', (x) => x.action === 'alert' && /quota full for !resolve entry \*\.fill\.example \(4 addresses\)/.test(x.message ?? ''));
      assert.match(alert.message ?? '', /new address\(es\) not blocked/);
      const all = [...Array.from({ length: SUBDOMAINS }, (_, i) => fillAddress(i)), '127.0.0.77'];
      let out: Record<string, number> = {};
      await waitFor('the first four learned', async () => (out = await connect(all))[fillAddress(QUOTA - 1)] === refused, 10_000);
      for (let i = 0; i < SUBDOMAINS; i++) {
        assert.equal(out[fillAddress(i)], i < QUOTA ? refused : constants.errno.ECONNREFUSED, `n${i}.fill.example -> ${fillAddress(i)}: ${JSON.stringify(out)}`);
      }
      assert.equal(out['127.0.0.77'], refused, "the plain entry's address");
      if (mode === 'audit') {
        // The kernel says what it would have refused: the first four and the plain address, journalled as audited ip events.
        await sut.waitForEvent('an audited ip event of a learned address', (x) => x.method === 'ip' && x.action === 'audited' && x.destination === `${fillAddress(0)}:${port}`);
        assert.ok(!sut.events().some((x) => x.method === 'ip' && x.destination === `${fillAddress(QUOTA)}:${port}`), 'nothing past the quota was learned');
      }
    });

    it("keeps a plain entry's address blocked while the upstream does not answer its refresh, for several TTLs", async () => {
      sut.upstream.behaviour = 'silent';
      const outage = Date.now();
      try {
        // TTL 2 s, blocked for 2 s + grace (2 x 1 s lookup timeout + 1 s); refresh due at 1.6 s, each failing one renews it.
        for (let i = 0; i < 4; i++) {
          await sleep(2000);
          const out = await connect(['127.0.0.77']);
          assert.equal(out['127.0.0.77'], refused, `${(i + 1) * 2} s into the outage`);
        }
        if (mode === 'audit') {
          // Audit refuses nothing: the kernel's would-block event 8 s into the outage shows the address is still learned.
          await sut.waitForEvent('an audited ip event late in the outage', (x) => x.method === 'ip' && x.destination === `127.0.0.77:${port}` && Date.parse(x.time) >= outage + 7000);
        }
      } finally {
        sut.upstream.behaviour = 'answer';
      }
      assert.match(sut.log, /refreshing a !resolve name failed; its last addresses stay blocked/);
    });
  });
}
