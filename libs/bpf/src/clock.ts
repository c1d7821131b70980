// CLOCK_MONOTONIC in nanoseconds: the clock of bpf_ktime_get_ns().
import { fail } from './errors';
import { KERNEL_ABI, lastErrno, libc } from './libbpf';

export function monotonicNowNs(): bigint {
  const ts = Buffer.alloc(16);
  if (libc().clock_gettime(KERNEL_ABI.CLOCK_MONOTONIC, ts) !== 0) fail('clock', 'clock_gettime(CLOCK_MONOTONIC)', lastErrno());
  return ts.readBigInt64LE(0) * 1_000_000_000n + ts.readBigInt64LE(8);
}
