// Shared pieces of the benchmarks (`npm run bench`): a results table that
// prints the same way for every benchmark, and small statistics helpers.
// Benchmarks never assert: they print what they measured beside the target
// and the baseline measured in the same run, and say whether the target held.
import Table from 'cli-table3';

export type Cell = string | number;

export interface BenchTable {
  readonly title: string;
  readonly head: readonly string[];
  readonly rows: readonly (readonly Cell[])[];
  /** Lines printed under the table: targets, verdicts, caveats. */
  readonly notes?: readonly string[];
}

export function printTable(t: BenchTable): void {
  const table = new Table({ head: [...t.head], style: { head: [], border: [] } });
  for (const row of t.rows) table.push(row.map((c) => (typeof c === 'number' ? formatNumber(c) : c)));
  process.stdout.write(`\n${t.title}\n${table.toString()}\n`);
  for (const n of t.notes ?? []) process.stdout.write(`  ${n}\n`);
}

export function formatNumber(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  const abs = Math.abs(n);
  const digits = Number.isInteger(n) || abs >= 100 ? 0 : abs >= 10 ? 1 : abs >= 1 ? 2 : 3;
  return n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

/** The q-quantile (0..1) of the samples, by nearest rank. */
export function quantile(samples: readonly number[], q: number): number {
  if (samples.length === 0) return NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[rank]!;
}

export function median(samples: readonly number[]): number {
  return quantile(samples, 0.5);
}

/** "met" / "MISSED" for a target, so a reader finds misses at a glance. */
export function verdict(met: boolean): string {
  return met ? 'met' : 'MISSED';
}

/** Wall time of fn in milliseconds (high resolution). */
export async function timeMs<T>(fn: () => T | Promise<T>): Promise<{ ms: number; value: T }> {
  const t0 = process.hrtime.bigint();
  const value = await fn();
  return { ms: Number(process.hrtime.bigint() - t0) / 1e6, value };
}

/** mulberry32: small seeded pseudo-random numbers in [0, 1), so a benchmark's inputs are the same every run. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
