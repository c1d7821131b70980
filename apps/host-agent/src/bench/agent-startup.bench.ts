// Benchmark: the agent's start and size, before and after it became a NestJS
// application (issue 11), measured in the same run.
//
// "Before" is an earlier commit (CGFENCE_BENCH_BASELINE_REV, default d089d86,
// the last commit before the change), exported with `git archive` into a
// temporary directory, given this tree's node_modules (third-party packages
// linked, the workspace's own packages pointing into the export) and built
// there; CGFENCE_BENCH_BASELINE_DIR reuses one prepared that way. "After" is
// this tree. Both run as `cgfence agent` processes, one at a time, on a fresh
// deploy cgroup each (no adopted pins), with one proxy process
// (--proxy-workers 1) and the same upstream (a dnsdist answering every query
// itself).
//
// Per start: the time from spawning the process until the agent is enforcing
// (its "cgfence agent running" line, printed once the policy is in the kernel
// and the proxy, and the proxy answering a query), with an empty policy and
// with 100,000 names + 100,000 CIDRs; then its RSS (VmRSS) after 3 s idle,
// and its peak RSS under dnsperf load (max rate, 100 queries outstanding,
// 8 s). Rounds alternate which tree goes first, so drift in the machine's
// load hits both; the table shows medians (and the range).
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, readlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort, ManagedProcess, median, printTable, waitFor } from '@cgfence/devservices';
import { makeQuery, udpQuery } from '../dns/testing/dns-client';

const ROOT = resolve(__dirname, '..', '..', '..', '..', '..');
const BASELINE_REV = process.env['CGFENCE_BENCH_BASELINE_REV'] ?? 'd089d86';
const ROUNDS = Number(process.env['CGFENCE_BENCH_ROUNDS'] ?? 3);
const NAMES = 100_000;
const CIDRS = 100_000;
const IDLE_MS = 3000;
const LOAD_SECONDS = 8;
const HOST = '127.0.0.1';

interface Tree {
  readonly name: string;
  readonly root: string;
  /** The flags this version knows beyond the common ones. */
  readonly extraArgs: readonly string[];
}

interface Sample {
  readonly startMs: number;
  readonly idleRssMiB: number;
  readonly loadRssMiB: number;
  readonly qps: number;
}

/** The baseline commit, exported and built next to this tree's node_modules. */
function prepareBaseline(): string {
  const given = process.env['CGFENCE_BENCH_BASELINE_DIR'];
  if (given) return given;
  const dir = mkdtempSync(join(tmpdir(), 'cgfence-bench-baseline-'));
  execFileSync('sh', ['-c', `git -C "${ROOT}" archive "${BASELINE_REV}" | tar -x -C "${dir}"`]);
  const nm = join(dir, 'node_modules');
  mkdirSync(join(nm, '@cgfence'), { recursive: true });
  for (const e of readdirSync(join(ROOT, 'node_modules'))) {
    if (e !== '@cgfence') symlinkSync(join(ROOT, 'node_modules', e), join(nm, e));
  }
  // The workspace's own packages: the same relative links, so they point into the export.
  for (const e of readdirSync(join(ROOT, 'node_modules', '@cgfence'))) symlinkSync(readlinkSync(join(ROOT, 'node_modules', '@cgfence', e)), join(nm, '@cgfence', e));
  process.stdout.write(`building ${BASELINE_REV} in ${dir}...\n`);
  execFileSync(process.execPath, ['scripts/build.mjs'], { cwd: dir, stdio: 'inherit' });
  return dir;
}

function bigPolicy(): string {
  const lines: string[] = [];
  for (let i = 0; i < NAMES; i++) lines.push(`svc-${i}.blocked.test`);
  for (let i = 0; i < CIDRS; i++) lines.push(`10.${100 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}/32`);
  return `${lines.join('\n')}\n`;
}

function queryFile(dir: string): string {
  const lines: string[] = [];
  for (let i = 0; i < 50_000; i++) lines.push(i % 10 === 9 ? `svc-${(i * 7919) % NAMES}.blocked.test A` : `host-${i}.allowed.test A`);
  const file = join(dir, 'queries.txt');
  writeFileSync(file, `${lines.join('\n')}\n`);
  return file;
}

function rssMiB(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

async function answers(port: number): Promise<boolean> {
  try {
    await udpQuery(HOST, port, makeQuery('probe.allowed.test', 'A'), 300);
    return true;
  } catch {
    return false;
  }
}

function dnsperf(port: number, file: string): Promise<number> {
  return new Promise((resolveQps, reject) => {
    const p: ChildProcess = spawn('dnsperf', ['-s', HOST, '-p', String(port), '-d', file, '-l', String(LOAD_SECONDS), '-q', '100', '-t', '2'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr?.on('data', (d: Buffer) => (out += d.toString()));
    p.once('error', reject);
    p.once('exit', () => {
      const m = /Queries per second:\s+([\d.]+)/.exec(out);
      if (m) resolveQps(Number(m[1]));
      else reject(new Error(`dnsperf: ${out.slice(-500)}`));
    });
  });
}

async function measure(tree: Tree, policyFile: string, upstream: string, queries: string, dir: string): Promise<Sample> {
  const cgroup = `cgf-bench-start-${randomBytes(3).toString('hex')}`;
  const stateDir = join(dir, cgroup);
  const port = await freePort();
  const cli = join(tree.root, 'apps', 'cli', 'bin', 'cgfence');
  const args = [cli, 'agent', '--policy-file', policyFile, '--upstream', upstream, '--cgroup', cgroup, '--state-dir', stateDir, '--proxy-port', String(port), '--proxy-workers', '1', '--log-level', 'info', ...tree.extraArgs];
  const t0 = performance.now();
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const proc = new ManagedProcess(`agent ${tree.name}`, child);
  let log = '';
  let runningAt = 0;
  child.stdout?.on('data', (d: Buffer) => {
    log += d.toString();
    if (!runningAt && log.includes('"msg":"cgfence agent running"')) runningAt = performance.now();
  });
  child.stderr?.on('data', (d: Buffer) => (log += d.toString()));
  try {
    await waitFor(`${tree.name} to enforce`, async () => {
      if (!proc.running) throw new Error(`agent ${tree.name} exited:\n${log.slice(-2000)}`);
      return runningAt > 0 && (await answers(port));
    }, 120_000, 5);
    const startMs = performance.now() - t0;
    await sleep(IDLE_MS);
    const idleRssMiB = rssMiB(child.pid!);
    let loadRssMiB = idleRssMiB;
    const sampler = setInterval(() => {
      if (proc.running) loadRssMiB = Math.max(loadRssMiB, rssMiB(child.pid!));
    }, 100);
    let qps: number;
    try {
      qps = await dnsperf(port, queries);
    } finally {
      clearInterval(sampler);
    }
    return { startMs, idleRssMiB, loadRssMiB, qps };
  } finally {
    await proc.stop(10_000);
    execFileSync(process.execPath, [cli, 'agent', 'teardown', '--cgroup', cgroup, '--state-dir', stateDir], { stdio: 'ignore' });
  }
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('the agent benchmark needs root');
  const dir = mkdtempSync(join(tmpdir(), 'cgfence-bench-startup-'));
  const upstreamPort = await freePort();
  const upstreamConf = join(dir, 'upstream.conf');
  writeFileSync(upstreamConf, ['setSecurityPollSuffix("")', `setLocal("${HOST}:${upstreamPort}")`, 'addAction(AllRule(), SpoofAction("192.0.2.1", {ttl=300}))', ''].join('\n'));
  const upstream = ManagedProcess.start('upstream', 'dnsdist', ['--supervised', '--disable-syslog', '-C', upstreamConf], join(dir, 'upstream.log'));
  try {
    await waitFor('the upstream', () => answers(upstreamPort));
    const baseline = prepareBaseline();
    const trees: Tree[] = [
      { name: `before (${BASELINE_REV})`, root: baseline, extraArgs: [] },
      { name: 'after (Nest)', root: ROOT, extraArgs: ['--metrics-listen', `${HOST}:0`] },
    ];
    const policies = { empty: join(dir, 'empty.txt'), '100k+100k': join(dir, 'big.txt') };
    writeFileSync(policies.empty, '');
    writeFileSync(policies['100k+100k'], bigPolicy());
    const queries = queryFile(dir);
    const samples = new Map<string, Sample[]>();
    for (let round = 0; round < ROUNDS; round++) {
      for (const [policyName, file] of Object.entries(policies)) {
        for (const tree of round % 2 === 0 ? trees : [...trees].reverse()) {
          const s = await measure(tree, file, `${HOST}:${upstreamPort}`, queries, dir);
          const key = `${policyName}|${tree.name}`;
          samples.set(key, [...(samples.get(key) ?? []), s]);
          process.stdout.write(`round ${round + 1} ${policyName} ${tree.name}: start ${s.startMs.toFixed(0)} ms, idle ${s.idleRssMiB.toFixed(1)} MiB, load ${s.loadRssMiB.toFixed(1)} MiB at ${s.qps.toFixed(0)} qps\n`);
        }
      }
    }
    const range = (xs: number[], digits: number) => `${median(xs).toFixed(digits)} (${Math.min(...xs).toFixed(digits)}–${Math.max(...xs).toFixed(digits)})`;
    const rows: string[][] = [];
    for (const policyName of Object.keys(policies)) {
      for (const tree of trees) {
        const s = samples.get(`${policyName}|${tree.name}`)!;
        rows.push([
          policyName,
          tree.name,
          range(s.map((x) => x.startMs), 0),
          range(s.map((x) => x.idleRssMiB), 1),
          range(s.map((x) => x.loadRssMiB), 1),
          range(s.map((x) => x.qps), 0),
        ]);
      }
    }
    printTable({
      title: `Agent start to enforcing, and its size (${ROUNDS} rounds, median (min–max))`,
      head: ['policy', 'agent', 'start → enforcing ms', 'RSS idle MiB', 'RSS peak under dnsperf MiB', 'dnsperf qps'],
      rows,
      notes: [
        `before = ${BASELINE_REV} (git archive, built in a temp dir); after = this tree. One proxy process (--proxy-workers 1), fresh deploy cgroup per start.`,
        `start → enforcing: spawn until the "cgfence agent running" line and a proxy answer; 100k+100k = ${NAMES} names + ${CIDRS} /32 CIDRs.`,
        `RSS: VmRSS of the agent process after ${IDLE_MS / 1000} s idle, and its peak (sampled every 100 ms) during ${LOAD_SECONDS} s of dnsperf (-q 100, max rate).`,
      ],
    });
    if (!process.env['CGFENCE_BENCH_BASELINE_DIR']) rmSync(baseline, { recursive: true, force: true });
  } finally {
    await upstream.stop(3000);
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
