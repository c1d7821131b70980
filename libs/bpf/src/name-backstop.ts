// The name backstop: the policy's listed names in a kernel map (cgf_names)
// that the egress hook checks the question of every port-53 UDP query against
// when it does not go to the proxy (fail open, or a socket connected while
// the proxy was dead). Built and swapped like the IP tries: a new hash map per
// policy, exactly as large as its names, put into slot 0 of the outer array
// with one update (trie-worker.ts does it on the builder thread).
//
// Keys (cgfence.h): FNV-1a 64 of the name's lower-cased wire form, fed from
// its last byte to its first, so the kernel gets the hash of every suffix in
// one backward pass. 64 bits: with a million listed names a given unlisted
// name collides with one of them with probability ~5e-14; a collision can
// only block an unlisted name (in fail open), never let a listed one through,
// as a listed name always hashes to its own key. FNV is not collision
// resistant: a process could build an unlisted name that collides on purpose,
// which only gets its own query dropped.
import { constants } from 'node:os';
import { DataPlaneError, fail, intStep } from './errors';
import { CONSTANTS, NAME_KEY_SIZE, NAME_VALUE_SIZE } from './layout';
import { KERNEL_ABI, libbpf, libc } from './libbpf';
import { readAllEntries } from './map-batch';

/** Listed names as the policy holds them: canonical (lower case, A-labels, no trailing dot). */
export interface NamePolicy {
  /** Names blocked themselves (`github.com`). */
  readonly exact: readonly string[];
  /** Wildcards: `*.github.com` (or `github.com`) blocks every strict subdomain of github.com. */
  readonly wildcard: readonly string[];
}

/** Encoded name keys and their values, back to back, as bpf_map_update_batch takes them. */
export interface NameKeys {
  keys: Buffer;
  values: Buffer;
  count: number;
}

const SEED_HI = CONSTANTS.CGF_NAME_HASH_SEED_HI;
const SEED_LO = CONSTANTS.CGF_NAME_HASH_SEED_LO;
// The FNV 64 prime is 2^40 + 0x1b3: h * prime = (h << 40) + h * 0x1b3 (mod 2^64).
const PRIME_LOW_PART = CONSTANTS.CGF_NAME_HASH_PRIME - 2 ** 40;

/** A name's wire form (length-prefixed labels, no terminating zero), lower-cased. Throws naming the entry if it cannot be one. */
export function nameWire(name: string): Buffer {
  let n = name.startsWith('*.') ? name.slice(2) : name;
  if (n.endsWith('.')) n = n.slice(0, -1);
  n = n.toLowerCase();
  // eslint-disable-next-line no-control-regex -- the test is "any byte outside ASCII"
  if (n === '' || /[^\x00-\x7f]/.test(n)) throw new DataPlaneError('applyIpPolicy names', `${JSON.stringify(name)} is not a listable DNS name (empty or not ASCII/A-labels)`);
  const labels = n.split('.');
  const out = Buffer.alloc(n.length + 1);
  let at = 0;
  for (const label of labels) {
    if (label.length === 0 || label.length > 63) {
      throw new DataPlaneError('applyIpPolicy names', `${JSON.stringify(name)} has an empty label or one longer than 63 bytes`);
    }
    out[at++] = label.length;
    at += out.write(label, at, 'latin1');
  }
  // + the terminating zero the kernel sees
  if (at + 1 > CONSTANTS.CGF_NAME_MAX) throw new DataPlaneError('applyIpPolicy names', `${JSON.stringify(name)} is longer than ${CONSTANTS.CGF_NAME_MAX} bytes on the wire`);
  return out.subarray(0, at);
}

/** The kernel's key of a name: FNV-1a 64 of its wire form read backwards, as [high, low] 32-bit halves. */
export function nameHash(wire: Uint8Array): [number, number] {
  let hi: number = SEED_HI;
  let lo: number = SEED_LO;
  for (let i = wire.length - 1; i >= 0; i--) {
    lo = (lo ^ wire[i]!) >>> 0;
    // Every intermediate stays below 2^53, so the doubles are exact.
    const loMul = lo * PRIME_LOW_PART;
    const carry = Math.floor(loMul / 2 ** 32);
    hi = (hi * PRIME_LOW_PART + carry + lo * 256) % 2 ** 32;
    lo = loMul % 2 ** 32;
  }
  return [hi, lo];
}

/** The same hash in BigInt (slow; for tests and tools). */
export function nameHashBig(wire: Uint8Array): bigint {
  let h = (BigInt(SEED_HI) << 32n) | BigInt(SEED_LO);
  for (let i = wire.length - 1; i >= 0; i--) h = ((h ^ BigInt(wire[i]!)) * BigInt(CONSTANTS.CGF_NAME_HASH_PRIME)) & 0xffff_ffff_ffff_ffffn;
  return h;
}

/**
 * The kernel's key of a name (canonical or not: '*.' prefix, trailing dot and
 * letter case are dropped), as [high, low] 32-bit halves, computed straight
 * from the string's characters walking its wire form backwards, without
 * building it. Throws naming the entry if it cannot be a wire name.
 */
export function nameKey(name: string): [number, number] {
  let start = name.startsWith('*.') ? 2 : 0;
  let end = name.length;
  if (end > start && name.charCodeAt(end - 1) === 0x2e) end--;
  if (end <= start) start = end = 0;
  // wire length = characters + 1 length byte for the first label (+ the terminating zero in the kernel)
  if (end - start + 2 > CONSTANTS.CGF_NAME_MAX) nameWire(name); // throws the precise message
  let hi: number = SEED_HI;
  let lo: number = SEED_LO;
  let labelLen = 0;
  for (let i = end - 1; i >= start - 1; i--) {
    const c = i >= start ? name.charCodeAt(i) : 0x2e; // a virtual dot before the first label
    let byte: number;
    if (c === 0x2e) {
      if (labelLen === 0 || labelLen > 63) nameWire(name); // throws the precise message
      byte = labelLen;
      labelLen = 0;
    } else {
      if (c > 0x7f) nameWire(name); // throws: not ASCII
      byte = c >= 0x41 && c <= 0x5a ? c + 0x20 : c;
      labelLen++;
    }
    // One FNV step as in nameHash(); every value stays below 2^53 (exact), and
    // >>> 0 is the exact remainder mod 2^32.
    lo = (lo ^ byte) >>> 0;
    const loMul = lo * PRIME_LOW_PART;
    const loNew = loMul >>> 0;
    hi = (hi * PRIME_LOW_PART + (loMul - loNew) / 2 ** 32 + lo * 256) >>> 0;
    lo = loNew;
  }
  if (end === start) nameWire(name); // throws: empty
  return [hi, lo];
}

/**
 * Encodes a name policy: one key per distinct name (case and '*.' folded),
 * its CGF_NAME_* bits OR-ed when a name is listed both ways. Two different
 * names with the same 64-bit key (odds ~3e-10 for 100,000 names) would keep
 * only the later one's bits.
 */
export function encodeNameKeys(p: NamePolicy): NameKeys {
  const bits = new Map<string, number>();
  const add = (name: string, bit: number): void => {
    let n = name.startsWith('*.') ? name.slice(2) : name;
    if (n.endsWith('.')) n = n.slice(0, -1);
    n = n.toLowerCase();
    bits.set(n, (bits.get(n) ?? 0) | bit);
  };
  for (const n of p.exact) add(n, CONSTANTS.CGF_NAME_EXACT);
  for (const n of p.wildcard) add(n, CONSTANTS.CGF_NAME_WILDCARD);
  const count = bits.size;
  const keys = Buffer.alloc(NAME_KEY_SIZE * count);
  const values = Buffer.alloc(NAME_VALUE_SIZE * count);
  let i = 0;
  for (const [name, b] of bits) {
    const [hi, lo] = nameKey(name);
    keys.writeUInt32LE(lo, i * NAME_KEY_SIZE);
    keys.writeUInt32LE(hi, i * NAME_KEY_SIZE + 4);
    values[i] = b;
    i++;
  }
  return { keys, values, count };
}

/** Creates a name map sized to `k` and fills it with one batch update; the caller owns (and must close) the fd. */
export function buildNameMap(k: NameKeys): number {
  const bpf = libbpf();
  const opts = Buffer.alloc(KERNEL_ABI.MAP_CREATE_OPTS_SIZE);
  opts.writeBigUInt64LE(BigInt(KERNEL_ABI.MAP_CREATE_OPTS_SIZE), 0);
  opts.writeUInt32LE(KERNEL_ABI.BPF_F_NO_PREALLOC, KERNEL_ABI.MAP_CREATE_OPTS_FLAGS_OFFSET);
  const step = 'applyIpPolicy names';
  const fd = intStep(step, 'bpf_map_create(HASH)', () =>
    bpf.bpf_map_create(KERNEL_ABI.BPF_MAP_TYPE_HASH, 'cgf_names_in', NAME_KEY_SIZE, NAME_VALUE_SIZE, Math.max(k.count, 1), opts),
  );
  if (k.count === 0) return fd;
  const batchOpts = Buffer.alloc(KERNEL_ABI.MAP_BATCH_OPTS_SIZE);
  batchOpts.writeBigUInt64LE(BigInt(KERNEL_ABI.MAP_BATCH_OPTS_SIZE), 0);
  const done: [number] = [k.count];
  const rc = bpf.bpf_map_update_batch(fd, k.keys, k.values, done, batchOpts);
  if (rc < 0) {
    libc().close(fd);
    fail(step, `bpf_map_update_batch(names, at key ${done[0]})`, rc);
  }
  return fd;
}

/** Puts a built name map into slot 0 of cgf_names (one update, atomic for the programs). Skips an empty map replacing an empty one. */
export function swapNameMap(outerFd: number, innerFd: number, count: number): boolean {
  if (count === 0 && holdsEmptyMap(outerFd)) return false;
  const value = Buffer.alloc(4);
  value.writeUInt32LE(innerFd);
  intStep('applyIpPolicy swap cgf_names', 'bpf_map_update_elem(outer)', () =>
    libbpf().bpf_map_update_elem(outerFd, Buffer.alloc(4), value, KERNEL_ABI.BPF_ANY),
  );
  return true;
}

function holdsEmptyMap(outerFd: number): boolean {
  const bpf = libbpf();
  const id = Buffer.alloc(4);
  if (bpf.bpf_map_lookup_elem(outerFd, Buffer.alloc(4), id) < 0) return false;
  const fd = bpf.bpf_map_get_fd_by_id(id.readUInt32LE(0));
  if (fd < 0) return false;
  try {
    return bpf.bpf_map_get_next_key(fd, null, Buffer.alloc(NAME_KEY_SIZE)) === -constants.errno.ENOENT;
  } finally {
    libc().close(fd);
  }
}

/**
 * The name backstop of a DataPlane: applies a name policy on the calling
 * thread (the builder thread does it for prepareIpPolicy) and reads back what
 * the kernel holds.
 */
export class NameBackstop {
  /** How many distinct names (keys) this DataPlane last swapped in; undefined before the first apply. */
  private appliedCount?: number;

  constructor(private readonly outerFd: number) {}

  /** Builds a complete map for `p` and swaps it in; on error the names in force stay. Returns the distinct names now listed. */
  apply(p: NamePolicy): number {
    const k = encodeNameKeys(p);
    const fd = buildNameMap(k);
    try {
      swapNameMap(this.outerFd, fd, k.count);
    } finally {
      libc().close(fd);
    }
    this.appliedCount = k.count;
    return k.count;
  }

  /** Records a swap done on the builder thread. */
  noteApplied(count: number): void {
    this.appliedCount = count;
  }

  get applied(): number | undefined {
    return this.appliedCount;
  }

  /** The keys of the map in force, read from the kernel (sorted hex, for drift checks and tests); [] before any apply. */
  keysInKernel(): string[] {
    const bpf = libbpf();
    const step = 'nameBackstop';
    const id = Buffer.alloc(4);
    const rc = bpf.bpf_map_lookup_elem(this.outerFd, Buffer.alloc(4), id);
    if (rc === -constants.errno.ENOENT) return [];
    if (rc < 0) fail(step, 'bpf_map_lookup_elem(cgf_names)', rc);
    const fd = intStep(step, `bpf_map_get_fd_by_id(${id.readUInt32LE(0)})`, () => bpf.bpf_map_get_fd_by_id(id.readUInt32LE(0)));
    try {
      const info = Buffer.alloc(96);
      const len = Buffer.alloc(4);
      len.writeUInt32LE(info.length);
      intStep(step, 'bpf_obj_get_info_by_fd(names)', () => bpf.bpf_obj_get_info_by_fd(fd, info, len));
      const maxEntries = info.readUInt32LE(KERNEL_ABI.MAP_INFO_MAX_ENTRIES_OFFSET);
      const { keys, count } = readAllEntries(fd, NAME_KEY_SIZE, NAME_VALUE_SIZE, maxEntries, step);
      const out: string[] = [];
      for (let i = 0; i < count; i++) out.push(keys.readBigUInt64LE(i * NAME_KEY_SIZE).toString(16).padStart(16, '0'));
      return out.sort();
    } finally {
      libc().close(fd);
    }
  }
}

/** A name policy's key in the hex form keysInKernel() returns (for tests). */
export function nameKeyHex(name: string): string {
  const [hi, lo] = nameKey(name);
  return hi.toString(16).padStart(8, '0') + lo.toString(16).padStart(8, '0');
}
