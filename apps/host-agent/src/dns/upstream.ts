import { randomFillSync } from 'node:crypto';
import dgram from 'node:dgram';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { HEADER_BYTES, TcpFrameReader, sameQuestion, tcpFrame } from './dns-wire';

export interface UpstreamAddress {
  readonly host: string;
  readonly port: number;
  readonly family: 4 | 6;
}

/** Parses 'HOST:PORT' ('127.0.0.1:53', '[::1]:5353'). The host must be an IP literal. */
export function parseUpstream(spec: string): UpstreamAddress {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(spec) ?? /^([^:]+):(\d+)$/.exec(spec);
  if (!m) throw new Error(`upstream ${JSON.stringify(spec)} is not HOST:PORT (IPv6 as [::1]:53)`);
  const host = m[1];
  const port = Number(m[2]);
  const family = net.isIP(host);
  if (family === 0) throw new Error(`upstream ${JSON.stringify(spec)}: host must be an IP address, not a name`);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`upstream ${JSON.stringify(spec)}: bad port`);
  return { host, port, family: family as 4 | 6 };
}

export type UpstreamErrorCode = 'UPSTREAM_TIMEOUT' | 'UPSTREAM_ERROR' | 'UPSTREAM_CLOSED';

export class UpstreamError extends Error {
  constructor(
    readonly code: UpstreamErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'UpstreamError';
  }
}

/**
 * Who waits for one upstream answer. `settle` is called exactly once: with the
 * answer (the client's id written back in place), or with the error. A
 * proxy's per-query record implements it, so waiting costs no closure.
 */
export interface UpstreamWaiter {
  settle(answer: Buffer | undefined, err: UpstreamError | undefined): void;
}

/** One query in flight on a pooled socket. */
interface PendingUdp {
  readonly member: PoolSocket;
  readonly wireId: number;
  readonly clientId: number;
  /** The query as sent (its id rewritten in place); its question is what an answer must repeat. */
  readonly query: Buffer;
  readonly questionEnd: number;
  readonly deadline: number;
  readonly timeoutMs: number;
  readonly waiter: UpstreamWaiter;
}

/** How often pending queries are checked for their deadline: an eighth of the shortest timeout asked, within these bounds. */
const SWEEP_MIN_MS = 5;
const SWEEP_MAX_MS = 100;

/** Settles a waiter with an error in a microtask (a waiter is never called back synchronously). */
function later(waiter: UpstreamWaiter, code: UpstreamErrorCode, message: string): void {
  queueMicrotask(() => waiter.settle(undefined, new UpstreamError(code, message)));
}

/** Random 16-bit ids drawn from a refilled block, cheaper than one crypto call per query. */
class RandomIds {
  private readonly block = new Uint16Array(4096);
  private next = this.block.length;

  take(): number {
    if (this.next === this.block.length) {
      randomFillSync(this.block);
      this.next = 0;
    }
    return this.block[this.next++];
  }
}

interface PoolSocket {
  readonly socket: dgram.Socket;
  readonly pending: Map<number, PendingUdp>;
}

/** Settles a promise: what `query()` (the promise form) waits with. */
class PromiseWaiter implements UpstreamWaiter {
  constructor(
    private readonly resolve: (answer: Buffer) => void,
    private readonly reject: (err: UpstreamError) => void,
  ) {}

  settle(answer: Buffer | undefined, err: UpstreamError | undefined): void {
    if (answer !== undefined) this.resolve(answer);
    else this.reject(err ?? new UpstreamError('UPSTREAM_ERROR', 'no answer'));
  }
}

export interface UdpPoolOptions {
  /** Upstream sockets. Each holds up to `maxPerSocket` queries in flight. */
  readonly sockets: number;
  /** In-flight queries per socket, at most 65536 (the id space); kept well below so random ids are found fast. */
  readonly maxPerSocket: number;
  readonly recvBufferSize: number;
  readonly onStray?: () => void;
}

/**
 * UDP to the upstream through a small fixed pool of connected sockets.
 *
 * One socket per query would cost a file descriptor, a bind and a kernel
 * socket per query and would run into fd limits at a few thousand in flight.
 * Instead each pooled socket carries many queries at once and the proxy
 * rewrites the transaction id of each one to a random id that is free on that
 * socket; the answer's id is mapped back before it goes to the client. Ids are
 * unique among the in-flight queries of one socket (two clients may well both
 * send id 1234), and an answer is accepted only if its question matches what
 * was asked. Each socket is `connect()`ed, so the kernel drops datagrams that
 * do not come from the upstream address, and its source port is random.
 */
export class UdpUpstreamPool {
  private readonly members: PoolSocket[] = [];
  private readonly ids = new RandomIds();
  /** One sweep timer while queries are pending, instead of one timer per query. */
  private sweep: NodeJS.Timeout | undefined;
  private sweepEveryMs = SWEEP_MAX_MS;
  private pendingCount = 0;
  private readonly onSweep = (): void => this.expire();
  private cursor = 0;
  private closed = false;

  constructor(
    private readonly upstream: UpstreamAddress,
    private readonly options: UdpPoolOptions,
  ) {}

  get capacity(): number {
    return this.options.sockets * this.options.maxPerSocket;
  }

  get inFlight(): number {
    let n = 0;
    for (const m of this.members) n += m.pending.size;
    return n;
  }

  async start(): Promise<void> {
    for (let i = 0; i < this.options.sockets; i++) {
      const socket = dgram.createSocket({ type: this.upstream.family === 6 ? 'udp6' : 'udp4', recvBufferSize: this.options.recvBufferSize });
      const member: PoolSocket = { socket, pending: new Map() };
      // Errors on a connected UDP socket are not tied to one query. "Port
      // unreachable" (ECONNREFUSED) means the upstream does not listen: fail
      // this socket's queries at once (SERVFAIL now, not at the timeout);
      // the others time out into SERVFAIL.
      socket.on('error', (err: NodeJS.ErrnoException) => {
        if (err.code === 'ECONNREFUSED') this.failAll(member, new UpstreamError('UPSTREAM_ERROR', 'upstream refused the query (port unreachable)'));
      });
      socket.on('message', (msg) => this.onAnswer(member, msg));
      await new Promise<void>((resolve, reject) => {
        socket.once('error', reject);
        socket.connect(this.upstream.port, this.upstream.host, () => {
          socket.off('error', reject);
          resolve();
        });
      });
      this.members.push(member);
    }
  }

  /**
   * Sends `query` (its first question ends at `questionEnd`) and resolves with
   * the upstream's answer carrying the client's original id. The query's id
   * is rewritten in place while it is in flight and restored when it settles.
   */
  query(query: Buffer, questionEnd: number, timeoutMs: number): Promise<Buffer> {
    return new Promise<Buffer>((resolve, reject) => this.send(query, questionEnd, timeoutMs, new PromiseWaiter(resolve, reject)));
  }

  /**
   * The callback form of `query`: `waiter.settle` is called once, with the
   * answer or the error (never synchronously). No copy of the query, no timer
   * and no promise per query: the id is rewritten in the caller's buffer
   * (restored when the query settles), and one timer serves every deadline.
   */
  send(query: Buffer, questionEnd: number, timeoutMs: number, waiter: UpstreamWaiter): void {
    if (this.closed) return later(waiter, 'UPSTREAM_CLOSED', 'upstream pool is closed');
    const member = this.pickMember();
    if (!member) return later(waiter, 'UPSTREAM_ERROR', 'all upstream sockets are full');
    let wireId: number;
    try {
      wireId = this.freeId(member);
    } catch (err) {
      return later(waiter, 'UPSTREAM_ERROR', (err as Error).message);
    }
    const clientId = query.readUInt16BE(0);
    const deadline = performance.now() + timeoutMs;
    const pending: PendingUdp = { member, wireId, clientId, query, questionEnd, deadline, timeoutMs, waiter };
    member.pending.set(wireId, pending);
    this.pendingCount++;
    const every = Math.min(SWEEP_MAX_MS, Math.max(SWEEP_MIN_MS, Math.floor(timeoutMs / 8)));
    if (this.sweep === undefined || every < this.sweepEveryMs) {
      if (this.sweep) clearInterval(this.sweep);
      this.sweepEveryMs = every;
      this.sweep = setInterval(this.onSweep, every);
    }
    query.writeUInt16BE(wireId, 0);
    try {
      // No send callback: a callback costs a nextTick per send even when the
      // kernel took the datagram at once. A send that fails later is reported
      // as the socket's 'error' (port unreachable fails the socket's queries
      // at once); others time out into SERVFAIL.
      member.socket.send(query);
    } catch (err) {
      // Thrown at once (socket closed): settle now, but never synchronously.
      member.pending.delete(wireId);
      this.pendingCount--;
      query.writeUInt16BE(clientId, 0);
      later(waiter, 'UPSTREAM_ERROR', `send to upstream failed: ${(err as Error).message}`);
    }
  }

  /** Fails every query past its deadline (at most one sweep period late); stops sweeping when none is pending. */
  private expire(): void {
    const now = performance.now();
    for (const m of this.members) {
      for (const p of m.pending.values()) {
        if (p.deadline <= now) this.settle(p, undefined, new UpstreamError('UPSTREAM_TIMEOUT', `no answer from upstream within ${p.timeoutMs} ms`));
      }
    }
    if (this.pendingCount === 0 && this.sweep) {
      clearInterval(this.sweep);
      this.sweep = undefined;
      this.sweepEveryMs = SWEEP_MAX_MS;
    }
  }

  private settle(p: PendingUdp, answer: Buffer | undefined, err: UpstreamError | undefined): void {
    if (p.member.pending.get(p.wireId) !== p) return;
    p.member.pending.delete(p.wireId);
    this.pendingCount--;
    p.query.writeUInt16BE(p.clientId, 0);
    p.waiter.settle(answer, err);
  }

  close(): void {
    this.closed = true;
    if (this.sweep) clearInterval(this.sweep);
    this.sweep = undefined;
    for (const m of this.members) {
      this.failAll(m, new UpstreamError('UPSTREAM_CLOSED', 'proxy is shutting down'));
      m.socket.close();
    }
    this.members.length = 0;
  }

  private failAll(member: PoolSocket, err: UpstreamError): void {
    for (const p of member.pending.values()) this.settle(p, undefined, err);
  }

  private pickMember(): PoolSocket | undefined {
    for (let i = 0; i < this.members.length; i++) {
      const m = this.members[(this.cursor + i) % this.members.length];
      if (m.pending.size < this.options.maxPerSocket) {
        this.cursor = (this.cursor + i + 1) % this.members.length;
        return m;
      }
    }
    return undefined;
  }

  private freeId(member: PoolSocket): number {
    for (let tries = 0; tries < 32; tries++) {
      const id = this.ids.take();
      if (!member.pending.has(id)) return id;
    }
    // The socket is nearly full of ids (cannot happen with maxPerSocket well
    // below 65536, but stay correct): scan from a random start.
    const start = this.ids.take();
    for (let i = 0; i < 65536; i++) {
      const id = (start + i) & 0xffff;
      if (!member.pending.has(id)) return id;
    }
    throw new Error('no free DNS id on upstream socket');
  }

  private onAnswer(member: PoolSocket, msg: Buffer): void {
    if (msg.length < HEADER_BYTES) return this.options.onStray?.();
    const id = msg.readUInt16BE(0);
    const p = member.pending.get(id);
    const qdcount = msg.readUInt16BE(4);
    // Some servers answer FORMERR without the question; accept those too.
    if (!p || (qdcount > 0 && !sameQuestion(msg, p.query, HEADER_BYTES, p.questionEnd))) return this.options.onStray?.();
    // The datagram is ours (node allocates one per message): the client's id goes back in place.
    msg.writeUInt16BE(p.clientId, 0);
    this.settle(p, msg, undefined);
  }
}

export interface TcpUpstreamOptions {
  /** Upstream TCP connections open at once; further queries wait for a slot (within their timeout). */
  readonly maxConnections: number;
}

/**
 * DNS over TCP to the upstream, one short connection per query.
 *
 * TCP is the rare path (clients retry over TCP after a truncated UDP answer,
 * or ask for large records), so the proxy keeps it simple and robust: no
 * pipelining assumptions about the upstream, no connection state shared
 * between clients. A semaphore bounds open connections; queries waiting for a
 * slot still answer SERVFAIL when their timeout passes.
 */
export class TcpUpstream {
  private active = 0;
  private readonly waiting: Array<() => void> = [];
  private readonly sockets = new Set<net.Socket>();
  private closed = false;

  constructor(
    private readonly upstream: UpstreamAddress,
    private readonly options: TcpUpstreamOptions,
  ) {}

  get inFlight(): number {
    return this.active + this.waiting.length;
  }

  query(query: Buffer, timeoutMs: number): Promise<Buffer> {
    if (this.closed) return Promise.reject(new UpstreamError('UPSTREAM_CLOSED', 'upstream is closed'));
    return new Promise<Buffer>((resolve, reject) => {
      let settled = false;
      let socket: net.Socket | undefined;
      let started = false;
      const finish = (err: UpstreamError | undefined, answer?: Buffer): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (socket) {
          this.sockets.delete(socket);
          socket.destroy();
        }
        if (started) this.release();
        else {
          const at = this.waiting.indexOf(start);
          if (at >= 0) this.waiting.splice(at, 1);
        }
        if (err) reject(err);
        else resolve(answer as Buffer);
      };
      const timer = setTimeout(
        () => finish(new UpstreamError('UPSTREAM_TIMEOUT', `no answer from upstream within ${timeoutMs} ms`)),
        timeoutMs,
      );
      const start = (): void => {
        if (settled) return this.release();
        started = true;
        if (this.closed) return finish(new UpstreamError('UPSTREAM_CLOSED', 'upstream is closed'));
        const expectedId = query.readUInt16BE(0);
        const reader = new TcpFrameReader();
        const s = net.connect({ host: this.upstream.host, port: this.upstream.port });
        socket = s;
        this.sockets.add(s);
        s.setNoDelay(true);
        s.on('connect', () => s.write(tcpFrame(query)));
        s.on('data', (chunk: Buffer) => {
          for (const frame of reader.push(chunk)) {
            if (frame.length >= HEADER_BYTES && frame.readUInt16BE(0) === expectedId) return finish(undefined, Buffer.from(frame));
          }
        });
        s.on('error', (err) => finish(new UpstreamError('UPSTREAM_ERROR', `upstream TCP: ${err.message}`)));
        s.on('close', () => finish(new UpstreamError('UPSTREAM_ERROR', 'upstream closed the TCP connection before answering')));
      };
      if (this.active < this.options.maxConnections) {
        this.active++;
        start();
      } else {
        this.waiting.push(start);
      }
    });
  }

  close(): void {
    this.closed = true;
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    for (const start of this.waiting.splice(0)) {
      this.active++;
      start();
    }
  }

  private release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.active--;
  }
}
