// Issue 13, "a policy file caught half-written": a policy file rewritten in
// place (truncate, then write) while a run hammers a listed address and a
// listed name is never enforced while empty or partial. Real kernel, real agent.
import { spawn } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, mkdtempSync, openSync, rmSync, writeSync, writeFileSync } from 'node:fs';
import { constants, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort, waitFor } from '@cgfence/devservices';
import { AgentUnderTest } from './agent-harness';

const EPERM = constants.errno.EPERM;

/**
 * For argv[1] seconds: TCP connect to 127.0.0.9:argv[2] (listed) and getaddrinfo
 * of blocked.example (listed), alternately. Prints counts: what got through
 * (`leaks`), what was refused as expected, anything else.
 */
const HAMMER = `
import json, socket, sys, time
end = time.time() + float(sys.argv[1]); port = int(sys.argv[2])
n = {"connects": 0, "eperm": 0, "lookups": 0, "noname": 0, "leaks": [], "other": []}
while time.time() < end:
    n["connects"] += 1
    try:
        socket.create_connection(("127.0.0.9", port), 1).close()
        n["leaks"].append("connect")
    except OSError as e:
        if e.errno == ${EPERM}: n["eperm"] += 1
        elif e.errno == 111: n["leaks"].append("connect reached the address (ECONNREFUSED)")
        else: n["other"].append(str(e))
    n["lookups"] += 1
    try:
        n["leaks"].append("lookup " + repr(socket.getaddrinfo("blocked.example", 80, socket.AF_INET, socket.SOCK_STREAM)[0][4]))
    except socket.gaierror as e:
        if e.errno == socket.EAI_NONAME: n["noname"] += 1
        else: n["other"].append(str(e))
n["leaks"] = n["leaks"][:20]; n["other"] = n["other"][:20]
print(json.dumps(n))
`;

interface HammerCounts {
  connects: number;
  eperm: number;
  lookups: number;
  noname: number;
  leaks: string[];
  other: string[];
}

/** Rewrites the file in place: truncate, a pause, part of the text, a pause, the rest. */
async function rewriteInPlace(file: string, text: string, pauses: { empty: number; partial: number }): Promise<void> {
  const fd = openSync(file, 'w'); // O_TRUNC: the file is empty from here
  try {
    await sleep(pauses.empty);
    const cut = Math.floor(text.length / 3);
    writeSync(fd, text.slice(0, cut));
    await sleep(pauses.partial);
    writeSync(fd, text.slice(cut));
  } finally {
    closeSync(fd);
  }
}

const policyText = (i: number): string => `127.0.0.9/32  # rewrite ${i}\nblocked.example  # rewrite ${i}\nfiller-${i}.example\n`;

describe(`${AgentUnderTest.name}: a policy file rewritten in place`, () => {
  let sut: AgentUnderTest;
  let dir: string;
  let closedPort: number;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'cgfence-rewrite-'));
    writeFileSync(join(dir, 'resolv.conf'), 'nameserver 127.0.0.53\noptions timeout:2 attempts:1\n');
    sut = await AgentUnderTest.start({ policy: policyText(0), records: { 'blocked.example': { A: ['192.0.2.77'] } } });
    closedPort = await freePort();
  });
  after(async () => {
    await sut?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('never lets a connect or a lookup of a listed destination through while the file is truncated and rewritten 40 times', async () => {
    const seconds = 14;
    const ran = sut.run(['unshare', '-m', 'sh', '-c', 'mount --bind "$0" /etc/resolv.conf && exec "$@"', join(dir, 'resolv.conf'), 'python3', '-c', HAMMER, String(seconds), String(closedPort)], { timeoutMs: (seconds + 20) * 1000 });
    await sleep(500);
    for (let i = 1; i <= 40; i++) {
      // Empty for up to 60 ms, a third written for up to 40 ms: both shorter than the settle time, both seen by the watcher's 500 ms poll now and then.
      await rewriteInPlace(sut.policyFile, policyText(i), { empty: (i * 7) % 60, partial: (i * 13) % 40 });
      await sleep(80 + ((i * 37) % 200));
    }
    const r = await ran;
    assert.equal(r.code, 0, `hammer run: ${r.stderr}`);
    const n = JSON.parse(r.stdout) as HammerCounts;
    assert.deepEqual(n.leaks, [], `listed destinations reached while the file was rewritten: ${JSON.stringify(n)}`);
    assert.ok(n.connects > 100 && n.lookups > 100, `the run kept trying (${JSON.stringify(n)})`);
    assert.equal(n.eperm, n.connects, `every connect refused by the kernel: ${JSON.stringify(n)}`);
    assert.ok(n.noname >= n.lookups - n.other.length && n.other.length <= 2, `lookups answered NXDOMAIN: ${JSON.stringify(n)}`);
    // The rewrites were applied (the comment changes the hash), not just ignored.
    await waitFor('the last rewrite to be in force', async () => {
      const st = JSON.parse((await sut.cli(['agent', 'status', '--json'])).stdout) as { policy: { domains: number; cidr4: number; version: string } };
      return st.policy.domains === 2 && st.policy.cidr4 === 1;
    }, 10_000);
  });

  it('never applies a file whose writer is descheduled mid-write for longer than the settle time (a CPU-starved host)', async () => {
    // The writer truncates the file, writes a third (the CIDR line, cut mid-way:
    // blocked.example is not in it), then is stopped for 2 s, as a process the
    // scheduler does not run for that long, then writes the rest. Two reads
    // 250 ms apart see the same partial text; the file is still open for writing.
    const versionBefore = (JSON.parse((await sut.cli(['agent', 'status', '--json'])).stdout) as { policy: { version: string } }).policy.version;
    const text = policyText(41);
    const cut = Math.floor(text.length / 3);
    const writer = spawn('python3', ['-c', 'import os, signal, sys\nf = open(sys.argv[1], "w")\nf.write(sys.argv[2]); f.flush()\nos.kill(os.getpid(), signal.SIGSTOP)\nf.write(sys.argv[3]); f.close()\n', sut.policyFile, text.slice(0, cut), text.slice(cut)], { stdio: 'ignore' });
    const exited = new Promise((r) => writer.once('exit', r));
    // The run keeps looking up for a while after the writer goes on, too (a file taken
    // partial just as the writer resumes would show there).
    const seconds = 7;
    const ran = sut.run(['unshare', '-m', 'sh', '-c', 'mount --bind "$0" /etc/resolv.conf && exec "$@"', join(dir, 'resolv.conf'), 'python3', '-c', HAMMER, String(seconds), String(closedPort)], { timeoutMs: (seconds + 20) * 1000 });
    const domainsSeen = new Set<number>();
    const until = Date.now() + 2000;
    while (Date.now() < until) {
      const st = JSON.parse((await sut.cli(['agent', 'status', '--json'])).stdout) as { policy: { domains: number } };
      domainsSeen.add(st.policy.domains);
      await sleep(200);
    }
    writer.kill('SIGCONT');
    await exited;
    const r = await ran;
    assert.equal(r.code, 0, `hammer run: ${r.stderr}`);
    const n = JSON.parse(r.stdout) as HammerCounts;
    assert.deepEqual([...domainsSeen], [2], 'the partial file (no domain in it) was never applied');
    assert.deepEqual(n.leaks, [], `listed destinations reached while the writer was stopped: ${JSON.stringify(n)}`);
    assert.ok(n.lookups > 10 && n.noname >= n.lookups - n.other.length, `lookups answered NXDOMAIN: ${JSON.stringify(n)}`);
    await waitFor('the complete file to be applied', async () => {
      const st = JSON.parse((await sut.cli(['agent', 'status', '--json'])).stdout) as { policy: { domains: number; version: string } };
      return st.policy.domains === 2 && st.policy.version !== versionBefore;
    }, 10_000);
  });

  it('refuses a stable file with no entries (no empty marker) with an alert, keeping the last good policy', async () => {
    const earlier = new Set(sut.events().map((x) => x.id));
    writeFileSync(sut.policyFile, '# nothing here yet\n');
    sut.signal('SIGHUP');
    const alert = await sut.waitForEvent('an alert about the empty policy file', (x) => x.action === 'alert' && !earlier.has(x.id));
    assert.match(alert.message ?? '', /no entries .* half-written.*# cgfence: empty/);
    const r = await sut.run(['python3', '-c', HAMMER, '0.3', String(closedPort)]);
    const n = JSON.parse(r.stdout) as HammerCounts;
    assert.equal(n.eperm, n.connects, `still refused: ${JSON.stringify(n)}`);
  });

  it('applies an empty list that says so with the marker line', async () => {
    writeFileSync(sut.policyFile, '# cgfence: empty\n');
    sut.signal('SIGHUP');
    await waitFor('the empty policy to be in force', async () => {
      const st = JSON.parse((await sut.cli(['agent', 'status', '--json'])).stdout) as { policy: { domains: number; cidr4: number } };
      return st.policy.domains === 0 && st.policy.cidr4 === 0;
    }, 10_000);
    const r = await sut.run(['python3', '-c', HAMMER, '0.3', String(closedPort)]);
    const n = JSON.parse(r.stdout) as HammerCounts;
    assert.ok(n.leaks.length > 0 && n.eperm === 0, `127.0.0.9 reachable again (ECONNREFUSED): ${JSON.stringify(n)}`);
  });
});
