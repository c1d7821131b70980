/**
 * IP address ranges in blocklist entries.
 *
 * Accepted: an IPv4 or IPv6 address, with or without a prefix length
 * ('10.0.0.0/8', '192.0.2.7', '2001:DB8::/32', '::1'). A bare address is a
 * single host: /32 or /128. Host bits under the prefix are cleared without
 * complaint ('10.1.2.3/8' is '10.0.0.0/8'): the entry blocks the same range
 * either way, and canonical text must name it one way only.
 *
 * Refused, with the reason: octets above 255, octets with a leading zero
 * ('010' is octal to inet_aton and decimal to most people), fewer or more than
 * four octets, anything that is not a decimal digit, prefixes outside 0-32 or
 * 0-128 or not a plain number, IPv6 zone indexes ('fe80::1%eth0': a zone is
 * local to one host, a blocklist is not).
 *
 * Canonical text: IPv4 dotted decimal; IPv6 as RFC 5952 section 4 (lower case,
 * no leading zeros, the longest run of two or more zero groups compressed to
 * '::', the first such run on a tie). IPv4-mapped IPv6 addresses (::ffff:0:0/96)
 * stay IPv6 entries and use the mixed notation RFC 5952 section 5 recommends:
 * '::ffff:192.0.2.1/128'. The kernel never sees a mapped address on an IPv4
 * socket hook, so turning them into IPv4 entries would change what they block.
 */

export interface ParsedCidr {
  family: 4 | 6;
  /** The network address in network byte order: 4 bytes for IPv4, 16 for IPv6 (an LPM trie key). */
  address: Uint8Array;
  /** Prefix length in bits. */
  prefix: number;
  /** Canonical text, always with the prefix: '10.0.0.0/8', '2001:db8::/32', '192.0.2.7/32'. */
  value: string;
  /** Fixed-width hex of the address then the prefix, so string order is numeric order. */
  sortKey: string;
}

export type CidrResult = ({ ok: true } & ParsedCidr) | { ok: false; reason: string };

type Step<T> = { ok: true; value: T } | { ok: false; reason: string };

const DECIMAL = /^[0-9]+$/;
const HEX_GROUP = /^[0-9a-f]{1,4}$/;
const HEX = /^[0-9a-f]+$/;

/** Quotes text for a reason, cutting very long input short. */
function q(text: string): string {
  return JSON.stringify(text.length > 48 ? `${text.slice(0, 45)}...` : text);
}

function hex(n: number, width: number): string {
  return n.toString(16).padStart(width, '0');
}

/** Parses 'a.b.c.d' into a 32-bit unsigned number. */
function parseIPv4(text: string): Step<number> {
  const fail = (why: string): Step<number> => ({ ok: false, reason: `invalid IPv4 address ${q(text)}: ${why}` });
  const parts = text.split('.');
  let n = 0;
  for (const part of parts) {
    if (part === '') return fail('empty octet');
    if (!DECIMAL.test(part)) return fail(`octet ${q(part)} is not a decimal number`);
    if (part.length > 1 && part[0] === '0') return fail(`octet ${q(part)} has a leading zero (octal or decimal?)`);
    if (part.length > 3 || Number(part) > 255) return fail(`octet ${q(part)} is out of range (0-255)`);
    n = n * 256 + Number(part);
  }
  if (parts.length !== 4) return fail(`needs 4 octets, has ${parts.length}`);
  return { ok: true, value: n };
}

/** Parses IPv6 text (with '::' and a trailing dotted quad allowed) into 8 groups of 16 bits. */
function parseIPv6(text: string): Step<number[]> {
  const fail = (why: string): Step<number[]> => ({ ok: false, reason: `invalid IPv6 address ${q(text)}: ${why}` });
  const zone = text.indexOf('%');
  if (zone >= 0) return fail(`zone index ${q(text.slice(zone))} is not allowed (it only means something on one host)`);
  if (text.includes(':::')) return fail('":::" is not valid');
  const gap = text.indexOf('::');
  if (gap >= 0 && text.indexOf('::', gap + 1) >= 0) return fail('"::" may appear only once');
  const head = gap >= 0 ? text.slice(0, gap) : text;
  const tail = gap >= 0 ? text.slice(gap + 2) : '';
  const headParts = head === '' ? [] : head.split(':');
  const tailParts = tail === '' ? [] : tail.split(':');
  const parts = [...headParts, ...tailParts];
  const groups: number[] = [];
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i];
    if (part === '') return fail('empty group (a single ":" at the start or end, or "::" written as ":")');
    if (part.includes('.')) {
      // Only the very last 32 bits may be written as an IPv4 address.
      const isLast = i === parts.length - 1 && (gap < 0 || tailParts.length > 0);
      if (!isLast) return fail('an embedded IPv4 address may only be the last part');
      const v4 = parseIPv4(part);
      if (!v4.ok) return fail(v4.reason);
      groups.push(Math.floor(v4.value / 0x10000), v4.value % 0x10000);
      continue;
    }
    if (!HEX_GROUP.test(part)) {
      return fail(HEX.test(part) ? `group ${q(part)} has more than 4 hex digits` : `group ${q(part)} is not hexadecimal`);
    }
    groups.push(parseInt(part, 16));
  }
  if (gap >= 0) {
    // '::' stands for one or more zero groups.
    if (groups.length > 7) return fail(`too many groups (${groups.length} besides "::", at most 7)`);
    const zeros = new Array<number>(8 - groups.length).fill(0);
    const before = headParts.length;
    return { ok: true, value: [...groups.slice(0, before), ...zeros, ...groups.slice(before)] };
  }
  if (groups.length !== 8) return fail(`needs 8 groups without "::", has ${groups.length}`);
  return { ok: true, value: groups };
}

/** RFC 5952 text for 8 groups. */
function formatIPv6(g: readonly number[]): string {
  if (g[0] === 0 && g[1] === 0 && g[2] === 0 && g[3] === 0 && g[4] === 0 && g[5] === 0xffff) {
    return `::ffff:${g[6] >> 8}.${g[6] & 0xff}.${g[7] >> 8}.${g[7] & 0xff}`;
  }
  let bestStart = -1;
  let bestLen = 1; // a single zero group is never compressed
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const text = (from: number, to: number) => g.slice(from, to).map((x) => x.toString(16)).join(':');
  if (bestStart < 0) return text(0, 8);
  return `${text(0, bestStart)}::${text(bestStart + bestLen, 8)}`;
}

function parsePrefix(text: string | undefined, max: number, family: string): Step<number> {
  if (text === undefined) return { ok: true, value: max };
  const fail = (why: string): Step<number> => ({ ok: false, reason: why });
  if (text === '') return fail('missing prefix length after "/"');
  if (!DECIMAL.test(text)) return fail(`prefix ${q(`/${text}`)} is not a number`);
  if (text.length > 1 && text[0] === '0') return fail(`prefix ${q(`/${text}`)} has a leading zero`);
  if (text.length > 3 || Number(text) > max) return fail(`prefix /${text.slice(0, 6)} is out of range for ${family} (0-${max})`);
  return { ok: true, value: Number(text) };
}

/** True when text can only be meant as an IPv4 address (digits and dots, at least one digit). */
export function looksLikeIPv4(text: string): boolean {
  return /^[0-9.]+$/.test(text) && /[0-9]/.test(text);
}

/**
 * Parses an IPv4 or IPv6 address or range (see the module comment for what is
 * accepted) into its network address, prefix and canonical text.
 */
export function parseCidr(text: string): CidrResult {
  const slash = text.indexOf('/');
  const addressText = slash >= 0 ? text.slice(0, slash) : text;
  const prefixText = slash >= 0 ? text.slice(slash + 1) : undefined;
  if (addressText === '') return { ok: false, reason: 'missing address before "/"' };

  if (addressText.includes(':')) {
    const parsed = parseIPv6(addressText.toLowerCase());
    if (!parsed.ok) return parsed;
    const prefix = parsePrefix(prefixText, 128, 'IPv6');
    if (!prefix.ok) return prefix;
    const groups = parsed.value.map((group, i) => {
      const keep = Math.min(16, Math.max(0, prefix.value - i * 16));
      return keep === 0 ? 0 : group & ((0xffff << (16 - keep)) & 0xffff);
    });
    const address = new Uint8Array(16);
    groups.forEach((group, i) => {
      address[2 * i] = group >> 8;
      address[2 * i + 1] = group & 0xff;
    });
    return {
      ok: true,
      family: 6,
      address,
      prefix: prefix.value,
      value: `${formatIPv6(groups)}/${prefix.value}`,
      sortKey: groups.map((group) => hex(group, 4)).join('') + hex(prefix.value, 2),
    };
  }

  const parsed = parseIPv4(addressText);
  if (!parsed.ok) return parsed;
  const prefix = parsePrefix(prefixText, 32, 'IPv4');
  if (!prefix.ok) return prefix;
  const mask = prefix.value === 0 ? 0 : (0xffffffff << (32 - prefix.value)) >>> 0;
  const network = (parsed.value & mask) >>> 0;
  const address = Uint8Array.of(network >>> 24, (network >>> 16) & 0xff, (network >>> 8) & 0xff, network & 0xff);
  return {
    ok: true,
    family: 4,
    address,
    prefix: prefix.value,
    value: `${address.join('.')}/${prefix.value}`,
    sortKey: hex(network, 8) + hex(prefix.value, 2),
  };
}

/** Text of an address in network byte order (4 or 16 bytes); IPv6 in RFC 5952 form. */
export function formatAddress(family: 4 | 6, bytes: Uint8Array): string {
  if (family === 4) return Array.from(bytes.subarray(0, 4)).join('.');
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((bytes[i]! << 8) | bytes[i + 1]!);
  return formatIPv6(groups);
}
