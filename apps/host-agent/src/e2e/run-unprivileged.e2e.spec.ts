// `cgfence run` as deploy systems use it: as a non-root member of the run
// group, as a non-member, and as root dropping to a user with --user. The
// users and the group are made here (random names) and removed after, even
// when a test fails.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, readdirSync, readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { waitFor } from '@cgfence/devservices';
import { findCgroup2Root } from '@cgfence/bpf';
import { AgentUnderTest, CGFENCE, exec, Ran, stopChild, isAddressRecord } from './agent-harness';

const tag = randomBytes(4).toString('hex');
const GROUP = `cgfg${tag}`;
const MEMBER = `cgfm${tag}`;
const OUTSIDER = `cgfo${tag}`;

const idOf = (flag: '-u' | '-g', name: string): number => Number(execFileSync('id', [flag, name], { encoding: 'utf8' }).trim());
const gidOfGroup = (name: string): number => Number(execFileSync('getent', ['group', name], { encoding: 'utf8' }).split(':')[2]);

/** `cgfence ARGS` as USER (its own uid, primary group and supplementary groups), like `su USER -c`. */
function asUser(user: string, args: string[]): Promise<Ran> {
  // A shared, loaded machine can take seconds to start node twice.
  return exec('setpriv', [`--reuid=${user}`, `--regid=${user}`, '--init-groups', '--', process.execPath, CGFENCE, ...args], { timeoutMs: 60_000 });
}

/** The runs.json record of a run. */
function runRecord(sut: AgentUnderTest, runId: string): { uid?: number; user?: string; state: string } {
  const file = JSON.parse(readFileSync(join(sut.stateDir, 'runs.json'), 'utf8')) as { runs: { runId: string; uid?: number; user?: string; state: string }[] };
  const run = file.runs.find((r) => r.runId === runId);
  assert.ok(run, `runs.json knows run ${runId}`);
  return run;
}

function lineValue(out: string, key: string): string | undefined {
  return out.split('\n').find((l) => l.startsWith(`${key}=`))?.slice(key.length + 1);
}

describe('cgfence run by a non-root user', () => {
  let sut: AgentUnderTest | undefined;
  let holder: ChildProcess | undefined;
  const made: string[] = [];

  before(async () => {
    execFileSync('groupadd', [GROUP]);
    made.push('group');
    execFileSync('useradd', ['--no-create-home', '--user-group', '--shell', '/bin/sh', '--groups', GROUP, MEMBER]);
    made.push('member');
    execFileSync('useradd', ['--no-create-home', '--user-group', '--shell', '/bin/sh', OUTSIDER]);
    made.push('outsider');
    sut = await AgentUnderTest.start({ policy: 'blocked.example\n127.0.0.9/32\n', extraArgs: ['--run-group', GROUP] });
    // The test's temp dir is root's 0700; a host's /var/lib is 0755.
    chmodSync(sut.dir, 0o711);
  });

  after(async () => {
    try {
      await stopChild(holder);
      await sut?.stop();
    } finally {
      // userdel also removes each user's own group (--user-group).
      if (made.includes('member')) execFileSync('userdel', [MEMBER]);
      if (made.includes('outsider')) execFileSync('userdel', [OUTSIDER]);
      if (made.includes('group')) execFileSync('groupdel', [GROUP]);
    }
  });

  it('opens the socket to the run group only: root:GROUP 0660 in a 0710 state dir', () => {
    const sock = execFileSync('stat', ['-c', '%U:%G %a', join(sut!.stateDir, 'agent.sock')], { encoding: 'utf8' }).trim();
    assert.equal(sock, `root:${GROUP} 660`);
    const dir = execFileSync('stat', ['-c', '%U:%G %a', sut!.stateDir], { encoding: 'utf8' }).trim();
    assert.equal(dir, `root:${GROUP} 710`);
  });

  it('runs a member\'s command as that member, in a run cgroup the agent moved it to, blocked and attributed with its uid', async () => {
    const uid = idOf('-u', MEMBER);
    const r = await asUser(MEMBER, [
      'run', '--state-dir', sut!.stateDir, '--label', 'job=unprivileged', '--',
      'sh', '-c', 'echo "uid=$(id -u)"; echo "cg=$(sed -n "s/^0:://p" /proc/self/cgroup)"; echo "run=$CGFENCE_RUN_ID"; /usr/bin/python3 -c "import socket; socket.create_connection((\'127.0.0.9\', 80), 1)" 2>/dev/null; true',
    ]);
    assert.equal(r.code, 0, r.stderr);
    const runId = lineValue(r.stdout, 'run');
    assert.ok(runId, `CGFENCE_RUN_ID is set: ${r.stdout}`);
    assert.match(r.stderr, new RegExp(`run ${runId} as ${MEMBER} \\(uid ${uid}\\)`), 'the run id is printed on stderr at start');
    assert.equal(lineValue(r.stdout, 'uid'), String(uid), 'the command runs with the caller\'s own uid');
    assert.equal(lineValue(r.stdout, 'cg'), `/${sut!.cgroupName}/run-${runId}`);
    const rec = runRecord(sut!, runId);
    assert.equal(rec.uid, uid);
    assert.equal(rec.user, MEMBER);
    const e = await sut!.waitForEvent('the block of the member\'s connect', (x) => isAddressRecord(x) && x.runId === runId);
    assert.equal(e.uid, uid, 'the block is attributed to the member\'s uid');
    assert.equal(e.labels['job'], 'unprivileged');
  });

  it('lets members reach the socket, not list the state dir or read runs.json and the journal', () => {
    for (const args of [['ls', sut!.stateDir], ['cat', join(sut!.stateDir, 'runs.json')], ['cat', join(sut!.stateDir, 'events.jsonl')]]) {
      assert.ok(args[0] === 'ls' || existsSync(args[1]!), `${args[1]} exists (the run before made it)`);
      const r = spawnSync('setpriv', [`--reuid=${MEMBER}`, `--regid=${MEMBER}`, '--init-groups', '--', ...args], { encoding: 'utf8' });
      assert.notEqual(r.status, 0, `${args.join(' ')} as a member: ${r.stdout}`);
      assert.match(r.stderr, /Permission denied/);
    }
  });

  it('--quiet leaves stderr alone', async () => {
    const r = await asUser(MEMBER, ['run', '--quiet', '--state-dir', sut!.stateDir, '--', 'true']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, '');
  });

  it('tells a user outside the group to ask for the group (exit 125), not that no agent runs, and runs nothing', async () => {
    const r = await asUser(OUTSIDER, ['run', '--state-dir', sut!.stateDir, '--', 'sh', '-c', 'echo RAN']);
    assert.equal(r.code, 125, r.stderr);
    assert.match(r.stderr, new RegExp(`permission denied: ask to be added to group ${GROUP}`));
    assert.doesNotMatch(r.stderr, /no cgfence agent/);
    assert.doesNotMatch(r.stdout, /RAN/);
  });

  it('refuses an outsider by its peer credentials even when the socket\'s mode lets it connect', async () => {
    const sock = join(sut!.stateDir, 'agent.sock');
    chmodSync(sut!.stateDir, 0o711);
    chmodSync(sock, 0o666);
    try {
      const before = new Set(readdirSync(sut!.cgroupPath).filter((n) => n.startsWith('run-')));
      const r = await asUser(OUTSIDER, ['run', '--state-dir', sut!.stateDir, '--', 'sh', '-c', 'echo RAN']);
      assert.equal(r.code, 125, r.stderr);
      assert.match(r.stderr, new RegExp(`permission denied: ask to be added to group ${GROUP}`));
      assert.doesNotMatch(r.stdout, /RAN/);
      const status = await asUser(OUTSIDER, ['agent', 'status', '--state-dir', sut!.stateDir]);
      assert.notEqual(status.code, 0);
      assert.match(status.stderr, /permission denied/);
      // (The reaper may remove finished runs meanwhile: only new ones count.)
      assert.deepEqual(readdirSync(sut!.cgroupPath).filter((n) => n.startsWith('run-') && !before.has(n)), [], 'no run cgroup was made');
    } finally {
      chmodSync(sut!.stateDir, 0o710);
      chmodSync(sock, 0o660);
    }
  });

  it('lets a member neither reload the agent nor end a run that is not its own, speaking to the socket directly', async () => {
    const root = await sut!.cli(['run', '--', 'sh', '-c', 'echo "run=$CGFENCE_RUN_ID"; sleep 2']);
    const rootRun = lineValue(root.stdout, 'run');
    assert.ok(rootRun);
    // A client that is not `cgfence run`: raw JSON lines, and a pid of someone else's process.
    const script = `
      const sock = require('node:net').connect(process.argv[1]);
      const reqs = process.argv.slice(2);
      let buf = '';
      sock.on('data', (d) => { buf += d; if (buf.split('\\n').length > reqs.length) { process.stdout.write(buf); sock.end(); } });
      sock.on('connect', () => { for (const r of reqs) sock.write(r + '\\n'); });`;
    const r = await exec('setpriv', [`--reuid=${MEMBER}`, `--regid=${MEMBER}`, '--init-groups', '--', process.execPath, '-e', script, join(sut!.stateDir, 'agent.sock'),
      JSON.stringify({ op: 'reload' }),
      JSON.stringify({ op: 'run.end', runId: rootRun, exitCode: 0, signal: null }),
      JSON.stringify({ op: 'run.start', labels: {}, command: ['true'], pid: 1 }),
    ]);
    const [reload, end, start] = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { ok: boolean; error?: string; code?: string; result?: { runId: string; uid: number } });
    assert.deepEqual([reload!.ok, reload!.code], [false, 'PERMISSION_DENIED'], JSON.stringify(reload));
    assert.match(reload!.error!, /reload needs root/);
    assert.deepEqual([end!.ok, end!.code], [false, 'PERMISSION_DENIED'], JSON.stringify(end));
    assert.match(end!.error!, /is not yours/);
    assert.equal(runRecord(sut!, rootRun).uid, 0);
    // The pid it named (1, init) is ignored: the agent moved the client itself.
    assert.equal(start!.ok, true, JSON.stringify(start));
    assert.equal(start!.result!.uid, idOf('-u', MEMBER));
    assert.doesNotMatch(readFileSync('/proc/1/cgroup', 'utf8'), new RegExp(sut!.cgroupName), 'init was not moved');
  });

  it('cannot leave its run: no move to the deploy, root or another run cgroup, no signal to the agent, no packet socket', async () => {
    // Another run of the same user, holding its cgroup open.
    holder = spawn('setpriv', [`--reuid=${MEMBER}`, `--regid=${MEMBER}`, '--init-groups', '--', process.execPath, CGFENCE, 'run', '--quiet', '--state-dir', sut!.stateDir, '--', 'sleep', '60'], {
      stdio: 'ignore',
    });
    let other = '';
    await waitFor('the other run to hold its cgroup', async () => {
      for (const n of readdirSync(sut!.cgroupPath).filter((x) => x.startsWith('run-'))) {
        const procs = readFileSync(join(sut!.cgroupPath, n, 'cgroup.procs'), 'utf8').trim();
        if (procs.split('\n').some((p) => p !== '' && readFileSync(`/proc/${p}/cmdline`, 'utf8').startsWith('sleep'))) other = join(sut!.cgroupPath, n);
      }
      return other !== '';
    }, 60_000);
    const agentPid = sut!.proc!.pid!;
    const targets = { deploy: join(sut!.cgroupPath, 'cgroup.procs'), root: join(findCgroup2Root(), 'cgroup.procs'), other: join(other, 'cgroup.procs') };
    const script = [
      ...Object.entries(targets).map(([k, f]) => `if echo $$ > ${f} 2>/dev/null; then echo "${k}=moved"; else echo "${k}=refused"; fi`),
      `if kill -TERM ${agentPid} 2>/dev/null; then echo "agent=signalled"; else echo "agent=refused"; fi`,
      `if /usr/bin/python3 -c 'import socket; socket.socket(socket.AF_PACKET, socket.SOCK_RAW)' 2>/dev/null; then echo "packet=opened"; else echo "packet=refused"; fi`,
      'echo "cg=$(sed -n "s/^0:://p" /proc/$$/cgroup)"',
      'echo "run=$CGFENCE_RUN_ID"',
    ].join('\n');
    const r = await asUser(MEMBER, ['run', '--state-dir', sut!.stateDir, '--', 'sh', '-c', script]);
    assert.equal(r.code, 0, r.stderr);
    for (const k of ['deploy', 'root', 'other']) assert.equal(lineValue(r.stdout, k), 'refused', `cgroup.procs of the ${k} cgroup: ${r.stdout}`);
    assert.equal(lineValue(r.stdout, 'agent'), 'refused');
    assert.equal(lineValue(r.stdout, 'packet'), 'refused');
    assert.equal(lineValue(r.stdout, 'cg'), `/${sut!.cgroupName}/run-${lineValue(r.stdout, 'run')}`, 'still in its own run cgroup');
    assert.equal(sut!.proc!.exitCode, null, 'the agent still runs');
    assert.equal((await sut!.cli(['agent', 'status', '--json'])).code, 0);
    await stopChild(holder);
  });

  it('--user drops root to the user, its groups and no capabilities, inside the run', async () => {
    const uid = idOf('-u', MEMBER);
    const r = await sut!.cli([
      'run', '--user', MEMBER, '--',
      'sh', '-c', 'echo "uid=$(id -u)"; echo "gid=$(id -g)"; echo "groups=$(id -G)"; echo "caps=$(sed -n "s/^CapEff:\\s*//p" /proc/self/status)"; echo "home=$HOME"; echo "cg=$(sed -n "s/^0:://p" /proc/self/cgroup)"; echo "run=$CGFENCE_RUN_ID"',
    ]);
    assert.equal(r.code, 0, r.stderr);
    const runId = lineValue(r.stdout, 'run')!;
    assert.equal(lineValue(r.stdout, 'uid'), String(uid));
    assert.equal(lineValue(r.stdout, 'gid'), String(idOf('-g', MEMBER)));
    assert.ok(lineValue(r.stdout, 'groups')!.split(' ').includes(String(gidOfGroup(GROUP))), `supplementary groups initialised: ${r.stdout}`);
    assert.ok(!lineValue(r.stdout, 'groups')!.split(' ').includes('0'), 'root\'s group is gone');
    assert.equal(lineValue(r.stdout, 'caps'), '0000000000000000');
    assert.equal(lineValue(r.stdout, 'cg'), `/${sut!.cgroupName}/run-${runId}`);
    const rec = runRecord(sut!, runId);
    assert.equal(rec.uid, uid);
    assert.equal(rec.user, MEMBER);
  });

  it('--user --group sets the primary group; --user is refused to a non-root caller', async () => {
    const r = await sut!.cli(['run', '--quiet', '--user', MEMBER, '--group', GROUP, '--', 'id', '-g']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), String(gidOfGroup(GROUP)));
    const denied = await asUser(MEMBER, ['run', '--state-dir', sut!.stateDir, '--user', 'root', '--', 'sh', '-c', 'echo RAN']);
    assert.equal(denied.code, 125);
    assert.match(denied.stderr, /--user needs root/);
    assert.doesNotMatch(denied.stdout, /RAN/);
    const unknown = await sut!.cli(['run', '--user', `nouser${tag}`, '--', 'true']);
    assert.equal(unknown.code, 125);
    assert.match(unknown.stderr, new RegExp(`--user nouser${tag}: no such user`));
  });

  it('takes the socket back to root only when restarted without --run-group', async () => {
    await sut!.stopProcess();
    sut!.opts.extraArgs = [];
    await sut!.launch();
    const dir = execFileSync('stat', ['-c', '%U:%G %a', sut!.stateDir], { encoding: 'utf8' }).trim();
    assert.equal(dir, 'root:root 700');
    const r = await asUser(MEMBER, ['run', '--state-dir', sut!.stateDir, '--', 'sh', '-c', 'echo RAN']);
    assert.equal(r.code, 125);
    assert.match(r.stderr, /permission denied: this agent takes runs from root only/);
    assert.doesNotMatch(r.stdout, /RAN/);
  });
});

describe('cgfence run and the state dir', () => {
  it('honours CGFENCE_STATE_DIR and gives the fleet-mode hint when no agent runs', async () => {
    const dir = `/tmp/cgfence-nostate-${tag}`;
    const r = await exec(process.execPath, [CGFENCE, 'run', '--', 'true'], { env: { ...process.env, CGFENCE_STATE_DIR: dir } });
    assert.equal(r.code, 125);
    assert.match(r.stderr, new RegExp(`no cgfence agent is running with state dir ${dir}`));
    assert.match(r.stderr, /--server nats:\/\/HOST:4222 --server-key FILE/);
    assert.equal(existsSync(dir), false);
  });
});
