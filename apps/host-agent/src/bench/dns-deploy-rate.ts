// The deploy-rate half of the dns-proxy benchmark (issue 19): the real agent
// (kernel redirect, attribution, journal, a 10,000-entry wildcard list) and
// dnsperf at 100, 1,000 and 5,000 queries/s, once from inside `cgfence run`
// (the kernel sends its port-53 queries to the agent's proxy) and once from
// outside the deploy cgroup straight to the same upstream, interleaved in the
// same run. Added latency = inside minus outside, per quantile. Also the
// agent's RSS under that load.
import { spawn } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { setPriority } from 'node:os';
import { join } from 'node:path';
import { quantile } from '@cgfence/devservices';
import { AgentUnderTest } from '../e2e/agent-harness';
import { agentRss, processCpuMs } from '../e2e/load-lab';

export interface DeployRateOptions {
  /** Blocklist in the project's grammar ('*.suffix' lines). */
  readonly policyText: string;
  /** dnsperf query file (as for the saturation runs). */
  readonly queryFile: string;
  /** Starts the native upstream on HOST:53 (a loopback address the kernel redirects from inside a run). */
  readonly startUpstream: (host: string) => Promise<void>;
  readonly rates: readonly number[];
  /** Runs per rate and path (interleaved); latencies are pooled over them. */
  readonly rounds: number;
  /** Seconds per run at a rate (at least enough queries for a p99 of 10 samples at 100/s). */
  readonly secondsAt: (rate: number) => number;
  /** Node options for every agent process (profiling, --trace-gc). */
  readonly agentNodeArgs?: readonly string[];
  /** Directory to write each agent's output to (e.g. its --trace-gc lines), as `agent-<name>.log`. */
  readonly agentLogDir?: string;
  /** A baseline build's `cgfence` (another tree): its agent runs beside this one, rounds interleaved. */
  readonly baselineBin?: string;
  /**
   * Also measure a second agent of this build whose main thread (where the
   * proxy answers) runs at this nice value (renice after start): how much of
   * the added latency is waiting for a CPU on a shared machine.
   */
  readonly niceVariant?: number;
}

export interface LatencySample {
  /** Latencies (ms) of the answers that came back NOERROR (forwarded by the proxy; the listed names are answered locally). */
  readonly forwardedMs: number[];
  readonly sent: number;
  readonly lost: number;
  readonly nxdomain: number;
}

export interface AgentSample {
  /** 'this build' or 'baseline'. */
  readonly agent: string;
  readonly inside: LatencySample;
  /** Agent (and proxy workers) RSS, sampled every 100 ms during the inside runs at this rate: peak. */
  readonly peakRssBytes: number;
  /** Agent (and proxy workers) CPU time during the inside runs, per answered query (µs): not inflated by CPU contention as latency is. */
  readonly cpuUsPerQuery: number;
}

export interface DeployRateRow {
  readonly rate: number;
  readonly outside: LatencySample;
  readonly agents: AgentSample[];
}

export interface AgentSummary {
  readonly agent: string;
  readonly idleRssBytes: number;
  /** Journal records of listed names seen in the runs (the journal was on), and how many named a run and a process. */
  readonly journalled: { readonly blocks: number; readonly attributed: number };
}

export interface DeployRateResult {
  readonly upstream: string;
  readonly rows: DeployRateRow[];
  readonly agents: AgentSummary[];
}

function parse(out: string): LatencySample {
  const forwardedMs: number[] = [];
  let nxdomain = 0;
  // "> NOERROR host-1.allowed.test A 0.000131": latency in seconds, microsecond resolution.
  for (const m of out.matchAll(/^> (\S+) \S+ \S+ (\d+\.\d+)$/gm)) {
    if (m[1] === 'NOERROR') forwardedMs.push(Number(m[2]) * 1000);
    else if (m[1] === 'NXDOMAIN') nxdomain++;
  }
  const sent = Number(/Queries sent:\s+(\d+)/.exec(out)?.[1] ?? NaN);
  const lost = Number(/Queries lost:\s+(\d+)/.exec(out)?.[1] ?? NaN);
  if (!Number.isFinite(sent)) throw new Error(`dnsperf output lacks its summary:\n${out.slice(-2000)}`);
  return { forwardedMs, sent, lost, nxdomain };
}

function perfArgs(host: string, queryFile: string, rate: number, seconds: number): string[] {
  // -q 100 (dnsperf's default): far above rate x latency, so the rate paces the
  // sender, and within the kernel's per-process window of unanswered queries.
  return ['-s', host, '-p', '53', '-d', queryFile, '-l', String(seconds), '-Q', String(rate), '-q', '100', '-t', '2', '-v'];
}

function outside(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('dnsperf', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.once('error', reject);
    child.once('close', (code) =>
      code === 0 ? resolve(Buffer.concat(out).toString('utf8')) : reject(new Error(`dnsperf exited ${code}: ${Buffer.concat(err).toString('utf8')}`)),
    );
  });
}

const pool = (samples: readonly LatencySample[]): LatencySample => ({
  forwardedMs: samples.flatMap((s) => s.forwardedMs),
  sent: samples.reduce((n, s) => n + s.sent, 0),
  lost: samples.reduce((n, s) => n + s.lost, 0),
  nxdomain: samples.reduce((n, s) => n + s.nxdomain, 0),
});

/** Runs the deploy-rate measurement; starts and stops its own agent(s). */
export async function measureDeployRates(o: DeployRateOptions): Promise<DeployRateResult> {
  // Port 53 on a loopback address of its own: what a deploy's resolver would be, and what the kernel redirects.
  const host = `127.79.${randomInt(1, 255)}.${randomInt(1, 255)}`;
  await o.startUpstream(host);
  const upstream = `${host}:53`;
  const policy = { policy: o.policyText, failMode: 'open' as const, upstreamAddress: upstream };
  const suts: Array<{ name: string; sut: AgentUnderTest }> = [];
  try {
    suts.push({ name: 'this build', sut: await AgentUnderTest.start({ ...policy, nodeArgs: [...(o.agentNodeArgs ?? [])] }) });
    // The same build with every datagram in JavaScript: the UDP core's peer in the same rounds.
    suts.push({
      name: 'this build, --dns-udp-engine node',
      sut: await AgentUnderTest.start({ ...policy, nodeArgs: [...(o.agentNodeArgs ?? [])], extraArgs: ['--dns-udp-engine', 'node'] }),
    });
    if (o.niceVariant !== undefined) {
      const sut = await AgentUnderTest.start({ ...policy, nodeArgs: [...(o.agentNodeArgs ?? [])] });
      suts.push({ name: `this build, nice ${o.niceVariant}`, sut });
      // The main thread only (its tid is the pid): the JS thread the proxy answers on.
      setPriority(sut.proc?.pid as number, o.niceVariant);
    }
    if (o.baselineBin !== undefined) {
      suts.push({ name: 'baseline', sut: await AgentUnderTest.start({ ...policy, cgfenceBin: o.baselineBin, nodeArgs: [...(o.agentNodeArgs ?? [])] }) });
    }
    const idle = new Map<string, number>();
    for (const { name, sut } of suts) {
      // Warm-up inside a run (JIT, the proxy's sockets, the journal), not measured.
      const warm = await sut.run(['dnsperf', ...perfArgs(host, o.queryFile, 2000, 3)], { timeoutMs: 60_000 });
      if (warm.code !== 0) throw new Error(`dnsperf in a run exited ${warm.code}: ${warm.stderr}${warm.stdout.slice(-500)}`);
      await new Promise((r) => setTimeout(r, 1000));
      idle.set(name, agentRss(sut.proc?.pid as number));
    }
    const rows: DeployRateRow[] = [];
    for (const rate of o.rates) {
      const seconds = o.secondsAt(rate);
      const args = perfArgs(host, o.queryFile, rate, seconds);
      const outs: LatencySample[] = [];
      const ins = new Map<string, LatencySample[]>(suts.map((x) => [x.name, []]));
      const peaks = new Map<string, number>(suts.map((x) => [x.name, 0]));
      const cpu = new Map<string, number>(suts.map((x) => [x.name, 0]));
      for (let round = 0; round < o.rounds; round++) {
        outs.push(parse(await outside(args)));
        for (const { name, sut } of suts) {
          const pid = sut.proc?.pid as number;
          const watch = setInterval(() => peaks.set(name, Math.max(peaks.get(name) ?? 0, agentRss(pid))), 100);
          const cpuBefore = processCpuMs(pid);
          try {
            const r = await sut.run(['dnsperf', ...args], { timeoutMs: (seconds + 30) * 1000 });
            cpu.set(name, (cpu.get(name) ?? 0) + processCpuMs(pid) - cpuBefore);
            if (r.code !== 0) throw new Error(`dnsperf in a run exited ${r.code}: ${r.stderr}${r.stdout.slice(-500)}`);
            ins.get(name)?.push(parse(r.stdout));
          } finally {
            clearInterval(watch);
          }
        }
      }
      rows.push({
        rate,
        outside: pool(outs),
        agents: suts.map(({ name }) => {
          const inside = pool(ins.get(name) ?? []);
          const answered = inside.forwardedMs.length + inside.nxdomain;
          return { agent: name, inside, peakRssBytes: peaks.get(name) ?? 0, cpuUsPerQuery: ((cpu.get(name) ?? 0) * 1000) / Math.max(1, answered) };
        }),
      });
    }
    const agents = suts.map(({ name, sut }) => {
      const blocks = sut.events().filter((e) => e.action === 'blocked' && e.method === 'dns');
      return { agent: name, idleRssBytes: idle.get(name) ?? 0, journalled: { blocks: blocks.length, attributed: blocks.filter((e) => e.pid !== null && e.runId !== null).length } };
    });
    if (o.agentLogDir !== undefined) {
      for (const { name, sut } of suts) writeFileSync(join(o.agentLogDir, `agent-${name.replace(/[^a-z0-9-]+/gi, '-')}.log`), sut.log);
    }
    return { upstream, rows, agents };
  } finally {
    for (const { sut } of suts) await sut.stop();
  }
}

/** p50 / p99 / max of forwarded answers, ms. */
export function latencyFigures(s: LatencySample): { p50: number; p99: number; max: number } {
  return { p50: quantile(s.forwardedMs, 0.5), p99: quantile(s.forwardedMs, 0.99), max: s.forwardedMs.reduce((m, x) => Math.max(m, x), 0) };
}
