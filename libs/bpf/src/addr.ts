// Address and CIDR parsing for the kernel maps. Pure functions: no I/O.
import { isIPv4, isIPv6 } from 'node:net';

export type Family = 4 | 6;

export interface Cidr {
  family: Family;
  /** Network-order bytes, host bits cleared: 4 bytes for v4, 16 for v6. */
  bytes: Uint8Array;
  prefixLength: number;
}

/** Thrown for an address or CIDR the loader cannot put in a map. */
export class AddressError extends Error {
  constructor(readonly input: string, reason: string) {
    super(`invalid address "${input}": ${reason}`);
    this.name = 'AddressError';
  }
}

/** Parses a dotted-quad IPv4 address into 4 network-order bytes. */
export function parseIPv4(text: string): Uint8Array {
  if (!isIPv4(text)) throw new AddressError(text, 'not an IPv4 address');
  return Uint8Array.from(text.split('.').map((p) => Number(p)));
}

/** Parses an IPv6 address (with :: and an optional dotted IPv4 tail) into 16 bytes. */
export function parseIPv6(text: string): Uint8Array {
  if (text.includes('%')) throw new AddressError(text, 'zone ids are not allowed');
  if (!isIPv6(text)) throw new AddressError(text, 'not an IPv6 address');
  let head = text;
  const tail: number[] = [];
  const lastColon = text.lastIndexOf(':');
  if (text.slice(lastColon + 1).includes('.')) {
    const v4 = parseIPv4(text.slice(lastColon + 1));
    tail.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
    head = text.slice(0, lastColon + 1);
    if (head.endsWith(':') && !head.endsWith('::')) head = head.slice(0, -1);
  }
  const groups = (s: string): number[] => (s === '' ? [] : s.split(':').map((g) => parseInt(g, 16)));
  let words: number[];
  const gap = head.indexOf('::');
  if (gap >= 0) {
    const left = groups(head.slice(0, gap));
    const right = [...groups(head.slice(gap + 2)), ...tail];
    words = [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right];
  } else {
    words = [...groups(head), ...tail];
  }
  const out = new Uint8Array(16);
  words.forEach((w, i) => {
    out[i * 2] = w >> 8;
    out[i * 2 + 1] = w & 0xff;
  });
  return out;
}

/** Parses any single address. */
export function parseIp(text: string): { family: Family; bytes: Uint8Array } {
  if (isIPv4(text)) return { family: 4, bytes: parseIPv4(text) };
  if (isIPv6(text)) return { family: 6, bytes: parseIPv6(text) };
  throw new AddressError(text, 'not an IPv4 or IPv6 address');
}

/**
 * Parses 'a.b.c.d/n' or 'x::y/n' (a bare address means a single host).
 * Host bits beyond the prefix are cleared.
 */
export function parseCidr(text: string): Cidr {
  const slash = text.indexOf('/');
  const addr = slash >= 0 ? text.slice(0, slash) : text;
  const { family, bytes } = parseIp(addr);
  const max = family === 4 ? 32 : 128;
  let prefixLength = max;
  if (slash >= 0) {
    const p = text.slice(slash + 1);
    if (!/^\d{1,3}$/.test(p) || Number(p) > max) throw new AddressError(text, `prefix length must be 0..${max}`);
    prefixLength = Number(p);
  }
  for (let bit = prefixLength; bit < max; bit++) bytes[bit >> 3]! &= ~(0x80 >> (bit & 7));
  return { family, bytes, prefixLength };
}

/** 16-byte form used as the learned-address key: IPv4 becomes ::ffff:a.b.c.d. */
export function toMapped16(family: Family, bytes: Uint8Array): Uint8Array {
  if (family === 6) return Uint8Array.from(bytes);
  const out = new Uint8Array(16);
  out[10] = 0xff;
  out[11] = 0xff;
  out.set(bytes.subarray(0, 4), 12);
  return out;
}

/** Formats network-order bytes as text; IPv6 in the RFC 5952 short form. */
export function formatIp(family: Family, bytes: Uint8Array): string {
  if (family === 4) return Array.from(bytes.subarray(0, 4)).join('.');
  const words: number[] = [];
  for (let i = 0; i < 16; i += 2) words.push((bytes[i]! << 8) | bytes[i + 1]!);
  if (words.slice(0, 5).every((w) => w === 0) && words[5] === 0xffff) {
    return `::ffff:${Array.from(bytes.subarray(12, 16)).join('.')}`;
  }
  // Longest run (length >= 2) of zero words becomes '::'; first one wins a tie.
  let bestAt = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (words[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLen) {
      bestAt = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (ws: number[]): string => ws.map((w) => w.toString(16)).join(':');
  if (bestAt < 0) return hex(words);
  return `${hex(words.slice(0, bestAt))}::${hex(words.slice(bestAt + bestLen))}`;
}
