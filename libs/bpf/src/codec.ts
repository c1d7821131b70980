// Encoding and decoding of the structs in c/cgfence.h (offsets from layout.ts).
// Pure functions over Buffers: no kernel, no FFI. Host byte order is little
// endian (x86-64, arm64); ports and DNS ids in these structs are host order.
import { AddressError, Cidr, Family, formatIp, parseCidr, parseDottedCidrCode, parseIp, toMapped16 } from './addr';
import type { ClientRateLimits } from './client-rate';
import { ADDR_KEY, CONFIG, CONSTANTS, COUNTERS, DNS_COUNTERS, DNS_KEY, RATE_COUNTERS, EVENT, LPM4_KEY, LPM6_KEY, PROC } from './layout';

export type Mode = 'enforce' | 'audit';
export type FailMode = 'open' | 'closed';

export interface DataPlaneConfig {
  /** UDP and TCP port of the DNS proxy on 127.0.0.1 and ::1. */
  proxyPort: number;
  mode: Mode;
  failMode: FailMode;
  /** Heartbeat age after which the proxy counts as dead; 0 = never. */
  heartbeatTimeoutMs: number;
  /**
   * The kernel also checks, on every port-53 connect/sendmsg, that a UDP
   * socket is bound to 127.0.0.1:proxyPort (the proxy's): it vanishes only
   * when the process holding it dies, so a busy proxy never looks dead and a
   * dead one is noticed at once. Default true.
   */
  proxySocketCheck?: boolean;
  /**
   * Ports other than 53 a resolver answers on, refused (EPERM) to the deploy
   * cgroup on connect/sendmsg and counted per port. Default [853] (DoT, DoQ);
   * at most CGF_DNS_PORTS_MAX (16); [] refuses none.
   */
  refusedDnsPorts?: readonly number[];
  /**
   * Per-client limit of UDP queries to the proxy (client-rate.ts): per
   * process and per run, a window of unanswered queries and a rate. Default
   * DEFAULT_CLIENT_RATE_LIMITS; NO_CLIENT_RATE_LIMITS turns it off.
   */
  clientRate?: ClientRateLimits;
}

export interface ProcessInfo {
  /** Kernel pid, i.e. the thread id. */
  pid: number;
  /** Process id (what ps shows); use this for /proc/<tgid>. */
  tgid: number;
  uid: number;
  comm: string;
  cgroupId: bigint;
}

export interface KernelEvent extends ProcessInfo {
  /** name_drop: a port-53 UDP query that did not go to the proxy, for a listed name (or unreadable), dropped on egress. */
  /**
   * unix_refused / unix_audit: a connect or datagram send to a refused unix
   * socket of a resolving daemon (c/unix-guard.bpf.c); family 4 and protocol
   * 'other' carry nothing, dport is 0, daddr the socket path (DataPlane fills
   * it from unixPathId).
   */
  kind: 'ip_block' | 'ip_audit' | 'proxy_down' | 'name_drop' | 'unix_refused' | 'unix_audit';
  family: 4 | 6;
  /** unix_* events: the guard's id of the socket path (see UnixGuard.pathOfId). */
  unixPathId?: number;
  protocol: 'tcp' | 'udp' | 'other';
  daddr: string;
  dport: number;
  /** CLOCK_MONOTONIC ns (bpf_ktime_get_ns) when the kernel saw it. */
  timeNs: bigint;
}

export interface DataPlaneCounters {
  [name: string]: bigint;
}

/** Throws unless `c` is a usable configuration; names the bad field. */
export function validateConfig(c: DataPlaneConfig): void {
  if (!Number.isInteger(c.proxyPort) || c.proxyPort < 1 || c.proxyPort > 65535) {
    throw new RangeError(`config.proxyPort must be an integer 1..65535, got ${c.proxyPort}`);
  }
  if (c.proxyPort === CONSTANTS.CGF_DNS_PORT) {
    throw new RangeError('config.proxyPort must not be 53: port 53 is what gets redirected');
  }
  if (c.mode !== 'enforce' && c.mode !== 'audit') throw new RangeError(`config.mode must be enforce|audit, got ${String(c.mode)}`);
  if (c.failMode !== 'open' && c.failMode !== 'closed') {
    throw new RangeError(`config.failMode must be open|closed, got ${String(c.failMode)}`);
  }
  if (!Number.isInteger(c.heartbeatTimeoutMs) || c.heartbeatTimeoutMs < 0) {
    throw new RangeError(`config.heartbeatTimeoutMs must be an integer >= 0, got ${c.heartbeatTimeoutMs}`);
  }
  if (c.proxySocketCheck !== undefined && typeof c.proxySocketCheck !== 'boolean') {
    throw new RangeError(`config.proxySocketCheck must be a boolean, got ${String(c.proxySocketCheck)}`);
  }
}

export function encodeConfig(c: DataPlaneConfig, heartbeatNs: bigint): Buffer {
  const b = Buffer.alloc(CONFIG.size);
  const fl = CONFIG.fields;
  b.writeUInt16LE(c.proxyPort, fl.proxy_port.offset);
  b.writeUInt8(c.mode === 'audit' ? CONSTANTS.CGF_MODE_AUDIT : CONSTANTS.CGF_MODE_ENFORCE, fl.mode.offset);
  b.writeUInt8(c.failMode === 'closed' ? CONSTANTS.CGF_FAIL_CLOSED : CONSTANTS.CGF_FAIL_OPEN, fl.fail_mode.offset);
  b.writeUInt8(c.proxySocketCheck === false ? 0 : CONSTANTS.CGF_LIVE_SOCKET, fl.liveness.offset);
  b.writeBigUInt64LE(heartbeatNs, fl.heartbeat_ns.offset);
  b.writeBigUInt64LE(BigInt(c.heartbeatTimeoutMs) * 1_000_000n, fl.heartbeat_timeout_ns.offset);
  return b;
}

export function decodeConfig(b: Buffer): DataPlaneConfig & { heartbeatNs: bigint } {
  const fl = CONFIG.fields;
  return {
    proxyPort: b.readUInt16LE(fl.proxy_port.offset),
    mode: b.readUInt8(fl.mode.offset) === CONSTANTS.CGF_MODE_AUDIT ? 'audit' : 'enforce',
    failMode: b.readUInt8(fl.fail_mode.offset) === CONSTANTS.CGF_FAIL_CLOSED ? 'closed' : 'open',
    heartbeatTimeoutMs: Number(b.readBigUInt64LE(fl.heartbeat_timeout_ns.offset) / 1_000_000n),
    proxySocketCheck: (b.readUInt8(fl.liveness.offset) & CONSTANTS.CGF_LIVE_SOCKET) !== 0,
    heartbeatNs: b.readBigUInt64LE(fl.heartbeat_ns.offset),
  };
}

function cString(b: Buffer, offset: number, size: number): string {
  const raw = b.subarray(offset, offset + size);
  const nul = raw.indexOf(0);
  return raw.subarray(0, nul < 0 ? size : nul).toString('utf8');
}

export function decodeProc(b: Buffer, base = 0): ProcessInfo {
  const fl = PROC.fields;
  return {
    pid: b.readUInt32LE(base + fl.pid.offset),
    tgid: b.readUInt32LE(base + fl.tgid.offset),
    uid: b.readUInt32LE(base + fl.uid.offset),
    comm: cString(b, base + fl.comm.offset, fl.comm.size),
    cgroupId: b.readBigUInt64LE(base + fl.cgroup_id.offset),
  };
}

const EVENT_KINDS: Record<number, KernelEvent['kind']> = {
  [CONSTANTS.CGF_EV_IP_BLOCK]: 'ip_block',
  [CONSTANTS.CGF_EV_IP_AUDIT]: 'ip_audit',
  [CONSTANTS.CGF_EV_PROXY_DOWN]: 'proxy_down',
  [CONSTANTS.CGF_EV_NAME_DROP]: 'name_drop',
};

const IPPROTO_TCP = 6;
const IPPROTO_UDP = 17;

/** Kind and family bytes of the unix guard's events (c/unix-guard.h, checked by unix-guard.int.spec.ts). */
const UNIX_EVENT_KINDS: Record<number, KernelEvent['kind']> = { 16: 'unix_refused', 17: 'unix_audit' };
const UNIX_EVENT_FAMILY = 1;

/** Decodes one ring buffer record; undefined for a record this loader does not know. */
export function decodeEvent(b: Buffer): KernelEvent | undefined {
  if (b.length < EVENT.size) return undefined;
  const fl = EVENT.fields;
  const unixKind = UNIX_EVENT_KINDS[b.readUInt8(fl.kind.offset)];
  if (unixKind && b.readUInt8(fl.family.offset) === UNIX_EVENT_FAMILY) {
    return {
      ...decodeProc(b, fl.proc.offset),
      kind: unixKind,
      family: 4,
      protocol: 'other',
      daddr: '',
      dport: 0,
      unixPathId: b.readUInt32LE(fl.daddr.offset),
      timeNs: b.readBigUInt64LE(fl.time_ns.offset),
    };
  }
  const kind = EVENT_KINDS[b.readUInt8(fl.kind.offset)];
  const famRaw = b.readUInt8(fl.family.offset);
  if (!kind || (famRaw !== CONSTANTS.CGF_FAMILY_V4 && famRaw !== CONSTANTS.CGF_FAMILY_V6)) return undefined;
  const family: Family = famRaw === CONSTANTS.CGF_FAMILY_V4 ? 4 : 6;
  const proto = b.readUInt8(fl.protocol.offset);
  return {
    ...decodeProc(b, fl.proc.offset),
    kind,
    family,
    protocol: proto === IPPROTO_TCP ? 'tcp' : proto === IPPROTO_UDP ? 'udp' : 'other',
    daddr: formatIp(family, b.subarray(fl.daddr.offset, fl.daddr.offset + fl.daddr.size)),
    dport: b.readUInt16LE(fl.dport.offset),
    timeNs: b.readBigUInt64LE(fl.time_ns.offset),
  };
}

export function encodeDnsKey(clientPort: number, dnsId: number, out?: Buffer): Buffer {
  if (!Number.isInteger(clientPort) || clientPort < 0 || clientPort > 0xffff) throw new RangeError(`clientPort out of range: ${clientPort}`);
  if (!Number.isInteger(dnsId) || dnsId < 0 || dnsId > 0xffff) throw new RangeError(`dnsId out of range: ${dnsId}`);
  const b = out ?? Buffer.alloc(DNS_KEY.size);
  b.writeUInt16LE(clientPort, DNS_KEY.fields.client_port.offset);
  b.writeUInt16LE(dnsId, DNS_KEY.fields.dns_id.offset);
  return b;
}

/** Writes the LPM trie key for `cidr` into `out` (sized LPM4_KEY/LPM6_KEY). */
export function encodeLpmKey(cidr: Cidr, out: Buffer): Buffer {
  const layout = cidr.family === 4 ? LPM4_KEY : LPM6_KEY;
  out.fill(0, 0, layout.size);
  out.writeUInt32LE(cidr.prefixLength, layout.fields.prefixlen.offset);
  out.set(cidr.bytes, layout.fields.addr.offset);
  return out;
}

/**
 * A policy's CIDR list for one family as LPM keys back to back, the form
 * bpf_map_update_batch() takes, with duplicates (after host bits are cleared)
 * dropped. Throws an AddressError naming the first bad entry. Plain dotted
 * IPv4 takes a path that allocates nothing per entry: policies carry 100,000
 * of them and this runs while a new policy goes into force.
 */
export function encodePolicyKeys(family: Family, list: readonly string[]): { keys: Buffer; count: number } {
  return (family === 4 && encodeDottedV4Keys(list)) || encodeKeys(family, list);
}

/**
 * The fast path for a list that is all plain dotted IPv4 without duplicates
 * (what a canonical policy holds): one pass parses into numbers, a sorted
 * copy proves there are no duplicates, one pass writes the keys in list
 * order. Undefined when the list is anything else: encodeKeys() then does the
 * general work (and words the errors).
 */
function encodeDottedV4Keys(list: readonly string[]): { keys: Buffer; count: number } | undefined {
  const n = list.length;
  const codes = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const code = parseDottedCidrCode(list[i]!);
    if (code < 0) return undefined;
    codes[i] = code;
  }
  const sorted = codes.slice().sort();
  for (let i = 1; i < n; i++) if (sorted[i] === sorted[i - 1]) return undefined;
  const size = LPM4_KEY.size;
  const out = Buffer.alloc(size * n);
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  const prefixAt = LPM4_KEY.fields.prefixlen.offset;
  const addrAt = LPM4_KEY.fields.addr.offset;
  for (let i = 0; i < n; i++) {
    const code = codes[i]!;
    const prefix = code % 64;
    view.setUint32(i * size + prefixAt, prefix, true);
    view.setUint32(i * size + addrAt, (code - prefix) / 64, false);
  }
  return { keys: out, count: n };
}

function encodeKeys(family: Family, list: readonly string[]): { keys: Buffer; count: number } {
  const layout = family === 4 ? LPM4_KEY : LPM6_KEY;
  const out = Buffer.alloc(layout.size * list.length);
  const seenV4 = new Set<number>();
  const seen = new Set<string>();
  let count = 0;
  for (const raw of list) {
    const at = count * layout.size;
    const code = family === 4 ? parseDottedCidrCode(raw) : -1;
    if (code >= 0) {
      if (seenV4.has(code)) continue;
      seenV4.add(code);
      out.writeUInt32LE(code % 64, at + layout.fields.prefixlen.offset);
      out.writeUInt32BE(Math.floor(code / 64), at + layout.fields.addr.offset);
    } else {
      const cidr = parseCidr(raw.trim());
      if (cidr.family !== family) throw new AddressError(raw, `listed under v${family} but is an IPv${cidr.family} CIDR`);
      if (family === 4) {
        const v4code = new DataView(cidr.bytes.buffer, cidr.bytes.byteOffset).getUint32(0) * 64 + cidr.prefixLength;
        if (seenV4.has(v4code)) continue;
        seenV4.add(v4code);
      } else {
        const key = `${cidr.bytes.join('.')}/${cidr.prefixLength}`;
        if (seen.has(key)) continue;
        seen.add(key);
      }
      encodeLpmKey(cidr, out.subarray(at, at + layout.size));
    }
    count++;
  }
  return { keys: out.subarray(0, count * layout.size), count };
}

export function encodeAddrKey(family: Family, bytes: Uint8Array): Buffer {
  const b = Buffer.alloc(ADDR_KEY.size);
  b.set(toMapped16(family, bytes), ADDR_KEY.fields.addr.offset);
  return b;
}

/** Parses learned addresses (single IPs, either family). */
export function parseAddresses(list: readonly string[]): { family: Family; bytes: Uint8Array }[] {
  return list.map((a) => parseIp(a.trim()));
}

/** Sums one per-CPU __u64 value buffer. */
export function sumPerCpu(b: Buffer, cpus: number): bigint {
  let total = 0n;
  for (let i = 0; i < cpus; i++) total += b.readBigUInt64LE(i * 8);
  return total;
}

/** Names of cgf_counters, then of cgf_dns_counters and cgf_rate_counters, as DataPlane.counters() reports them. */
export function counterNames(): string[] {
  return [...COUNTERS, ...DNS_COUNTERS, ...RATE_COUNTERS].map(([, name]) => name);
}
