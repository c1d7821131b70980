import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { constants } from 'node:os';
import { freePort } from '@cgfence/devservices';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { findCgroup2Root } from '@cgfence/bpf';
import { AgentUnderTest, exec, isAddressRecord } from './agent-harness';

const EPERM = constants.errno.EPERM;
const ECONNREFUSED = constants.errno.ECONNREFUSED;

/**
 * Tries each `proto,host,port` given on the command line (tcp: create_connection,
 * udp: an unconnected sendto) and prints {pid, cgroup (v2 path), results: {spec: 'ok' | errno}}.
 * `sleep:S` keeps the process alive so the agent can still read its /proc entry.
 */
const PROBE = [
  'import json, os, socket, sys, time',
  'results = {}',
  'for spec in sys.argv[1:]:',
  '    if spec.startswith("sleep:"):',
  '        time.sleep(float(spec[6:])); continue',
  '    proto, host, port = spec.split(",")',
  '    try:',
  '        if proto == "tcp":',
  '            socket.create_connection((host, int(port)), 2).close()',
  '        else:',
  '            s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)',
  '            s.sendto(b"probe", (host, int(port)))',
  '            s.close()',
  '        results[spec] = "ok"',
  '    except OSError as e:',
  '        results[spec] = e.errno',
  'cgroup = [l[3:] for l in open("/proc/self/cgroup").read().splitlines() if l.startswith("0::")]',
  'print(json.dumps({"pid": os.getpid(), "cgroup": cgroup[0] if cgroup else None, "results": results}))',
].join('\n');

interface ProbeOutput {
  pid: number;
  cgroup: string | null;
  results: Record<string, 'ok' | number>;
}

async function probeInRun(sut: AgentUnderTest, specs: string[], labels: Record<string, string> = {}): Promise<ProbeOutput> {
  const r = await sut.run(['python3', '-c', PROBE, ...specs], { labels });
  assert.equal(r.code, 0, `probe run failed (${r.code}): ${r.stderr}`);
  return JSON.parse(r.stdout) as ProbeOutput;
}

/**
 * Runs the probe in a process moved straight into the deploy cgroup, without
 * `cgfence run` (which needs a live agent).
 */
async function probeInDeployCgroup(sut: AgentUnderTest, specs: string[]): Promise<ProbeOutput> {
  const r = await exec('sh', ['-c', 'cg=$1; shift; echo $$ > "$cg/cgroup.procs" || exit 99; exec "$@"', 'sh', sut.cgroupPath, 'python3', '-c', PROBE, ...specs]);
  assert.equal(r.code, 0, `probe in the deploy cgroup failed (${r.code}): ${r.stderr}`);
  const out = JSON.parse(r.stdout) as ProbeOutput;
  assert.equal(out.cgroup, `/${sut.cgroupName}`, 'the probe ran inside the deploy cgroup');
  return out;
}

/** Names of the programs attached to a cgroup, one per attachment, as bpftool lists them. */
function bpftoolCgroupPrograms(cgroupPath: string): string[] {
  const out = execFileSync('bpftool', ['-j', 'cgroup', 'show', cgroupPath], { encoding: 'utf8' }).trim();
  return out ? (JSON.parse(out) as { name: string }[]).map((p) => p.name) : [];
}

const PROGRAMS = ['cgf_connect4', 'cgf_connect6', 'cgf_egress', 'cgf_ingress', 'cgf_recvmsg4', 'cgf_recvmsg6', 'cgf_sendmsg4', 'cgf_sendmsg6'];
/** With the unix guard (on by default, Linux 6.7+); bpftool 7.1 does not list the unix attach types, so its view stays PROGRAMS. */
const ALL_PROGRAMS = [...PROGRAMS, 'cgf_connect_unix', 'cgf_sendmsg_unix'].sort();

/** A connect from this test process, which is outside every cgfence cgroup. */
function connectFromOutside(host: string, port: number): Promise<'ok' | string> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    s.setTimeout(2000, () => {
      s.destroy();
      resolve('timeout');
    });
    s.once('connect', () => {
      s.destroy();
      resolve('ok');
    });
    s.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
  });
}

function listen(host: string, port: number): Promise<net.Server> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer((c) => c.destroy());
    srv.once('error', reject);
    srv.listen(port, host, () => resolve(srv));
  });
}

describe('IP blocking (CIDR entries) of a run', () => {
  let sut: AgentUnderTest;
  let closedPort: number;
  before(async () => {
    sut = await AgentUnderTest.start({
      policy: '127.0.0.9/32\n127.66.0.0/16\n::1/128\n',
      records: { 'allowed.test': { A: ['192.0.2.10'] } },
    });
    closedPort = await freePort();
  });
  after(() => sut?.stop());

  it('refuses TCP connect to a listed /32 and to an address inside a listed /16 with EPERM', async () => {
    const out = await probeInRun(sut, ['tcp,127.0.0.9,80', `tcp,127.66.1.2,${closedPort}`]);
    assert.equal(out.results['tcp,127.0.0.9,80'], EPERM, 'connect to 127.0.0.9 (listed /32)');
    assert.equal(out.results[`tcp,127.66.1.2,${closedPort}`], EPERM, 'connect to 127.66.1.2 (inside listed /16)');
  });

  it('leaves an unlisted loopback address alone: ECONNREFUSED, not EPERM', async () => {
    const out = await probeInRun(sut, [`tcp,127.0.0.10,${closedPort}`, `tcp,127.67.0.1,${closedPort}`]);
    assert.equal(out.results[`tcp,127.0.0.10,${closedPort}`], ECONNREFUSED);
    assert.equal(out.results[`tcp,127.67.0.1,${closedPort}`], ECONNREFUSED, 'just outside 127.66.0.0/16');
  });

  it('blocks a listed address even when a server listens there, and only inside the cgroup', async () => {
    const port = await freePort();
    const srv = await listen('127.0.0.9', port);
    try {
      assert.equal(await connectFromOutside('127.0.0.9', port), 'ok', 'the test process (outside the cgroup) reaches the server');
      const out = await probeInRun(sut, [`tcp,127.0.0.9,${port}`]);
      assert.equal(out.results[`tcp,127.0.0.9,${port}`], EPERM, 'the run does not');
    } finally {
      await new Promise((r) => srv.close(r));
    }
    assert.equal(await connectFromOutside('127.0.0.9', closedPort), 'ECONNREFUSED', 'outside the cgroup 127.0.0.9 is untouched');
  });

  it('refuses an unconnected UDP sendto a blocked address with EPERM and lets an unlisted one through', async () => {
    const out = await probeInRun(sut, [`udp,127.0.0.9,${closedPort}`, `udp,127.66.200.1,${closedPort}`, `udp,127.0.0.10,${closedPort}`]);
    assert.equal(out.results[`udp,127.0.0.9,${closedPort}`], EPERM);
    assert.equal(out.results[`udp,127.66.200.1,${closedPort}`], EPERM);
    assert.equal(out.results[`udp,127.0.0.10,${closedPort}`], 'ok');
  });

  it('blocks a listed IPv6 address (::1/128) for TCP connect and UDP sendto', async () => {
    const out = await probeInRun(sut, [`tcp,::1,${closedPort}`, `udp,::1,${closedPort}`]);
    assert.equal(out.results[`tcp,::1,${closedPort}`], EPERM);
    assert.equal(out.results[`udp,::1,${closedPort}`], EPERM);
    assert.equal(await connectFromOutside('::1', closedPort), 'ECONNREFUSED', 'outside the cgroup ::1 is untouched');
  });

  it('still resolves names through the proxy while ::1 is blocked', async () => {
    const r = await sut.run(['dig', '+short', '+time=2', '+tries=1', '@127.0.0.53', 'allowed.test']);
    assert.equal(r.stdout.trim(), '192.0.2.10', `dig: ${r.stdout}${r.stderr}`);
  });

  it("journals the block with method 'ip', the destination, the run's pid, cmdline and labels", async () => {
    const out = await probeInRun(sut, ['tcp,127.0.0.9,80', 'sleep:1'], { job: 'ip-e2e' });
    assert.equal(out.results['tcp,127.0.0.9,80'], EPERM);
    const e = await sut.waitForEvent('the IP block event of the probe', (r) => isAddressRecord(r) && r.pid === out.pid);
    assert.equal(e.action, 'blocked');
    assert.equal(e.destination, '127.0.0.9:80');
    assert.equal(e.comm, 'python3');
    // python3 may be a shim (pyenv) that execs the real interpreter by its full path.
    assert.match(e.cmdline ?? '', /^(\S*\/)?python3 -c [\s\S]* tcp,127\.0\.0\.9,80 sleep:1$/);
    assert.equal(e.labels['job'], 'ip-e2e');
    assert.ok(e.runId, 'the event names its run');
    assert.match(e.policyHash ?? '', /^sha256:/);
  });

  it('journals an IPv6 block with a bracketed destination', async () => {
    const out = await probeInRun(sut, [`tcp,::1,${closedPort}`, 'sleep:1']);
    const e = await sut.waitForEvent('the IPv6 block event', (r) => isAddressRecord(r) && r.pid === out.pid);
    assert.equal(e.action, 'blocked');
    assert.equal(e.destination, `[::1]:${closedPort}`);
  });
});

describe('IP blocking across an agent crash (kill -9) and restart', () => {
  let sut: AgentUnderTest;
  let closedPort: number;
  before(async () => {
    sut = await AgentUnderTest.start({ policy: '127.0.0.9/32\n127.66.0.0/16\n' });
    closedPort = await freePort();
  });
  after(() => sut?.stop());

  it('keeps refusing listed addresses while the agent is dead', async () => {
    assert.ok(sut.cgroupPath.startsWith(findCgroup2Root()), 'the deploy cgroup is on cgroup v2');
    assert.deepEqual(bpftoolCgroupPrograms(sut.cgroupPath).sort(), PROGRAMS, 'attached before the crash');
    await sut.kill9();

    const out = await probeInDeployCgroup(sut, ['tcp,127.0.0.9,80', `tcp,127.66.3.4,${closedPort}`, `udp,127.0.0.9,${closedPort}`, `tcp,127.0.0.10,${closedPort}`]);
    assert.equal(out.results['tcp,127.0.0.9,80'], EPERM);
    assert.equal(out.results[`tcp,127.66.3.4,${closedPort}`], EPERM);
    assert.equal(out.results[`udp,127.0.0.9,${closedPort}`], EPERM);
    assert.equal(out.results[`tcp,127.0.0.10,${closedPort}`], ECONNREFUSED, 'unlisted addresses still work');
  });

  it('refuses `cgfence run` while the agent is dead (exit 125) instead of running unprotected', async () => {
    // The crashed agent left its control socket file behind: connecting to it is refused.
    const marker = join(sut.dir, 'ran-while-agent-dead');
    const r = await sut.run(['sh', '-c', `touch ${marker}`]);
    assert.equal(existsSync(marker), false, 'the command must not run');
    assert.equal(r.code, 125, `exit code; stderr:\n${r.stderr}`);
    assert.match(r.stderr, /Refusing to run .* unprotected/);
  });

  it('adopts the pinned programs on restart: each attached once, blocking intact', async () => {
    await sut.launch();
    const st = await sut.cli(['agent', 'status', '--json']);
    assert.equal(st.code, 0, st.stderr);
    const status = JSON.parse(st.stdout) as { adoptedPins: boolean; programs: string[]; policy: { cidr4: number } };
    assert.equal(status.adoptedPins, true);
    assert.deepEqual([...status.programs].sort(), ALL_PROGRAMS);
    assert.equal(status.policy.cidr4, 2);
    assert.deepEqual(bpftoolCgroupPrograms(sut.cgroupPath).sort(), PROGRAMS, 'each program attached exactly once (not twice)');

    const viaRun = await probeInRun(sut, ['tcp,127.0.0.9,80', `tcp,127.0.0.10,${closedPort}`]);
    assert.equal(viaRun.results['tcp,127.0.0.9,80'], EPERM);
    assert.equal(viaRun.results[`tcp,127.0.0.10,${closedPort}`], ECONNREFUSED);
  });

  it('journals, after the restart, the block the kernel queued while the agent was dead', async () => {
    // The ring buffer is pinned: what the kernel reported while nobody read it is read by the next agent.
    await sut.kill9();
    const out = await probeInDeployCgroup(sut, ['tcp,127.0.0.9,80']);
    assert.equal(out.results['tcp,127.0.0.9,80'], EPERM);
    await sut.launch();
    const e = await sut.waitForEvent('the block made while the agent was dead', (r) => isAddressRecord(r) && r.pid === out.pid);
    assert.equal(e.action, 'blocked');
    assert.equal(e.destination, '127.0.0.9:80');
  });
});
