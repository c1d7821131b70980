// Digests of the blocked CIDR sets, to tell whether the kernel's LPM tries
// still hold what the agent wrote (drift). Pure: the keys are the LPM trie
// keys exactly as bpf_map_update_batch() took them and as the kernel hands
// them back; sorted before hashing, so the order of either side is irrelevant.
import { createHash } from 'node:crypto';
import { Family } from './addr';
import { LPM4_KEY, LPM6_KEY } from './layout';

/** LPM trie keys of one family, back to back (the encodePolicyKeys() form). */
export interface LpmKeys {
  readonly keys: Buffer;
  readonly count: number;
}

export interface IpPolicyDigest {
  /** Distinct IPv4 networks. */
  readonly v4: number;
  /** Distinct IPv6 networks. */
  readonly v6: number;
  /** 'sha256:<hex>' over both families' sorted keys. */
  readonly digest: string;
  readonly v4Digest: string;
  readonly v6Digest: string;
}

export interface IpPolicyDrift {
  readonly drifted: boolean;
  /** What differs, e.g. 'kernel holds 99,999 v4 ranges, applied 100,000'. */
  readonly detail?: string;
}

function keySize(family: Family): number {
  return family === 4 ? LPM4_KEY.size : LPM6_KEY.size;
}

/** The keys in a canonical order (a fresh buffer). */
export function sortLpmKeys(family: Family, { keys, count }: LpmKeys): Buffer {
  const size = keySize(family);
  if (keys.length < count * size) throw new RangeError(`${count} v${family} keys need ${count * size} bytes, got ${keys.length}`);
  const out = Buffer.alloc(count * size);
  if (size === 8) {
    // 8-byte keys sort as 64-bit integers: a native typed array sort, fast
    // enough for the 100,000-entry lists the agent carries.
    const words = new BigUint64Array(count);
    for (let i = 0; i < count; i++) words[i] = keys.readBigUInt64LE(i * 8);
    words.sort();
    for (let i = 0; i < count; i++) out.writeBigUInt64LE(words[i]!, i * 8);
    return out;
  }
  const order = Array.from({ length: count }, (_, i) => i);
  order.sort((a, b) => Buffer.compare(keys.subarray(a * size, (a + 1) * size), keys.subarray(b * size, (b + 1) * size)));
  order.forEach((from, to) => keys.copy(out, to * size, from * size, (from + 1) * size));
  return out;
}

function sha256(...parts: Buffer[]): string {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return `sha256:${h.digest('hex')}`;
}

/** The digest of both families' key sets. */
export function ipPolicyDigest(v4: LpmKeys, v6: LpmKeys): IpPolicyDigest {
  const s4 = sortLpmKeys(4, v4);
  const s6 = sortLpmKeys(6, v6);
  return {
    v4: v4.count,
    v6: v6.count,
    digest: sha256(Buffer.from('v4\n'), s4, Buffer.from('v6\n'), s6),
    v4Digest: sha256(s4),
    v6Digest: sha256(s6),
  };
}

const n = (x: number) => x.toLocaleString('en-US');

/** Compares what was applied with what the kernel holds. */
export function compareIpPolicy(applied: IpPolicyDigest, kernel: IpPolicyDigest): IpPolicyDrift {
  if (applied.digest === kernel.digest) return { drifted: false };
  const parts: string[] = [];
  for (const family of [4, 6] as const) {
    const a = family === 4 ? applied.v4 : applied.v6;
    const k = family === 4 ? kernel.v4 : kernel.v6;
    const same = family === 4 ? applied.v4Digest === kernel.v4Digest : applied.v6Digest === kernel.v6Digest;
    if (a !== k) parts.push(`kernel holds ${n(k)} v${family} ranges, applied ${n(a)}`);
    else if (!same) parts.push(`kernel's ${n(k)} v${family} ranges differ from the ${n(a)} applied`);
  }
  return { drifted: true, detail: parts.join('; ') || 'kernel IP policy differs from the applied one' };
}
