// Who asked: every block event names the run (id, labels) and the process
// (pid, comm, cmdline) that sent the query — for children, for daemons that
// outlive their run, and for several runs asking at the same moment.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { waitFor } from '@cgfence/devservices';
import { AgentUnderTest, Ran } from './agent-harness';

const DIG = 'dig +time=2 +tries=1 @127.0.0.53';

function describeRan(r: Ran): string {
  return `exit ${r.code}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`;
}

/** The run id `cgfence run` gave its command (CGFENCE_RUN_ID), and the pid that printed it. */
function runOf(r: Ran): { runId: string; pid: number } {
  const m = /^run (\S+) pid (\d+)$/m.exec(r.stdout);
  if (!m) throw new Error(`the command did not print its run id\n${describeRan(r)}`);
  return { runId: m[1]!, pid: Number(m[2]) };
}

describe(`${AgentUnderTest.name}: DNS event attribution`, () => {
  let sut: AgentUnderTest;
  let dir: string;
  const names = ['a', 'b', 'c', 'd'].map((job) => ({ job, name: `${job}.blocked.example` }));

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'cgfence-dns-attribution-'));
    const records = Object.fromEntries([...names.map((n) => n.name), 'daemon.blocked.example', 'comm.blocked.example'].map((n) => [n, { A: ['192.0.2.9'] }]));
    sut = await AgentUnderTest.start({ policy: '*.blocked.example\n', records });
  });
  after(async () => {
    try {
      await sut?.stop();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('attributes a query of a daemonised grandchild to its run, after the run has ended', async () => {
    const out = join(dir, 'daemon.out');
    // The run's shell starts a session leader (setsid) with its stdio away from
    // the run's pipes, and exits at once; the daemon asks a second later.
    const script = `echo "run $CGFENCE_RUN_ID pid $$"; setsid sh -c 'sleep 1; exec ${DIG} daemon.blocked.example > "$0"' "$1" </dev/null >/dev/null 2>&1 & exit 0`;
    const r = await sut.run(['sh', '-c', script, 'sh', out], { labels: { job: 'daemon' } });
    assert.equal(r.code, 0, describeRan(r));
    const { runId } = runOf(r);
    assert.ok(!existsSync(out) || !/status:/.test(readFileSync(out, 'utf8')), 'the run ended before its daemon asked');

    await waitFor('the daemon to get its answer', async () => existsSync(out) && /status:/.test(readFileSync(out, 'utf8')), 10_000);
    assert.match(readFileSync(out, 'utf8'), /status: NXDOMAIN/);
    const e = await sut.waitForEvent('the daemon\'s block event', (x) => x.qname === 'daemon.blocked.example');
    assert.equal(e.runId, runId);
    assert.deepEqual(e.labels, { job: 'daemon' });
    assert.match(e.cmdline ?? '', /daemon\.blocked\.example/);
  });

  it('attributes each of four concurrent runs\' queries to the run that asked', async () => {
    const ran = await Promise.all(
      names.map(({ job, name }) =>
        // exec: dig keeps the pid the shell printed.
        sut.run(['sh', '-c', `echo "run $CGFENCE_RUN_ID pid $$"; exec ${DIG} ${name}`], { labels: { job } }),
      ),
    );
    const runs = ran.map((r) => ({ ...runOf(r), r }));
    assert.equal(new Set(runs.map((x) => x.runId)).size, 4, 'four distinct runs');

    for (const [i, { job, name }] of names.entries()) {
      const { runId, pid, r } = runs[i]!;
      assert.match(r.stdout, /status: NXDOMAIN/, `${name}: ${describeRan(r)}`);
      const e = await sut.waitForEvent(`the block event for ${name}`, (x) => x.qname === name);
      assert.equal(e.runId, runId, `${name}: run id`);
      assert.deepEqual(e.labels, { job }, `${name}: labels`);
      assert.equal(e.pid, pid, `${name}: pid`);
      assert.match(e.cmdline ?? '', new RegExp(`^dig .*${name.replace(/\./g, '\\.')}$`), `${name}: cmdline`);
      assert.equal(e.entry, '*.blocked.example');
      assert.equal(e.action, 'blocked');
    }
    const perName = names.map(({ name }) => sut.events().filter((x) => x.qname === name).length);
    assert.deepEqual(perName, [1, 1, 1, 1], 'exactly one event per query');
  });

  it('names the process (the comm of the event\'s pid, as ps shows it), not the thread that sent the query', async () => {
    // dig sends from a worker thread named isc-net-0000; the event's pid is
    // the process (thread group), so its comm must be the process's: "dig".
    const r = await sut.run(['sh', '-c', `echo "run $CGFENCE_RUN_ID pid $$"; exec ${DIG} comm.blocked.example`]);
    const { pid } = runOf(r);
    const e = await sut.waitForEvent('the block event for comm.blocked.example', (x) => x.qname === 'comm.blocked.example');
    assert.equal(e.pid, pid);
    assert.equal(e.comm, 'dig', `comm of pid ${pid} (dig); the event says ${JSON.stringify(e.comm)}`);
  });
});
