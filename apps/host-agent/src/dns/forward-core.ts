// The UDP forwarding core (apps/host-agent/native/dns-forward-core.c, built
// into dist/native/dns-forward-core.so by scripts/build.mjs), loaded through
// koffi. It owns the proxy's UDP listening sockets and runs their loop on a
// thread of its own with recvmmsg/sendmmsg. It forwards by itself only
// queries for names this proxy allowed before (its allowed-name cache) and
// their answers when no record could lead elsewhere; it hands the proxy
// everything else, and a notice of each query it forwarded, through a queue
// it signals on a pipe (watched with koffi.node.poll). The proxy decides with
// its own code (dns-proxy.ts) and answers through reply().
import { describeErrno } from '@cgfence/bpf';
import { formatAddress } from '@cgfence/proto';
import koffi from 'koffi';
import { existsSync } from 'node:fs';
import { constants } from 'node:os';
import { join } from 'node:path';
import type { DnsClient } from './dns-events';
import { LATENCY_BOUNDS_MS } from './latency-histogram';

/** Caps of the core (dns-forward-core.c), documented in docs/operations.md ("The UDP forwarding core"). */
export const FORWARD_CORE_CAPS = {
  /** Datagrams per recvmmsg/sendmmsg call. */
  batch: 64,
  /** Allowed names cached, and the bytes of their names (full: no more cached until the next policy). */
  cacheSlots: 1 << 17,
  nameArenaBytes: 8 << 20,
  /** Items waiting for the proxy (queries to decide, answers to check); beyond: SERVFAIL at once. */
  queueSlots: 1024,
  /** Of those, answers over 4 KiB. */
  bigSlots: 16,
  /** Notices of forwarded queries waiting for the proxy; beyond: the query goes the proxy's way. */
  noticeSlots: 8192,
  /** Listen addresses. */
  maxListen: 4,
} as const;

const AF_INET = 2;
const KIND_QUERY = 1;
const KIND_ANSWER = 2;
const KIND_NOTICE = 3;
const TAKE_HEADER = 56;
/** How often the proxy takes notices the core did not wake it for (it wakes it when its ring is half full). */
const NOTICE_POLL_MS = 10;
/** What one dfc_take copies out at most: 256 queue items of up to 4 KiB, so always at least one item of any size (an answer of up to 64 KiB). */
const TAKE_BYTES = 256 * (TAKE_HEADER + 4096 + 320);
/** dfc_stats's counters, in order (dns-forward-core.c ST_*), then the latency buckets. */
const CORE_STATS = [
  'received',
  'fastForwarded',
  'handedQueries',
  'fastAnswers',
  'handedAnswers',
  'queueFull',
  'clientShed',
  'inFlightFull',
  'timeouts',
  'stray',
  'tooLarge',
  'noticesFull',
  'cacheFull',
  'answersUnchecked',
  'queueFullDropped',
  'inFlight',
  'latencySumUs',
] as const;

export type ForwardCoreStats = Record<(typeof CORE_STATS)[number], number> & { latencyBuckets: number[] };

interface CoreLib {
  dfc_open(listen: string, port: number, upIp: string, upPort: number, timeoutMs: number, maxInFlight: number, maxPerClient: number, bounds: Float64Array, nbounds: number): unknown;
  dfc_port(c: unknown): number;
  dfc_notify_fd(c: unknown): number;
  dfc_allow(c: unknown, m: Buffer, len: number): number;
  dfc_clear(c: unknown): void;
  dfc_take(c: unknown, out: Buffer, cap: number): number;
  dfc_reply(c: unknown, sock: number, addr: Buffer, alen: number, m: Buffer, len: number): number;
  dfc_stats(c: unknown, out: BigUint64Array): void;
  dfc_close(c: unknown): void;
}

let lib: CoreLib | undefined;

/** The built shared object (dist/native next to dist/src). */
export function coreLibraryPath(): string {
  return join(__dirname, '..', '..', 'native', 'dns-forward-core.so');
}

function load(): CoreLib {
  if (lib) return lib;
  const path = coreLibraryPath();
  if (!existsSync(path)) throw new Error(`${path} is missing: run node scripts/build.mjs (it compiles apps/host-agent/native/*.c with clang)`);
  const so = koffi.load(path);
  lib = {
    dfc_open: so.func('void *dfc_open(const char *, int, const char *, int, int, int, int, const double *, int)'),
    dfc_port: so.func('int dfc_port(void *)'),
    dfc_notify_fd: so.func('int dfc_notify_fd(void *)'),
    dfc_allow: so.func('int dfc_allow(void *, const uint8_t *, int)'),
    dfc_clear: so.func('void dfc_clear(void *)'),
    dfc_take: so.func('int dfc_take(void *, uint8_t *, int)'),
    dfc_reply: so.func('int dfc_reply(void *, int, const uint8_t *, int, const uint8_t *, int)'),
    dfc_stats: so.func('void dfc_stats(void *, uint64_t *)'),
    dfc_close: so.func('void dfc_close(void *)'),
  } as CoreLib;
  return lib;
}

/** Where a datagram came from: the client, and which listening socket (its address) took it. */
export interface CoreClient extends DnsClient {
  readonly sock: number;
  /** The sockaddr as the core keeps it, for reply(). */
  readonly raw: Buffer;
}

/** What the core hands the proxy. `ageMs`: time since the core received the query. */
export interface CoreHandler {
  /** A query to decide (a name not cached as allowed, or anything the core does not forward by itself). */
  query(msg: Buffer, client: CoreClient, ageMs: number): void;
  /** The answer to a query the core forwarded, to be checked (a record not owned by the question, or a CNAME/DNAME). `query`: the query as the client sent it (header, question, OPT when it fit 320 bytes). */
  answer(answer: Buffer, query: Buffer, client: CoreClient, ageMs: number): void;
  /** A query the core forwarded by itself (its header and question, with the client's id). */
  notice(query: Buffer, client: CoreClient): void;
}

export interface ForwardCoreOptions {
  readonly listenAddresses: readonly string[];
  /** 0: the first address picks a free port, the others take the same. */
  readonly port: number;
  readonly upstreamHost: string;
  readonly upstreamPort: number;
  readonly timeoutMs: number;
  readonly maxInFlight: number;
  readonly maxInFlightPerClient: number;
}

export class ForwardCoreError extends Error {
  constructor(
    message: string,
    readonly code: string,
  ) {
    super(message);
  }
}

/** The C core with its pipe watched; close() stops its thread and closes its sockets. */
export class ForwardCore {
  private readonly take = Buffer.alloc(TAKE_BYTES);
  private readonly poll: { close(): void };
  private readonly noticeTimer: NodeJS.Timeout;
  private closed = false;
  /** The last client seen, reused while the next item comes from the same address (a resolver's one socket). */
  private lastClient: CoreClient | undefined;

  private constructor(
    private readonly lib: CoreLib,
    private readonly core: unknown,
    private readonly handler: CoreHandler,
  ) {
    this.poll = koffi.node.poll(lib.dfc_notify_fd(core), { readable: true }, () => this.drain());
    this.noticeTimer = setInterval(() => this.drain(), NOTICE_POLL_MS).unref();
  }

  /** Opens the sockets and starts the thread; throws a ForwardCoreError whose code is the errno name (EADDRINUSE, EADDRNOTAVAIL, EINVAL...). */
  static open(opts: ForwardCoreOptions, handler: CoreHandler): ForwardCore {
    const l = load();
    if (opts.listenAddresses.length === 0 || opts.listenAddresses.length > FORWARD_CORE_CAPS.maxListen) {
      throw new ForwardCoreError(`dns forwarding core: 1 to ${FORWARD_CORE_CAPS.maxListen} listen addresses, got ${opts.listenAddresses.length}`, 'EINVAL');
    }
    const bounds = Float64Array.from(LATENCY_BOUNDS_MS);
    const core = l.dfc_open(
      opts.listenAddresses.join(','),
      opts.port,
      opts.upstreamHost,
      opts.upstreamPort,
      opts.timeoutMs,
      Math.min(65535, opts.maxInFlight),
      opts.maxInFlightPerClient,
      bounds,
      bounds.length,
    );
    if (core === null) {
      const errno = koffi.errno();
      const code = Object.entries(constants.errno).find(([, v]) => v === errno)?.[0] ?? `errno ${errno}`;
      throw new ForwardCoreError(`dns forwarding core cannot listen on udp ${opts.listenAddresses.join(', ')} port ${opts.port}: ${describeErrno(errno)}`, code);
    }
    return new ForwardCore(l, core, handler);
  }

  get port(): number {
    return this.lib.dfc_port(this.core);
  }

  /** Caches the question name of `query` as allowed; false when the cache is full (counted) or the name does not qualify. */
  allow(query: Buffer): boolean {
    return !this.closed && this.lib.dfc_allow(this.core, query, query.length) === 0;
  }

  /** Forgets every cached name (a new policy). */
  clear(): void {
    if (!this.closed) this.lib.dfc_clear(this.core);
  }

  /** Sends `msg` to the client from the socket its query came in on. */
  reply(client: CoreClient, msg: Buffer): boolean {
    return !this.closed && this.lib.dfc_reply(this.core, client.sock, client.raw, client.raw.length, msg, msg.length) === 0;
  }

  stats(): ForwardCoreStats {
    const raw = new BigUint64Array(CORE_STATS.length + LATENCY_BOUNDS_MS.length + 1);
    if (!this.closed) this.lib.dfc_stats(this.core, raw);
    const out = Object.fromEntries(CORE_STATS.map((k, i) => [k, Number(raw[i])])) as Record<(typeof CORE_STATS)[number], number>;
    return { ...out, latencyBuckets: Array.from(raw.subarray(CORE_STATS.length), Number) };
  }

  /** Takes everything the core handed over now; a handler that throws loses that item only. */
  drain(): void {
    const { lib, core, take } = this;
    for (;;) {
      if (this.closed) return;
      const buf = take;
      const n = lib.dfc_take(core, take, take.length);
      if (n <= 0) return;
      let pos = 0;
      while (pos < n) {
        const start = pos;
        const kind = buf.readUInt32LE(pos);
        const sock = buf.readUInt32LE(pos + 4);
        const alen = buf.readUInt32LE(pos + 8);
        const len = buf.readUInt32LE(pos + 40);
        const qlen = buf.readUInt32LE(pos + 44);
        const ageMs = buf.readUInt32LE(pos + 48) / 1000;
        const dataAt = pos + TAKE_HEADER;
        const queryAt = dataAt + ((len + 3) & ~3);
        pos = queryAt + ((qlen + 3) & ~3);
        const client = this.clientAt(buf, sock, start + 12, alen);
        try {
          // Queries and answers are copied (the take buffer is reused by the next call, and a forwarded
          // query outlives it); a notice is read in the handler's call and not kept, so it is a view.
          if (kind === KIND_NOTICE) this.handler.notice(buf.subarray(dataAt, dataAt + len), client);
          else if (kind === KIND_QUERY) this.handler.query(Buffer.from(buf.subarray(dataAt, dataAt + len)), client, ageMs);
          else if (kind === KIND_ANSWER) this.handler.answer(Buffer.from(buf.subarray(dataAt, dataAt + len)), Buffer.from(buf.subarray(queryAt, queryAt + qlen)), client, ageMs);
        } catch {
          // The handler's own errors are its to count; the next item must still be handled.
        }
      }
    }
  }

  /** The client of the item at `at` (its sockaddr, alen bytes). */
  private clientAt(buf: Buffer, sock: number, at: number, alen: number): CoreClient {
    const last = this.lastClient;
    if (last !== undefined && last.sock === sock && last.raw.length === alen && buf.compare(last.raw, 0, alen, at, at + alen) === 0) return last;
    this.lastClient = decodeClient(sock, Buffer.from(buf.subarray(at, at + alen)));
    return this.lastClient;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.noticeTimer);
    this.poll.close();
    this.lib.dfc_close(this.core);
  }
}

/** A sockaddr_in or sockaddr_in6 (as the core copies it) as a client; the address as node's rinfo gives it (RFC 5952). */
export function decodeClient(sock: number, raw: Buffer): CoreClient {
  const port = raw.readUInt16BE(2);
  if (raw.readUInt16LE(0) === AF_INET) return { sock, raw: raw.subarray(0, 16), address: formatAddress(4, raw.subarray(4, 8)), port };
  return { sock, raw, address: formatAddress(6, raw.subarray(8, 24)), port };
}
