// Issue 13, "resolution by a daemon outside the cgroup", with Debian's real
// nscd: glibc in a run asks nscd over its unix socket and nscd, outside the
// deploy cgroup, resolves the listed name without the proxy ever seeing it.
// With the unix guard the connect is refused, glibc falls back to DNS on
// port 53, and the proxy answers NXDOMAIN with a block event naming the
// process.
//
// nscd runs outside the cgroup in a private mount namespace: a fresh tmpfs on
// /run (its socket is compiled in as /var/run/nscd/socket, and /var/run is a
// symlink to /run), and /etc/resolv.conf and /etc/nsswitch.conf replaced by
// test files pointing at this test's own DNS server on a private 127.x
// address, port 53 (nscd, outside the cgroup, is not redirected: it must
// never reach the machine's resolver). The run's command enters the same
// namespace with nsenter. When nscd exits the namespace and its socket go;
// the host's /run and /etc are never written.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ChildProcess, spawn } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { waitFor } from '@cgfence/devservices';
import { LoopbackUpstream } from '../dns/testing/loopback-upstream';
import type { JournalRecord } from '../journal/journal-record';
import { AgentUnderTest, stopChild } from './agent-harness';

const LISTED = 'listed.example';
const ALLOWED = 'allowed.example';
const RECORDS: Record<string, { A: string[] }> = { [LISTED]: { A: ['127.0.0.77'] }, [ALLOWED]: { A: ['127.0.0.78'] } };
const NSCD_SOCKET = '/var/run/nscd/socket';

/** In the new mount namespace: a tmpfs on /run, the test's resolv.conf and nsswitch.conf, then nscd in the foreground. */
const NSCD_NAMESPACE = `
set -e
resolv_target=$(readlink -f /etc/resolv.conf)
mount -t tmpfs cgf-nscd-run /run
mkdir -p /run/nscd
case "$resolv_target" in
  /run/*) mkdir -p "$(dirname "$resolv_target")"; cp "$1" "$resolv_target" ;;
  *) mount --bind "$1" /etc/resolv.conf ;;
esac
mount --bind "$2" /etc/nsswitch.conf
exec nscd -F -f "$3"
`;

/** Debian's nscd outside the deploy cgroup, in a mount namespace of its own, resolving through `upstream`. */
class PrivateNscd {
  private constructor(
    readonly proc: ChildProcess,
    readonly upstream: LoopbackUpstream,
    private readonly dir: string,
    readonly log: { text: string },
  ) {}

  static async start(): Promise<PrivateNscd> {
    const dir = mkdtempSync(join(tmpdir(), 'cgfence-nscd-'));
    // A private loopback address of this test, port 53: nscd's resolver only speaks to port 53.
    const host = `127.${randomInt(1, 255)}.${randomInt(0, 256)}.${randomInt(1, 255)}`;
    const upstream = await LoopbackUpstream.start((name) => RECORDS[name.replace(/\.$/, '')], host, 53);
    writeFileSync(join(dir, 'resolv.conf'), `nameserver ${host}\noptions timeout:1 attempts:1\n`);
    writeFileSync(join(dir, 'nsswitch.conf'), 'passwd: files\ngroup: files\nhosts: files dns\n');
    writeFileSync(
      join(dir, 'nscd.conf'),
      [
        'debug-level 0',
        'paranoia no',
        'enable-cache hosts yes',
        'positive-time-to-live hosts 600',
        'negative-time-to-live hosts 0',
        'check-files hosts no',
        'persistent hosts no',
        'shared hosts no',
        'enable-cache passwd no',
        'enable-cache group no',
        'enable-cache services no',
        'enable-cache netgroup no',
        '',
      ].join('\n'),
    );
    const log = { text: '' };
    const proc = spawn('unshare', ['-m', '--propagation', 'private', 'sh', '-c', NSCD_NAMESPACE, 'sh', join(dir, 'resolv.conf'), join(dir, 'nsswitch.conf'), join(dir, 'nscd.conf')], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    proc.stdout?.on('data', (d: Buffer) => (log.text += d.toString()));
    proc.stderr?.on('data', (d: Buffer) => (log.text += d.toString()));
    const nscd = new PrivateNscd(proc, upstream, dir, log);
    try {
      await waitFor(`nscd's socket in its namespace (log: ${log.text})`, async () => {
        if (proc.exitCode !== null) throw new Error(`nscd exited with ${proc.exitCode}: ${log.text}`);
        // /run, not /var/run: an absolute symlink under /proc/PID/root resolves against our own root.
        return existsSync(`/proc/${proc.pid}/root/run/nscd/socket`);
      }, 15_000);
    } catch (err) {
      await nscd.stop();
      throw err;
    }
    return nscd;
  }

  /** `nsenter` into nscd's mount namespace, then print the pid and `getent hosts NAME`. */
  getent(name: string): string[] {
    return ['nsenter', `--mount=/proc/${this.proc.pid}/ns/mnt`, 'sh', '-c', 'echo "pid $$"; exec getent hosts "$0"', name];
  }

  async stop(): Promise<void> {
    await stopChild(this.proc);
    await this.upstream.close();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

interface Lookup {
  pid: number;
  code: number | null;
  addr?: string;
}

function parseGetent(r: { code: number | null; stdout: string; stderr: string }): Lookup {
  const pid = Number(/^pid (\d+)$/m.exec(r.stdout)?.[1]);
  assert.ok(pid > 0, `the run printed its pid: ${r.stdout} ${r.stderr}`);
  return { pid, code: r.code, addr: /^(\S+)\s+\S/m.exec(r.stdout.replace(/^pid \d+\n/m, ''))?.[1] };
}

describe('nscd outside the deploy cgroup (real nscd, real kernel, real agent)', () => {
  let nscd: PrivateNscd;
  const hostRunNscdBefore = existsSync('/run/nscd');

  before(async () => {
    nscd = await PrivateNscd.start();
  });
  after(async () => {
    await nscd?.stop();
    assert.equal(existsSync('/run/nscd'), hostRunNscdBefore, "the host's /run/nscd is as it was");
  });

  describe('without the unix guard (--refused-unix-sockets none)', () => {
    let sut: AgentUnderTest;
    before(async () => {
      sut = await AgentUnderTest.start({ policy: `${LISTED}\n`, records: RECORDS, extraArgs: ['--refused-unix-sockets', 'none'] });
    });
    after(async () => {
      await sut?.stop();
    });

    it('resolves the listed name through nscd: the proxy never sees it', async () => {
      const r = parseGetent(await sut.run(nscd.getent(LISTED)));
      assert.equal(r.addr, '127.0.0.77', 'nscd answered the listed name');
      assert.ok(nscd.upstream.log.some((q) => q.name === LISTED), "nscd asked its resolver (outside the cgroup, not redirected)");
      assert.ok(!sut.events().some((e) => e.qname === LISTED), 'no event: the proxy never saw the query');
      const st = JSON.parse((await sut.cli(['agent', 'status', '--json'])).stdout) as { unixGuard?: { state: string } };
      assert.equal(st.unixGuard?.state, 'off');
    });
  });

  describe('with the unix guard (default list)', () => {
    let sut: AgentUnderTest;
    before(async () => {
      sut = await AgentUnderTest.start({ policy: `${LISTED}\n`, records: RECORDS });
    });
    after(async () => {
      await sut?.stop();
    });

    it('refuses the connect to nscd; glibc falls back to port 53 and the proxy answers NXDOMAIN, journaled with the process', async () => {
      const r = parseGetent(await sut.run(nscd.getent(LISTED)));
      assert.equal(r.addr, undefined, 'not resolved');
      assert.equal(r.code, 2, 'getent: not found');
      const block = await sut.waitForEvent('the DNS block of the fallback query', (e) => e.method === 'dns' && e.qname === LISTED && e.pid === r.pid);
      assert.equal(block.action, 'blocked');
      const refused = await sut.waitForEvent('the refusal of the nscd socket', (e) => e.destination === `unix:${NSCD_SOCKET}` && e.pid === r.pid);
      assert.equal(refused.action, 'blocked');
      assert.equal(refused.comm, 'getent');
      const st = JSON.parse((await sut.cli(['agent', 'status', '--json'])).stdout) as { unixGuard: { state: string }; counters: Record<string, string>; programs: string[] };
      assert.equal(st.unixGuard.state, 'active');
      assert.ok(Number(st.counters[`kernel_unix_refused:${NSCD_SOCKET}`]) >= 1, JSON.stringify(st.counters));
      assert.ok(st.programs.includes('cgf_connect_unix'));
    });

    it('journals the first refusal of the socket in a run and counts every one', async () => {
      const counter = async (): Promise<number> => {
        const st = JSON.parse((await sut.cli(['agent', 'status', '--json'])).stdout) as { counters: Record<string, string> };
        return Number(st.counters[`kernel_unix_refused:${NSCD_SOCKET}`] ?? 0);
      };
      const before = await counter();
      // Three lookups, three processes, one run.
      const script = 'for i in 1 2 3; do getent hosts "$0" >/dev/null & echo "pid $!"; wait; done';
      const ran = await sut.run(['nsenter', `--mount=/proc/${nscd.proc.pid}/ns/mnt`, 'sh', '-c', script, ALLOWED]);
      const pids = [...ran.stdout.matchAll(/^pid (\d+)$/gm)].map((m) => Number(m[1]));
      assert.equal(pids.length, 3, ran.stdout + ran.stderr);
      const mine = (): JournalRecord[] => sut.events().filter((e) => e.destination === `unix:${NSCD_SOCKET}` && pids.includes(e.pid ?? -1));
      await sut.waitForEvent('the first refusal of the run', (e) => e.destination === `unix:${NSCD_SOCKET}` && pids.includes(e.pid ?? -1));
      await waitFor('the kernel counted all three', async () => (await counter()) >= before + 3);
      await new Promise((r) => setTimeout(r, 500)); // time for any further record to reach the journal
      assert.equal(mine().length, 1, JSON.stringify(mine()));
    });

    it('still resolves an allowed name, now through the proxy', async () => {
      const r = parseGetent(await sut.run(nscd.getent(ALLOWED)));
      assert.equal(r.addr, '127.0.0.78');
      assert.ok(sut.upstream.log.some((q) => q.name === ALLOWED), "the agent's upstream answered it (through the proxy)");
    });
  });

  describe('with the unix guard in audit mode', () => {
    let sut: AgentUnderTest;
    before(async () => {
      sut = await AgentUnderTest.start({ policy: `${LISTED}\n`, records: RECORDS, mode: 'audit' });
    });
    after(async () => {
      await sut?.stop();
    });

    it('lets the connect to nscd through and journals it as audited', async () => {
      const r = parseGetent(await sut.run(nscd.getent(LISTED)));
      assert.equal(r.addr, '127.0.0.77', 'resolved through nscd (audit mode changes nothing)');
      const e = await sut.waitForEvent('the audit event of the nscd socket', (x) => x.destination === `unix:${NSCD_SOCKET}` && x.pid === r.pid);
      assert.equal(e.action, 'audited');
    });
  });

  describe('on a kernel without the connect_unix hook (forced: an attach type the kernel refuses)', () => {
    let sut: AgentUnderTest;
    before(async () => {
      sut = await AgentUnderTest.start({ policy: `${LISTED}\n`, records: RECORDS, extraArgs: ['--unix-guard-attach-types', '4000,4001'] });
    });
    after(async () => {
      await sut?.stop();
    });

    it('says plainly what it cannot cover (status, alert, log) and enforces everything else', async () => {
      const st = JSON.parse((await sut.cli(['agent', 'status', '--json'])).stdout) as { unixGuard: { state: string; reason?: string }; programs: string[] };
      assert.equal(st.unixGuard.state, 'unavailable');
      assert.match(st.unixGuard.reason ?? '', /Linux 6\.7 or later/);
      assert.ok(!st.programs.some((p) => p.endsWith('_unix')));
      const alert = sut.events().find((e) => e.action === 'alert' && /not covered on this kernel: names resolved by nscd/.test(e.message ?? ''));
      assert.ok(alert, 'an alert says what is not covered');
      assert.match(sut.log, /not covered on this kernel/);
      const text = (await sut.cli(['agent', 'status'])).stdout;
      assert.match(text, /unix guard: UNAVAILABLE on this kernel/);
      // Not covered: nscd still answers the listed name...
      assert.equal(parseGetent(await sut.run(nscd.getent(LISTED))).addr, '127.0.0.77');
      // ...but everything else holds: a lookup without nscd is redirected and blocked.
      const direct = await sut.run(['python3', '-c', `import os, socket\nprint("pid", os.getpid())\ntry:\n  socket.getaddrinfo("${LISTED}", 80)\nexcept socket.gaierror as e:\n  print("error", e)`]);
      const pid = Number(/^pid (\d+)$/m.exec(direct.stdout)?.[1]);
      assert.match(direct.stdout, /error/);
      await sut.waitForEvent('the DNS block without nscd', (e) => e.method === 'dns' && e.qname === LISTED && e.pid === pid);
    });
  });
});
