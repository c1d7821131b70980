/** Milliseconds in each bucket of GET /events/aggregate. */
export const BUCKET_MS = { minute: 60_000, hour: 3_600_000, day: 86_400_000 } as const;
export type Bucket = keyof typeof BUCKET_MS;

const UNIT_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/** A time filter as the API reads it (a duration back from now, or an ISO time) in ms; undefined if neither. */
export function timeOf(text: string | undefined, now: number): number | undefined {
  if (!text) return undefined;
  const d = /^(\d{1,6})(s|m|h|d|w)$/.exec(text);
  if (d) return now - Number(d[1]) * UNIT_MS[d[2]!]!;
  const ms = Date.parse(text);
  return Number.isFinite(ms) ? ms : undefined;
}

/** The bucket that gives a readable chart for a range (at most a few hundred points). */
export function bucketFor(fromMs: number, toMs: number): Bucket {
  const hours = (toMs - fromMs) / 3_600_000;
  return hours <= 6 ? 'minute' : hours <= 24 * 14 ? 'hour' : 'day';
}

/**
 * Aggregate rows (bucket start, key, count) as chart series over the whole
 * range, a zero where a bucket has no row, so the chart's axis is the range
 * asked for. At most 5,000 buckets (a wider range is cut to its newest end).
 */
export function seriesOf(rows: readonly { bucket: string | null; key: string | null; count: number }[], keys: readonly string[], fromMs: number, toMs: number, bucket: Bucket): { x: number[]; values: number[][] } {
  const step = BUCKET_MS[bucket];
  const first = Math.max(Math.floor(fromMs / step) * step, toMs - 5000 * step);
  const x: number[] = [];
  for (let t = first; t <= toMs; t += step) x.push(t / 1000);
  const index = new Map(x.map((t, i) => [t, i]));
  const values = keys.map(() => x.map(() => 0));
  for (const r of rows) {
    const i = index.get(Math.floor(Date.parse(r.bucket ?? '') / step) * step / 1000);
    const k = keys.indexOf(r.key ?? '');
    if (i !== undefined && k >= 0) values[k]![i] = r.count;
  }
  return { x, values };
}
