// Addresses and CIDRs as the kernel maps take them. The grammar itself (what
// an address is, canonical text) lives once, in libs/proto's entry grammar;
// this file only adapts it to map keys. Pure functions: no I/O.
import { formatAddress, parseCidr as parseEntryCidr } from '@cgfence/proto';

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

/**
 * Parses 'a.b.c.d/n' or 'x::y/n' (a bare address means a single host).
 * Host bits beyond the prefix are cleared.
 */
export function parseCidr(text: string): Cidr {
  const fast = parseDottedCidr(text);
  if (fast) return fast;
  const r = parseEntryCidr(text);
  if (!r.ok) throw new AddressError(text, r.reason);
  return { family: r.family, bytes: Uint8Array.from(r.address), prefixLength: r.prefix };
}

/**
 * The common case of a policy list, 'a.b.c.d' or 'a.b.c.d/n' in plain decimal
 * without leading zeros, parsed without the general grammar (100,000 of them
 * per policy) and without allocating. Returns network * 64 + prefix length
 * (host bits cleared; below 2^38, so exact in a double), or -1 for anything
 * else, which then goes the general way (that also words the errors).
 */
export function parseDottedCidrCode(text: string): number {
  let value = 0;
  let octet = 0;
  let octets = 0;
  let digits = 0;
  let i = 0;
  for (; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 48 && c <= 57) {
      if (digits > 0 && octet === 0) return -1; // leading zero
      octet = octet * 10 + (c - 48);
      if (++digits > 3 || octet > 255) return -1;
    } else if (c === 46 /* . */ && digits > 0 && octets < 3) {
      value = value * 256 + octet;
      octets++;
      digits = 0;
      octet = 0;
    } else break;
  }
  if (digits === 0 || octets !== 3) return -1;
  value = value * 256 + octet;
  let prefix = 32;
  if (i < text.length) {
    if (text.charCodeAt(i) !== 47 /* / */ || i + 1 >= text.length || text.length - i > 3) return -1;
    prefix = 0;
    for (let j = i + 1; j < text.length; j++) {
      const c = text.charCodeAt(j);
      if (c < 48 || c > 57 || (j > i + 1 && prefix === 0)) return -1;
      prefix = prefix * 10 + (c - 48);
    }
    if (prefix > 32) return -1;
  }
  const mask = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
  return ((value & mask) >>> 0) * 64 + prefix;
}

function parseDottedCidr(text: string): Cidr | undefined {
  const code = parseDottedCidrCode(text);
  if (code < 0) return undefined;
  const network = Math.floor(code / 64);
  const bytes = new Uint8Array([network >>> 24, (network >>> 16) & 255, (network >>> 8) & 255, network & 255]);
  return { family: 4, bytes, prefixLength: code % 64 };
}

/** Parses any single address. */
export function parseIp(text: string): { family: Family; bytes: Uint8Array } {
  if (text.includes('/')) throw new AddressError(text, 'expected a single address, not a range');
  const { family, bytes } = parseCidr(text);
  return { family, bytes };
}

/** Parses an IPv6 address (with :: and an optional dotted IPv4 tail) into 16 bytes. */
export function parseIPv6(text: string): Uint8Array {
  const { family, bytes } = parseIp(text);
  if (family !== 6) throw new AddressError(text, 'not an IPv6 address');
  return bytes;
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
  return formatAddress(family, bytes);
}
