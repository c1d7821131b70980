// The DNS proxy's answer latency, as fixed buckets counted in plain numbers
// (one array increment per query, no allocation): proxy workers send them with
// their other counters, the pool sums them, the agent's metrics turn them into
// a Prometheus histogram.

/** Upper bounds of the buckets, in milliseconds; a last bucket counts the slower ones. */
export const LATENCY_BOUNDS_MS: readonly number[] = [0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500];

/** Per-bucket counts (not cumulative), one more than LATENCY_BOUNDS_MS (the last: slower than every bound). */
export function emptyLatencyBuckets(): number[] {
  return new Array<number>(LATENCY_BOUNDS_MS.length + 1).fill(0);
}

/** Counts one answer that took `ms`. */
export function observeLatency(buckets: number[], ms: number): void {
  let i = 0;
  while (i < LATENCY_BOUNDS_MS.length && ms > LATENCY_BOUNDS_MS[i]!) i++;
  buckets[i]!++;
}
