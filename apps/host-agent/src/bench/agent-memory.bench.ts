// Benchmark: where the agent's memory goes under the floods of issue 12, with
// node's defaults against the agent's own settings (agent/agent-launch.ts:
// V8 young generation capped, two malloc arenas), in the same run. For each
// setting, one real agent (kernel redirect, fail mode open, one process: the
// proxy in the agent, as dns-load.e2e runs it) and the five floods of
// dns-load.e2e from an unprivileged client in a run, with a probe client
// beside it. Per flood: the agent's peak RSS (/proc every 100 ms) and, at that
// peak, what held it (the agent's own /metrics every 250 ms: V8 heap
// committed, of which the young generation; external memory, i.e. Buffers;
// the rest is native: malloc arenas, code, thread stacks, libraries), and the
// probe's p99. The target is AGENT_MEMORY_BOUND_BYTES with the agent's settings.
import { freePort, printTable, quantile, verdict } from '@cgfence/devservices';
import { AGENT_ENV, AGENT_V8_FLAGS, TUNING_ENV } from '../agent/agent-launch';
import { AGENT_MEMORY_BOUND_BYTES } from '../dns/memory-bound';
import type { FloodReport, ProbeReport } from '../dns/testing/flood-client';
import { AgentUnderTest } from '../e2e/agent-harness';
import { agentRss, floodAsNobody, startOriginalResolver } from '../e2e/load-lab';

const SECONDS = 6;
const BIG_TXT = Array.from({ length: 250 }, (_, i) => `${i}`.padEnd(240, 'x'));
const FLOODS: Array<{ name: string; args: string[]; extra?: string[] }> = [
  { name: 'expensive UDP', args: ['expensive-udp', '', '2000'] },
  { name: 'expensive TCP', args: ['expensive-tcp', '', '0'] },
  { name: 'pipelined TCP', args: ['tcp-burst', '', '0'] },
  { name: 'TCP slow readers', args: ['tcp-noread', 'big.test', '0'] },
  { name: 'UDP, 1 MB cmdline', args: ['udp-flood', 'blocked.test', '1000'], extra: Array.from({ length: 10 }, () => 'z'.repeat(100_000)) },
];
const SETTINGS: Array<{ name: string; env: NodeJS.ProcessEnv; nodeArgs: string[] }> = [
  { name: "node's defaults", env: { [TUNING_ENV]: 'off' }, nodeArgs: [] },
  { name: `agent's settings (${[...AGENT_V8_FLAGS, ...Object.entries(AGENT_ENV).map(([k, v]) => `${k}=${v}`)].join(' ')})`, env: {}, nodeArgs: [] },
];

interface Breakdown {
  rss: number;
  heap: number;
  young: number;
  external: number;
}

interface Row {
  readonly setting: string;
  readonly flood: string;
  readonly rest: number;
  readonly peak: number;
  readonly atPeak: Breakdown;
  readonly p99: number;
  readonly answered: number;
}

async function scrape(port: number): Promise<Breakdown | undefined> {
  try {
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`, { signal: AbortSignal.timeout(2000) })).text();
    const metric = (re: RegExp): number => Number(re.exec(text)?.[1] ?? 0);
    return {
      rss: metric(/^process_resident_memory_bytes (\d+)/m),
      heap: metric(/^nodejs_heap_size_total_bytes (\d+)/m),
      young: metric(/^nodejs_heap_space_size_total_bytes\{space="new"\} (\d+)/m),
      external: metric(/^nodejs_external_memory_bytes (\d+)/m),
    };
  } catch {
    return undefined;
  }
}

async function main(): Promise<void> {
  const rows: Row[] = [];
  const original = await startOriginalResolver();
  try {
    for (const setting of SETTINGS) {
      const metricsPort = await freePort();
      const sut = await AgentUnderTest.start({
        policy: 'blocked.test\n*.blocked.test\n',
        failMode: 'open',
        records: { 'probe.test': { A: ['192.0.2.1'] }, 'big.test': { TXT: BIG_TXT } },
        extraArgs: ['--proxy-workers', '1', '--metrics-listen', `127.0.0.1:${metricsPort}`],
        env: { ...process.env, ...setting.env },
        nodeArgs: setting.nodeArgs,
      });
      try {
        const pid = sut.proc?.pid as number;
        await new Promise((r) => setTimeout(r, 2000));
        const rest = agentRss(pid);
        for (const f of FLOODS) {
          let peak = agentRss(pid);
          let atPeak: Breakdown = { rss: peak, heap: 0, young: 0, external: 0 };
          const rssWatch = setInterval(() => (peak = Math.max(peak, agentRss(pid))), 100);
          const metricsWatch = setInterval(() => {
            void scrape(metricsPort).then((b) => {
              if (!b) return;
              if (b.rss >= atPeak.rss) atPeak = b;
            });
          }, 250);
          let probe: ProbeReport;
          try {
            [, probe] = await Promise.all([
              floodAsNobody<FloodReport>(sut, [f.args[0], original.host, '53', String(SECONDS), f.args[1], f.args[2]], f.extra ?? [], SECONDS + 60),
              floodAsNobody<ProbeReport>(sut, ['probe', original.host, '53', String(SECONDS), 'x.blocked.test,probe.test'], [], SECONDS + 60),
            ]);
          } finally {
            clearInterval(rssWatch);
            clearInterval(metricsWatch);
          }
          const asked = probe.allowedAnswered + probe.allowedShed + probe.allowedNoAnswer;
          rows.push({
            setting: setting.name,
            flood: f.name,
            rest,
            peak,
            atPeak,
            p99: probe.latenciesMs.length > 0 ? quantile(probe.latenciesMs, 0.99) : NaN,
            answered: probe.allowedAnswered / Math.max(1, asked),
          });
          await new Promise((r) => setTimeout(r, 2000));
        }
      } finally {
        await sut.stop();
      }
    }
  } finally {
    await original.close();
  }

  const mib = (n: number): string => (n / 2 ** 20).toFixed(0);
  const tuned = rows.filter((r) => r.setting === SETTINGS[1].name);
  const tunedPeak = Math.max(...tuned.map((r) => r.peak));
  printTable({
    title: 'Agent memory under floods (one process, real kernel): peak RSS and what held it at the sampled peak',
    head: ['setting', 'flood', 'RSS at rest MiB', 'peak RSS MiB', 'at peak: V8 heap', 'of which young gen', 'external (Buffers)', 'native (rest)', 'probe answered', 'probe p99 ms'],
    rows: rows.map((r) => [
      r.setting,
      r.flood,
      mib(r.rest),
      mib(r.peak),
      mib(r.atPeak.heap),
      mib(r.atPeak.young),
      mib(r.atPeak.external),
      mib(Math.max(0, r.atPeak.rss - r.atPeak.heap - r.atPeak.external)),
      `${(100 * r.answered).toFixed(0)}%`,
      Number.isNaN(r.p99) ? '-' : r.p99.toFixed(1),
    ]),
    notes: [
      `target: peak RSS with the agent's settings < ${mib(AGENT_MEMORY_BOUND_BYTES)} MiB (AGENT_MEMORY_BOUND_BYTES): ${mib(tunedPeak)} MiB (${verdict(tunedPeak < AGENT_MEMORY_BOUND_BYTES)}). Baseline: node's defaults, same run.`,
      `each flood ${SECONDS} s from uid 65534 in a run, with a probe (listed and allowed names every 50 ms); RSS sampled every 100 ms, the breakdown from the agent's /metrics every 250 ms (taken at the highest RSS it saw, so it may miss the very peak).`,
      'native = RSS - V8 heap committed - external: malloc arenas (freed but kept memory), code, thread stacks, shared libraries.',
      'the machine is shared (other engineers build and test on the same 2 cores): figures are noisy.',
    ],
  });
}

main().catch((err: unknown) => {
  process.stderr.write(`agent-memory benchmark failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exitCode = 1;
});
