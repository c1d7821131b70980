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
  const r = parseEntryCidr(text);
  if (!r.ok) throw new AddressError(text, r.reason);
  return { family: r.family, bytes: Uint8Array.from(r.address), prefixLength: r.prefix };
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
