import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { findCgroup2Root } from '@cgfence/bpf';
import { AgentUnderTest, exec } from './agent-harness';

const PROGRAMS = ['cgf_connect4', 'cgf_connect6', 'cgf_egress', 'cgf_ingress', 'cgf_recvmsg4', 'cgf_recvmsg6', 'cgf_sendmsg4', 'cgf_sendmsg6'];
/** With the unix guard (on by default, Linux 6.7+); bpftool 7.1 does not list the unix attach types, so its view stays PROGRAMS. */
const ALL_PROGRAMS = [...PROGRAMS, 'cgf_connect_unix', 'cgf_sendmsg_unix'].sort();

interface Status {
  cgroup: { path: string; controllers: string[]; limits: Record<string, string>; limitsNote?: string };
  programs: string[];
  adoptedPins: boolean;
  pinDir: string;
  policy: { domains: number; wildcards: number; cidr4: number; cidr6: number; version: string; hash: string };
  mode: string;
  failMode: string;
}

function bpftoolCgroupPrograms(cgroupPath: string): string[] {
  const out = execFileSync('bpftool', ['-j', 'cgroup', 'show', cgroupPath], { encoding: 'utf8' }).trim();
  return out ? (JSON.parse(out) as { name: string }[]).map((p) => p.name) : [];
}

/** Every bpf link of type cgroup that is attached to the cgroup with this id. */
function cgroupLinksTo(cgroupId: bigint): unknown[] {
  const out = execFileSync('bpftool', ['-j', 'link', 'show'], { encoding: 'utf8' }).trim();
  const links = out ? (JSON.parse(out) as { type?: string; cgroup_id?: number | string }[]) : [];
  return links.filter((l) => l.type === 'cgroup' && BigInt(l.cgroup_id ?? -1) === cgroupId);
}

/** EPERM/ECONNREFUSED/ok of a TCP connect from a process moved straight into the deploy cgroup. */
async function connectFromDeployCgroup(cgroupPath: string, host: string, port: number): Promise<string> {
  const py = `import socket, errno\ntry:\n    socket.create_connection(("${host}", ${port}), 2)\n    print("ok")\nexcept OSError as e:\n    print(errno.errorcode[e.errno])`;
  const r = await exec('sh', ['-c', 'cg=$1; shift; echo $$ > "$cg/cgroup.procs" || exit 99; exec "$@"', 'sh', cgroupPath, 'python3', '-c', py]);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout.trim();
}

describe('cgfence agent status and teardown', () => {
  let sut: AgentUnderTest;
  let status: Status;
  before(async () => {
    sut = await AgentUnderTest.start({
      policy: 'github.com\nexample.org\n*.evil.test\n127.0.0.9/32\n10.0.0.0/8\n2001:db8::/32\n',
      extraArgs: ['--pids-max', '64'],
    });
    const r = await sut.cli(['agent', 'status', '--json']);
    assert.equal(r.code, 0, r.stderr);
    status = JSON.parse(r.stdout) as Status;
  });
  after(() => sut?.stop());

  it('reports the seven programs attached to the deploy cgroup, and the policy counts', () => {
    assert.deepEqual([...status.programs].sort(), ALL_PROGRAMS);
    assert.deepEqual(bpftoolCgroupPrograms(sut.cgroupPath).sort(), PROGRAMS, 'the kernel agrees');
    assert.equal(status.cgroup.path, sut.cgroupPath);
    assert.equal(status.adoptedPins, false, 'a fresh start adopts nothing');
    assert.equal(status.pinDir, join('/sys/fs/bpf/cgfence', sut.cgroupName));
    assert.equal(status.mode, 'enforce');
    assert.equal(status.failMode, 'open');
    const { domains, wildcards, cidr4, cidr6 } = status.policy;
    assert.deepEqual({ domains, wildcards, cidr4, cidr6 }, { domains: 2, wildcards: 1, cidr4: 2, cidr6: 1 });
    assert.match(status.policy.hash, /^sha256:[0-9a-f]{64}$/);
  });

  it('applies --pids-max 64, or says plainly that cgroup v2 has no pids controller here', () => {
    const rootControllers = readFileSync(join(findCgroup2Root(), 'cgroup.controllers'), 'utf8').trim().split(/\s+/);
    if (rootControllers.includes('pids')) {
      assert.equal(status.cgroup.limits['pids.max'], '64');
      assert.equal(readFileSync(join(sut.cgroupPath, 'pids.max'), 'utf8').trim(), '64', 'the kernel enforces it');
    } else {
      // Hybrid host: pids lives on cgroup v1, the limit cannot be applied on v2.
      assert.equal(status.cgroup.limits['pids.max'], undefined, 'no limit claimed that is not in force');
      assert.match(status.cgroup.limitsNote ?? '', /no pids controller/);
      assert.match(status.cgroup.limitsNote ?? '', /NOT applied/);
      assert.equal(existsSync(join(sut.cgroupPath, 'pids.max')), false);
    }
  });

  it('refuses to tear down while the agent runs, and changes nothing', async () => {
    const r = await sut.cli(['agent', 'teardown', '--cgroup', sut.cgroupName]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /still running/);
    assert.ok(existsSync(sut.cgroupPath), 'the cgroup is still there');
    assert.ok(existsSync(status.pinDir), 'the pins are still there');
    assert.deepEqual(bpftoolCgroupPrograms(sut.cgroupPath).sort(), PROGRAMS);
    assert.equal(await connectFromDeployCgroup(sut.cgroupPath, '127.0.0.9', 80), 'EPERM', 'still enforcing');
  });

  it('keeps enforcing after a clean stop, then teardown removes the cgroups, the pins and every attachment', async () => {
    const run = await sut.run(['true']);
    assert.equal(run.code, 0, run.stderr);
    const cgroupId = statSync(sut.cgroupPath, { bigint: true }).ino;
    assert.equal(cgroupLinksTo(cgroupId).length, ALL_PROGRAMS.length, 'one cgroup link per program before teardown');

    await sut.stopProcess();
    assert.equal(await connectFromDeployCgroup(sut.cgroupPath, '127.0.0.9', 80), 'EPERM', 'pins outlive a stopped agent');

    const r = await sut.cli(['agent', 'teardown', '--cgroup', sut.cgroupName]);
    assert.equal(r.code, 0, `teardown: ${r.stdout}${r.stderr}`);
    assert.equal(existsSync(sut.cgroupPath), false, `the deploy cgroup (and its run cgroups) are gone: ${existsSync(sut.cgroupPath) ? readdirSync(sut.cgroupPath).filter((f) => f.startsWith('run-')).join(', ') : ''}`);
    assert.equal(existsSync(status.pinDir), false, 'the pin directory is gone');
    assert.deepEqual(cgroupLinksTo(cgroupId), [], 'no bpf link is attached to the old cgroup');
  });
});
