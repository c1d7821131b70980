// Building the inner LPM tries of a policy: encode both CIDR lists, create a
// trie per family sized to its list and fill it with one batch update. Used
// on the calling thread by DataPlane.applyIpPolicy() and inside the trie
// builder thread (trie-worker.ts) by DataPlane.prepareIpPolicy(). A trie fd is
// a process-wide file descriptor: whichever thread created it, any thread can
// swap it into the outer maps and must close it afterwards.
import { constants } from 'node:os';
import { Family } from './addr';
import { encodePolicyKeys } from './codec';
import { fail, intStep } from './errors';
import { LpmKeys } from './ip-digest';
import { LPM4_KEY, LPM6_KEY, TRIE_VALUE_SIZE } from './layout';
import { KERNEL_ABI, libbpf, libc } from './libbpf';

/** Two filled tries, not yet swapped in; the caller owns (and must close) both fds. */
export interface BuiltTries {
  fd4: number;
  fd6: number;
  keys4: LpmKeys;
  keys6: LpmKeys;
}

/**
 * Encodes and builds both families' tries. On error nothing is left open and
 * the error (AddressError for a bad entry, DataPlaneError for the kernel)
 * propagates.
 */
export function buildPolicyTries(p: { v4: readonly string[]; v6: readonly string[] }): BuiltTries {
  const keys4 = encodePolicyKeys(4, p.v4);
  const keys6 = encodePolicyKeys(6, p.v6);
  const fd4 = buildTrie(4, keys4);
  try {
    return { fd4, fd6: buildTrie(6, keys6), keys4, keys6 };
  } catch (err) {
    libc().close(fd4);
    throw err;
  }
}

export function buildTrie(family: Family, { keys, count: n }: LpmKeys): number {
  const layout = family === 4 ? LPM4_KEY : LPM6_KEY;
  const bpf = libbpf();
  const opts = Buffer.alloc(KERNEL_ABI.MAP_CREATE_OPTS_SIZE);
  opts.writeBigUInt64LE(BigInt(KERNEL_ABI.MAP_CREATE_OPTS_SIZE), 0);
  opts.writeUInt32LE(KERNEL_ABI.BPF_F_NO_PREALLOC, KERNEL_ABI.MAP_CREATE_OPTS_FLAGS_OFFSET);
  const step = `applyIpPolicy v${family}`;
  const fd = intStep(step, 'bpf_map_create(LPM_TRIE)', () =>
    bpf.bpf_map_create(KERNEL_ABI.BPF_MAP_TYPE_LPM_TRIE, `cgf_trie${family}`, layout.size, TRIE_VALUE_SIZE, Math.max(n, 1), opts),
  );
  if (n === 0) return fd;
  // One syscall for the whole list (the kernel walks it in a loop): about
  // twice as fast as one bpf_map_update_elem per entry, and no JS per entry.
  const values = Buffer.alloc(TRIE_VALUE_SIZE * n);
  for (let i = 0; i < n; i++) values.writeUInt32LE(1, i * TRIE_VALUE_SIZE);
  const batchOpts = Buffer.alloc(KERNEL_ABI.MAP_BATCH_OPTS_SIZE);
  batchOpts.writeBigUInt64LE(BigInt(KERNEL_ABI.MAP_BATCH_OPTS_SIZE), 0);
  const done: [number] = [n];
  const rc = bpf.bpf_map_update_batch(fd, keys, values, done, batchOpts);
  if (rc < 0) {
    libc().close(fd);
    const at = done[0] < n ? `, at key ${done[0]}: ${keys.subarray(done[0] * layout.size, (done[0] + 1) * layout.size).toString('hex')}` : '';
    fail(step, `bpf_map_update_batch(trie${at})`, rc);
  }
  return fd;
}

/** The kernel's id of a map fd (bpf_map_info.id). */
export function mapId(fd: number, step: string): number {
  const info = Buffer.alloc(96);
  const len = Buffer.alloc(4);
  len.writeUInt32LE(info.length);
  intStep(step, 'bpf_obj_get_info_by_fd', () => libbpf().bpf_obj_get_info_by_fd(fd, info, len));
  return info.readUInt32LE(KERNEL_ABI.MAP_INFO_ID_OFFSET);
}

/** True when slot 0 of the outer map holds a trie with no keys (false when it holds none, or on any doubt). */
function holdsEmptyTrie(outerFd: number): boolean {
  const bpf = libbpf();
  const id = Buffer.alloc(4);
  if (bpf.bpf_map_lookup_elem(outerFd, Buffer.alloc(4), id) < 0) return false;
  const fd = bpf.bpf_map_get_fd_by_id(id.readUInt32LE(0));
  if (fd < 0) return false;
  try {
    return bpf.bpf_map_get_next_key(fd, null, Buffer.alloc(LPM6_KEY.size)) === -constants.errno.ENOENT;
  } finally {
    libc().close(fd);
  }
}

/**
 * Puts a built trie into slot 0 of an outer map: one map update, atomic for
 * programs. Each such update waits for an RCU grace period in the kernel
 * (milliseconds), so an empty list replacing an empty trie, which changes
 * nothing, is skipped. Returns whether it swapped. Does not close `innerFd`.
 */
export function swapTrie(outerFd: number, outerName: string, innerFd: number, count: number): boolean {
  if (count === 0 && holdsEmptyTrie(outerFd)) return false;
  const value = Buffer.alloc(4);
  value.writeUInt32LE(innerFd);
  intStep(`applyIpPolicy swap ${outerName}`, 'bpf_map_update_elem(outer)', () =>
    libbpf().bpf_map_update_elem(outerFd, Buffer.alloc(4), value, KERNEL_ABI.BPF_ANY),
  );
  return true;
}

export function closeTries(t: { fd4: number; fd6: number }): void {
  libc().close(t.fd4);
  libc().close(t.fd6);
}
