// The per-client limit of UDP queries to the DNS proxy (issue 12, fairness;
// kernel side in c/client-rate.bpf.h). Each process (tgid) and each run
// (cgroup) that sends DNS has a bucket of `window` queries: a query to the
// proxy takes one, its answer gives it back (the ingress hook, when the
// answer arrives, read or not), and once no answer came for a second
// (CGF_RATE_QUIET_NS) `ratePerSecond` come back on their own (queries the
// proxy dropped, or lost with a restarted proxy). With the bucket empty the
// egress hook drops the datagram and sendmsg fails with EPERM, before it
// reaches the proxy's shared receive queue; audit mode only counts. So one
// client holds at most `window` unanswered queries in that queue, however
// fast it sends and however slow the proxy is, and the others' queries wait
// behind at most that much.
import { intStep } from './errors';
import { RATE_CONFIG } from './layout';
import { KERNEL_ABI, libbpf } from './libbpf';

export interface RateLimit {
  /** Queries that come back per second on their own once no answer came for a second: the rate of a client whose queries go unanswered. */
  readonly ratePerSecond: number;
  /** Queries in a full bucket: at most this many unanswered by the proxy at once. */
  readonly window: number;
}

export interface ClientRateLimits {
  /** Per process (tgid); null = no per-process limit. */
  readonly perProcess: RateLimit | null;
  /** Per run (the socket's cgroup: a run, or the deploy cgroup itself); null = no per-run limit. */
  readonly perRun: RateLimit | null;
}

/**
 * Defaults (docs/operations.md, "Per-client fairness"): the queue the others
 * wait behind is at most a window, so the window is what the proxy answers
 * in well under a stub resolver's timeout even while a flooder eats a core:
 * on the loaded 2-core development machine the proxy answered ~800
 * queries/s under a UDP flood, so 256 is ~0.3 s (1,024 was measured too: the
 * other client then got 8% of its answers). The price: one client's
 * throughput is at most window / round trip (256,000 q/s at a 1 ms round
 * trip; ~1,250 q/s on that machine at load 20, where the round trip was
 * 0.2 s). A run together: 512.
 */
export const DEFAULT_CLIENT_RATE_LIMITS: ClientRateLimits = {
  perProcess: { ratePerSecond: 256, window: 256 },
  perRun: { ratePerSecond: 512, window: 512 },
};

/** No limit at all (the kernel passes every datagram). */
export const NO_CLIENT_RATE_LIMITS: ClientRateLimits = { perProcess: null, perRun: null };

/** Upper bound of both numbers: beyond it a limit means nothing (and interval_ns would round to 0). */
export const MAX_RATE_LIMIT_VALUE = 1_000_000;

/** Throws a RangeError naming the problem. */
export function validateClientRateLimits(l: ClientRateLimits): void {
  for (const [what, r] of [
    ['perProcess', l.perProcess],
    ['perRun', l.perRun],
  ] as const) {
    if (r === null) continue;
    if (typeof r !== 'object') throw new RangeError(`clientRate.${what} must be { ratePerSecond, window } or null`);
    for (const k of ['ratePerSecond', 'window'] as const) {
      const v = r[k];
      if (!Number.isInteger(v) || v < 1 || v > MAX_RATE_LIMIT_VALUE) {
        throw new RangeError(`clientRate.${what}.${k} must be an integer 1..${MAX_RATE_LIMIT_VALUE}, got ${String(v)}`);
      }
    }
  }
}

/** The cgf_rate_config value: cost of one datagram and a full bucket (ns) per bucket kind, all 0 for "off". */
export function encodeClientRateLimits(l: ClientRateLimits): Buffer {
  const b = Buffer.alloc(RATE_CONFIG.size);
  const fl = RATE_CONFIG.fields;
  const put = (r: RateLimit | null, interval: number, burst: number): void => {
    if (r === null) return;
    const intervalNs = BigInt(Math.round(1e9 / r.ratePerSecond));
    b.writeBigUInt64LE(intervalNs, interval);
    b.writeBigUInt64LE(intervalNs * BigInt(r.window), burst);
  };
  put(l.perProcess, fl.proc_interval_ns.offset, fl.proc_window_ns.offset);
  put(l.perRun, fl.cgroup_interval_ns.offset, fl.cgroup_window_ns.offset);
  return b;
}

export class ClientRateLimiter {
  constructor(private readonly configFd: number) {}

  set(l: ClientRateLimits): void {
    validateClientRateLimits(l);
    intStep('set client rate limits', 'bpf_map_update_elem(cgf_rate_config)', () =>
      libbpf().bpf_map_update_elem(this.configFd, Buffer.alloc(4), encodeClientRateLimits(l), KERNEL_ABI.BPF_ANY),
    );
  }
}
