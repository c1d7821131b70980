import type net from 'node:net';
import type { DnsClient } from './dns-events';
import { QUERY_CAPS } from './dns-query';
import { tcpFrame } from './dns-wire';

/** The caps of DNS over TCP from clients; see docs/operations.md, "DNS proxy caps". */
export interface TcpClientCaps {
  /** Queries of one connection queued or in flight; beyond it the proxy stops reading from it. Default 128. */
  readonly maxPipelined: number;
  /**
   * Queries of one connection being answered at once (forwarded upstream);
   * the rest wait in its queue, in order. A pipelining client is served
   * (answers still come back out of order as they are ready), but one process
   * with many connections cannot fill the upstream with its queries ahead of
   * everyone else's: a client that never reads its (large) answers used to
   * keep 1024 upstream queries in flight and other clients' answers queued
   * behind them. Default 8.
   */
  readonly maxInFlightPerConnection: number;
  /** Answer bytes waiting for one client to read; beyond it the proxy stops reading its queries. Default 64 KiB. */
  readonly pauseUnreadBytes: number;
  /** Answer bytes waiting for one client to read; beyond it the connection is closed. Default 256 KiB. */
  readonly maxUnreadBytes: number;
  /** Answer bytes waiting over all clients; beyond it the connection written to is closed. Default 32 MiB. */
  readonly maxUnreadBytesTotal: number;
  /** Query bytes read but not yet handled, over all clients; beyond it reading pauses. Default 16 MiB. */
  readonly maxQueuedBytesTotal: number;
  /** A client paused for not reading its answers that has not caught up after this long is closed. Default 5 s. */
  readonly slowReaderTimeoutMs: number;
  /** Queries taken from all connections in one event-loop turn. Default 256. */
  readonly framesPerTurn: number;
  /** Queries taken from one connection in one turn (round robin over connections). Default 16. */
  readonly framesPerClientPerTurn: number;
  /** A connection with no traffic for this long is closed (RFC 7766 §6.2.3). Default 10 s. */
  readonly idleTimeoutMs: number;
}

export const DEFAULT_TCP_CLIENT_CAPS: TcpClientCaps = {
  maxPipelined: 128,
  maxInFlightPerConnection: 8,
  pauseUnreadBytes: 64 * 1024,
  maxUnreadBytes: 256 * 1024,
  maxUnreadBytesTotal: 32 * 1024 * 1024,
  maxQueuedBytesTotal: 16 * 1024 * 1024,
  slowReaderTimeoutMs: 5000,
  framesPerTurn: 256,
  framesPerClientPerTurn: 16,
  idleTimeoutMs: 10_000,
};

export interface TcpClientCounters {
  /** Connections closed because their client did not read its answers. */
  tcpSlowReadersClosed: number;
  /** Connections closed because a frame was larger than the message cap. */
  tcpOversizedFrames: number;
  /** Times reading from a connection was paused for back-pressure. */
  tcpPaused: number;
}

type Handler = (frame: Buffer, client: DnsClient) => Promise<Buffer | undefined>;

class Connection {
  readonly frames: Buffer[] = [];
  head = 0;
  pending = 0;
  queuedBytes = 0;
  unread = 0;
  readonly splitter = new FrameSplitter(QUERY_CAPS.maxMessageBytes);
  writeBlocked = false;
  inReady = false;
  slowTimer: NodeJS.Timeout | undefined;

  constructor(
    readonly sock: net.Socket,
    readonly client: DnsClient,
  ) {}

  get queued(): number {
    return this.frames.length - this.head;
  }

  shift(): Buffer {
    const f = this.frames[this.head];
    this.frames[this.head++] = EMPTY;
    if (this.head === this.frames.length) {
      this.frames.length = 0;
      this.head = 0;
    }
    return f;
  }
}

const EMPTY = Buffer.alloc(0);

/**
 * Splits a TCP byte stream into DNS messages (2-byte length, then the
 * message), keeping at most one partial message, itself at most `maxFrame`
 * bytes: a length over `maxFrame` is reported as oversized (the stream
 * cannot be resynchronised without reading it, so the caller closes it).
 */
export class FrameSplitter {
  private buffered: Buffer = EMPTY;
  private broken = false;

  constructor(private readonly maxFrame: number) {}

  push(chunk: Buffer): { frames: Buffer[]; oversized: boolean } {
    const frames: Buffer[] = [];
    if (this.broken) return { frames, oversized: true };
    const buf = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk]);
    let pos = 0;
    while (buf.length - pos >= 2) {
      const len = buf.readUInt16BE(pos);
      if (len > this.maxFrame) {
        this.broken = true;
        this.buffered = EMPTY;
        return { frames, oversized: true };
      }
      if (buf.length - pos - 2 < len) break;
      frames.push(buf.subarray(pos + 2, pos + 2 + len));
      pos += 2 + len;
    }
    // Keep the partial frame as a copy, so the chunk it came in can go.
    this.buffered = pos === buf.length ? EMPTY : Buffer.from(buf.subarray(pos));
    return { frames, oversized: false };
  }

  /** Bytes of the partial message kept. */
  get pending(): number {
    return this.buffered.length;
  }

  reset(): void {
    this.buffered = EMPTY;
    this.broken = false;
  }
}

/**
 * The client side of DNS over TCP, bounded in every dimension: frames are
 * queued per connection and handled in turns of at most `framesPerTurn`,
 * round robin over connections (`framesPerClientPerTurn` each), so one
 * pipelining client neither holds the event loop nor starves the others;
 * reading pauses when a connection has `maxPipelined` queries queued or in
 * flight, when its client leaves `pauseUnreadBytes` of answers unread, or
 * when all connections together have `maxQueuedBytesTotal` of queries
 * waiting; a client that does not read is closed after `slowReaderTimeoutMs`
 * or at `maxUnreadBytes` (or when all clients' unread answers reach
 * `maxUnreadBytesTotal`); a frame larger than the message cap closes the
 * connection (it could only be buffered whole).
 */
export class TcpClients {
  private readonly conns = new Set<Connection>();
  private readonly ready: Connection[] = [];
  private readonly pausedForTotal = new Set<Connection>();
  private scheduled = false;
  private unreadTotal = 0;
  private queuedTotal = 0;

  constructor(
    private readonly caps: TcpClientCaps,
    private readonly handle: Handler,
    private readonly counters: TcpClientCounters,
  ) {}

  get size(): number {
    return this.conns.size;
  }

  private get inFlightCap(): number {
    return Math.min(this.caps.maxInFlightPerConnection, this.caps.maxPipelined);
  }

  /** Answer bytes written but not yet read by clients (a gauge). */
  get unreadBytes(): number {
    return this.unreadTotal;
  }

  /** Query bytes read and waiting to be handled (a gauge). */
  get queuedBytes(): number {
    return this.queuedTotal;
  }

  accept(sock: net.Socket): void {
    const c = new Connection(sock, { address: sock.remoteAddress ?? '', port: sock.remotePort ?? 0 });
    this.conns.add(c);
    sock.setNoDelay(true);
    sock.setTimeout(this.caps.idleTimeoutMs, () => sock.destroy());
    sock.on('error', () => undefined); // resets by clients are normal; the socket closes itself
    sock.on('close', () => this.forget(c));
    sock.on('data', (chunk: Buffer) => this.onData(c, chunk));
    sock.on('drain', () => this.onDrain(c));
  }

  closeAll(): void {
    for (const c of [...this.conns]) c.sock.destroy();
  }

  private forget(c: Connection): void {
    if (!this.conns.delete(c)) return;
    clearTimeout(c.slowTimer);
    this.unreadTotal -= c.unread;
    this.queuedTotal -= c.queuedBytes;
    c.unread = 0;
    c.queuedBytes = 0;
    c.frames.length = 0;
    c.head = 0;
    c.splitter.reset();
    this.pausedForTotal.delete(c);
    this.resumeHeldBack();
  }

  private onData(c: Connection, chunk: Buffer): void {
    const { frames, oversized } = c.splitter.push(chunk);
    if (oversized) {
      this.counters.tcpOversizedFrames++;
      c.sock.destroy();
      return;
    }
    for (const f of frames) {
      c.frames.push(f);
      c.queuedBytes += f.length;
      this.queuedTotal += f.length;
    }
    if (c.queued + c.pending >= this.caps.maxPipelined) this.pause(c);
    if (this.queuedTotal >= this.caps.maxQueuedBytesTotal) {
      this.pause(c);
      this.pausedForTotal.add(c);
    }
    this.enqueue(c);
  }

  private pause(c: Connection): void {
    if (c.sock.isPaused()) return;
    c.sock.pause();
    this.counters.tcpPaused++;
  }

  private enqueue(c: Connection): void {
    if (c.inReady || c.queued === 0 || c.writeBlocked || c.pending >= this.inFlightCap) return;
    c.inReady = true;
    this.ready.push(c);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.turn());
    }
  }

  private turn(): void {
    this.scheduled = false;
    let budget = this.caps.framesPerTurn;
    let rounds = this.ready.length;
    while (budget > 0 && rounds-- > 0) {
      const c = this.ready.shift() as Connection;
      c.inReady = false;
      if (!this.conns.has(c)) continue;
      for (
        let n = 0;
        n < this.caps.framesPerClientPerTurn && budget > 0 && c.queued > 0 && !c.writeBlocked && c.pending < this.inFlightCap;
        n++, budget--
      ) {
        this.dispatch(c, c.shift());
      }
      this.enqueue(c);
      this.maybeResume(c);
    }
    this.resumeHeldBack();
    if (this.ready.length > 0 && !this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.turn());
    }
  }

  private dispatch(c: Connection, frame: Buffer): void {
    c.queuedBytes -= frame.length;
    this.queuedTotal -= frame.length;
    c.pending++;
    void this.handle(frame, c.client).then((answer) => {
      c.pending--;
      if (!this.conns.has(c)) return;
      if (answer) this.write(c, tcpFrame(answer));
      this.enqueue(c);
      this.maybeResume(c);
    });
  }

  private write(c: Connection, frame: Buffer): void {
    if (!c.sock.writable) return;
    c.sock.write(frame);
    this.setUnread(c, c.sock.writableLength);
    if (c.unread > this.caps.maxUnreadBytes || this.unreadTotal > this.caps.maxUnreadBytesTotal) {
      this.closeSlow(c);
      return;
    }
    if (c.unread > this.caps.pauseUnreadBytes && !c.writeBlocked) {
      c.writeBlocked = true;
      this.pause(c);
      c.slowTimer = setTimeout(() => this.closeSlow(c), this.caps.slowReaderTimeoutMs);
      c.slowTimer.unref();
    }
  }

  private closeSlow(c: Connection): void {
    if (!this.conns.has(c)) return;
    this.counters.tcpSlowReadersClosed++;
    c.sock.destroy();
    this.forget(c);
  }

  private onDrain(c: Connection): void {
    if (!this.conns.has(c)) return;
    this.setUnread(c, c.sock.writableLength);
    if (c.writeBlocked) {
      c.writeBlocked = false;
      clearTimeout(c.slowTimer);
      c.slowTimer = undefined;
      this.enqueue(c);
    }
    this.maybeResume(c);
  }

  private setUnread(c: Connection, n: number): void {
    this.unreadTotal += n - c.unread;
    c.unread = n;
  }

  private maybeResume(c: Connection): void {
    if (!this.conns.has(c) || c.sock.destroyed || !c.sock.isPaused()) return;
    if (c.writeBlocked || c.queued + c.pending >= this.caps.maxPipelined || this.pausedForTotal.has(c)) return;
    c.sock.resume();
  }

  private resumeHeldBack(): void {
    if (this.pausedForTotal.size === 0 || this.queuedTotal >= this.caps.maxQueuedBytesTotal / 2) return;
    const held = [...this.pausedForTotal];
    this.pausedForTotal.clear();
    for (const c of held) this.maybeResume(c);
  }
}
