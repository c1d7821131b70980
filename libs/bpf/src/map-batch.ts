// Reading a whole map from userspace: bpf_map_lookup_batch (one syscall per
// batch) or, where the kernel does not batch that map type, get_next_key plus
// one lookup per key. Used for the drift check (the inner LPM tries) and the
// prefilter (cgf_learned, cgf_prefilter4).
import { constants } from 'node:os';
import { fail } from './errors';
import { KERNEL_ABI, libbpf } from './libbpf';

/** ENOTSUPP: the kernel-internal "operation not supported" some map types answer batch calls with. */
const ENOTSUPP = 524;

export interface MapEntries {
  /** `count` keys back to back. */
  readonly keys: Buffer;
  /** `count` values back to back (`valueSize` each). */
  readonly values: Buffer;
  readonly count: number;
}

/** Every key and value of a map (at most `maxEntries`). */
export function readAllEntries(fd: number, keySize: number, valueSize: number, maxEntries: number, step: string): MapEntries {
  const bpf = libbpf();
  const keys = Buffer.alloc(keySize * maxEntries);
  const values = Buffer.alloc(valueSize * maxEntries);
  const opts = Buffer.alloc(KERNEL_ABI.MAP_BATCH_OPTS_SIZE);
  opts.writeBigUInt64LE(BigInt(KERNEL_ABI.MAP_BATCH_OPTS_SIZE), 0);
  // The batch token: generic batching uses the last key, hash maps a bucket index.
  let inBatch: Buffer | null = null;
  let count = 0;
  while (count < maxEntries) {
    const outBatch = Buffer.alloc(Math.max(keySize, 8));
    const n: [number] = [maxEntries - count];
    const rc = bpf.bpf_map_lookup_batch(fd, inBatch, outBatch, keys.subarray(count * keySize), values.subarray(count * valueSize), n, opts);
    if (rc < 0 && (Math.abs(rc) === constants.errno.EINVAL || Math.abs(rc) === constants.errno.EOPNOTSUPP || Math.abs(rc) === ENOTSUPP)) {
      if (count === 0) return walkEntries(fd, keySize, valueSize, maxEntries, step);
    }
    if (rc < 0 && Math.abs(rc) !== constants.errno.ENOENT) fail(step, 'bpf_map_lookup_batch', rc);
    count += n[0];
    if (rc < 0 /* ENOENT: no more keys */ || n[0] === 0) break;
    inBatch = outBatch;
  }
  return { keys: keys.subarray(0, count * keySize), values: values.subarray(0, count * valueSize), count };
}

function walkEntries(fd: number, keySize: number, valueSize: number, maxEntries: number, step: string): MapEntries {
  const bpf = libbpf();
  const keys = Buffer.alloc(keySize * maxEntries);
  const values = Buffer.alloc(valueSize * maxEntries);
  let prev: Buffer | null = null;
  let count = 0;
  while (count < maxEntries) {
    const next = keys.subarray(count * keySize, (count + 1) * keySize);
    const rc = bpf.bpf_map_get_next_key(fd, prev, next);
    if (rc === -constants.errno.ENOENT) break;
    if (rc < 0) fail(step, 'bpf_map_get_next_key', rc);
    prev = Buffer.from(next);
    const lrc = bpf.bpf_map_lookup_elem(fd, next, values.subarray(count * valueSize, (count + 1) * valueSize));
    if (lrc === -constants.errno.ENOENT) continue; // deleted meanwhile: overwritten by the next key
    if (lrc < 0) fail(step, 'bpf_map_lookup_elem', lrc);
    count++;
  }
  return { keys: keys.subarray(0, count * keySize), values: values.subarray(0, count * valueSize), count };
}

/** Writes `count` keys and values (back to back) with one bpf_map_update_batch. */
export function updateBatch(fd: number, keys: Buffer, values: Buffer, count: number, step: string, what: string): void {
  if (count === 0) return;
  const opts = Buffer.alloc(KERNEL_ABI.MAP_BATCH_OPTS_SIZE);
  opts.writeBigUInt64LE(BigInt(KERNEL_ABI.MAP_BATCH_OPTS_SIZE), 0);
  const done: [number] = [count];
  const rc = libbpf().bpf_map_update_batch(fd, keys, values, done, opts);
  if (rc < 0) fail(step, `bpf_map_update_batch(${what}, ${done[0]} of ${count} written)`, rc);
}
