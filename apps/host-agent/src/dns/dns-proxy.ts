import dgram from 'node:dgram';
import net from 'node:net';
import dnsPacket from 'dns-packet';
import pino, { type Logger } from 'pino';
import { normalizeDomainName } from '../policy/domain-matcher';
import type { Policy } from '../policy/policy';
import { AddressLearner, type AddressBlocker } from './address-learner';
import type {
  DnsClient,
  DnsPolicyEvent,
  DnsProxyStats,
  DnsQueryNotice,
  DnsTransport,
  ProxyMode,
  QueryDecision,
} from './dns-events';
import {
  EDE,
  HEADER_BYTES,
  RCODE,
  TcpFrameReader,
  buildLocalAnswer,
  firstQuestionEnd,
  firstQuestionType,
  qtypeName,
  tcpFrame,
} from './dns-wire';
import { describeProcess, procfsReader, type AttributedProcess, type Attribution, type ProcessReader } from './process-details';
import { TcpUpstream, UdpUpstreamPool, UpstreamError, parseUpstream, type UpstreamAddress } from './upstream';
import { UpstreamResolver } from './upstream-resolver';
import { emptyLatencyBuckets, observeLatency } from './latency-histogram';

export interface DnsProxyOptions {
  /** 'HOST:PORT' of the resolver allowed queries go to; IPv6 as '[::1]:53'. */
  readonly upstream: string;
  /** Port to listen on at every listen address; 0 (default) picks a free one, see `start()`. */
  readonly port?: number;
  /** Default ['127.0.0.1', '::1']: where the kernel side redirects DNS of the deploy cgroup. */
  readonly listenAddresses?: readonly string[];
  readonly mode?: ProxyMode;
  readonly policy?: Policy;
  /** Upstream answer deadline; after it the client gets SERVFAIL. Default 2000 ms. */
  readonly upstreamTimeoutMs?: number;
  /** Forwarded queries in flight at once (UDP + TCP); beyond it, SERVFAIL at once. Default 16384. */
  readonly maxInFlight?: number;
  /** Upstream UDP sockets in the pool. Default 8 (each carries up to 4096 queries). */
  readonly upstreamUdpSockets?: number;
  /** Upstream TCP connections open at once. Default 256. */
  readonly maxTcpUpstreamConnections?: number;
  /** Client TCP connections open at once. Default 1024. */
  readonly maxTcpClients?: number;
  /** A client TCP connection with no traffic for this long is closed. Default 10 s (RFC 7766 §6.2.3). */
  readonly tcpIdleTimeoutMs?: number;
  /** Who sent a query; without it events carry no process. */
  readonly attribution?: Attribution;
  /** Where addresses of '!resolve' names go; without it '!resolve' is ignored. */
  readonly addressBlocker?: AddressBlocker;
  readonly resolveTtl?: { readonly minSeconds?: number; readonly maxSeconds?: number };
  readonly processReader?: ProcessReader;
  readonly logger?: Logger;
  readonly clock?: () => Date;
  /** Listen on UDP. Default true; a ProxyPool's primary answers TCP only. */
  readonly udp?: boolean;
  /** Listen on TCP. Default true; ProxyPool workers answer UDP only. */
  readonly tcp?: boolean;
  /**
   * Bind UDP non-exclusively: in a node:cluster worker the socket is then
   * one the cluster primary owns and shares with every worker binding the
   * same address and port, and the kernel hands each datagram to one of them.
   */
  readonly sharedUdp?: boolean;
  /** Resolve the policy's '!resolve' names at load and keep them fresh (default true); false: only on demand. */
  readonly pinResolveNames?: boolean;
}

/** Socket buffers large enough for thousands of queued datagrams (the kernel caps at net.core.[rw]mem_max). */
const SOCKET_BUFFER_BYTES = 4 * 1024 * 1024;
/** Queries one TCP client may have in flight before the proxy stops reading from it. */
const TCP_PIPELINE_LIMIT = 128;
/** Per-socket in-flight limit of the upstream pool: 1/16 of the id space keeps random id picks fast. */
const UDP_PER_SOCKET = 4096;

type Listener<T> = (value: T) => void;

/** Every counter at zero (the pool's workers start from it too). */
export function zeroStats(): DnsProxyStats {
  return {
    queries: 0,
    forwarded: 0,
    blocked: 0,
    audited: 0,
    servfail: 0,
    upstreamTimeouts: 0,
    malformed: 0,
    formerr: 0,
    notimp: 0,
    overloaded: 0,
    upstreamStray: 0,
    inFlight: 0,
    latencyBuckets: emptyLatencyBuckets(),
    latencySumMs: 0,
  };
}

/**
 * The DNS proxy of the deploy cgroup. Listens on loopback (UDP and TCP, IPv4
 * and IPv6, one port), answers NXDOMAIN for names the policy blocks (enforce)
 * or forwards them and records that they would have been blocked (audit),
 * forwards everything else over the transport it came in on, and answers
 * SERVFAIL when the upstream does not. A packet it cannot parse is dropped
 * and counted; no input makes a handler throw.
 */
export class DnsProxy {
  private readonly upstream: UpstreamAddress;
  private readonly timeoutMs: number;
  private readonly maxInFlight: number;
  private readonly log: Logger;
  private readonly clock: () => Date;
  private readonly reader: ProcessReader;
  private readonly udpPool: UdpUpstreamPool;
  private readonly tcpUpstream: TcpUpstream;
  private readonly learner: AddressLearner | undefined;
  private readonly udpSockets: dgram.Socket[] = [];
  private readonly tcpServers: net.Server[] = [];
  private readonly tcpClients = new Set<net.Socket>();
  private readonly eventListeners = new Set<Listener<DnsPolicyEvent>>();
  private readonly queryListeners = new Set<Listener<DnsQueryNotice>>();
  private readonly counters: Omit<DnsProxyStats, 'inFlight'> = (({ inFlight: _inFlight, ...rest }) => rest)(zeroStats());
  private inFlight = 0;
  private listenPort = 0;
  private mode: ProxyMode;
  private policy: Policy | undefined;
  private started = false;

  constructor(private readonly options: DnsProxyOptions) {
    this.upstream = parseUpstream(options.upstream);
    this.timeoutMs = options.upstreamTimeoutMs ?? 2000;
    this.maxInFlight = options.maxInFlight ?? 16384;
    this.log = options.logger ?? pino({ enabled: false });
    this.clock = options.clock ?? (() => new Date());
    this.reader = options.processReader ?? procfsReader;
    this.mode = options.mode ?? 'enforce';
    this.policy = options.policy;
    this.udpPool = new UdpUpstreamPool(this.upstream, {
      sockets: options.upstreamUdpSockets ?? 8,
      maxPerSocket: UDP_PER_SOCKET,
      recvBufferSize: SOCKET_BUFFER_BYTES,
      onStray: () => void this.counters.upstreamStray++,
    });
    this.tcpUpstream = new TcpUpstream(this.upstream, { maxConnections: options.maxTcpUpstreamConnections ?? 256 });
    this.learner = options.addressBlocker
      ? new AddressLearner(new UpstreamResolver(this.udpPool, this.tcpUpstream, this.timeoutMs), options.addressBlocker, {
          minTtlSeconds: options.resolveTtl?.minSeconds,
          maxTtlSeconds: options.resolveTtl?.maxSeconds,
          logger: this.log,
        })
      : undefined;
  }

  /** The port the proxy listens on (after `start()`). */
  get port(): number {
    return this.listenPort;
  }

  get currentMode(): ProxyMode {
    return this.mode;
  }

  get currentPolicy(): Policy | undefined {
    return this.policy;
  }

  stats(): DnsProxyStats {
    return { ...this.counters, inFlight: this.inFlight, latencyBuckets: [...this.counters.latencyBuckets] };
  }

  /** Starts listening on every listen address at one port and returns that port. */
  async start(): Promise<{ port: number }> {
    if (this.started) return { port: this.listenPort };
    await this.udpPool.start();
    const addresses = this.options.listenAddresses ?? ['127.0.0.1', '::1'];
    const wanted = this.options.port ?? 0;
    // With port 0 the first socket picks a port and the others must get the
    // same one on their addresses and protocols; if one of them finds it
    // taken, start over with a fresh pick.
    for (let attempt = 1; ; attempt++) {
      try {
        await this.listenAll(addresses, wanted);
        break;
      } catch (err) {
        this.closeListeners();
        const code = (err as NodeJS.ErrnoException).code;
        if (wanted === 0 && code === 'EADDRINUSE' && attempt < 20) continue;
        this.udpPool.close();
        throw err;
      }
    }
    this.started = true;
    if (this.policy) this.pinNames(this.policy);
    this.log.info({ port: this.listenPort, addresses, upstream: this.options.upstream, mode: this.mode }, 'dns proxy listening');
    return { port: this.listenPort };
  }

  /** Swaps the policy; queries decided from now on use it. */
  setPolicy(policy: Policy): void {
    this.policy = policy;
    if (this.started) this.pinNames(policy);
  }

  private pinNames(policy: Policy): void {
    if (this.options.pinResolveNames !== false) this.learner?.setPinnedNames(policy.resolveNames);
  }

  setMode(mode: ProxyMode): void {
    this.mode = mode;
  }

  /** Subscribes to block/audit events. Returns the unsubscribe function. */
  onEvent(listener: Listener<DnsPolicyEvent>): () => void {
    this.eventListeners.add(listener);
    return () => this.eventListeners.delete(listener);
  }

  /** Subscribes to every handled query (for the "domains contacted" list). */
  onQuery(listener: Listener<DnsQueryNotice>): () => void {
    this.queryListeners.add(listener);
    return () => this.queryListeners.delete(listener);
  }

  async close(): Promise<void> {
    this.started = false;
    this.learner?.close();
    for (const c of this.tcpClients) c.destroy();
    this.tcpClients.clear();
    await this.closeListeners();
    this.udpPool.close();
    this.tcpUpstream.close();
  }

  private async listenAll(addresses: readonly string[], wanted: number): Promise<void> {
    let port = wanted;
    for (const address of addresses) {
      if (this.options.udp !== false) {
        const udp = await this.bindUdp(address, port);
        this.udpSockets.push(udp);
        port = udp.address().port;
      }
      if (this.options.tcp !== false) {
        const tcp = await this.listenTcp(address, port);
        this.tcpServers.push(tcp);
        port = (tcp.address() as net.AddressInfo).port;
      }
    }
    this.listenPort = port;
  }

  private bindUdp(address: string, port: number): Promise<dgram.Socket> {
    const v6 = net.isIPv6(address);
    const socket = dgram.createSocket({
      type: v6 ? 'udp6' : 'udp4',
      ipv6Only: v6,
      recvBufferSize: SOCKET_BUFFER_BYTES,
      sendBufferSize: SOCKET_BUFFER_BYTES,
    });
    return new Promise((resolve, reject) => {
      const fail = (err: Error): void => {
        socket.close();
        reject(Object.assign(err, { message: `dns proxy cannot listen on udp ${address}:${port}: ${err.message}` }));
      };
      socket.once('error', fail);
      socket.bind({ address, port, exclusive: this.options.sharedUdp !== true }, () => {
        socket.off('error', fail);
        socket.on('error', (err) => this.log.warn({ err: err.message, address }, 'udp listener error'));
        socket.on('message', (msg, rinfo) => this.onUdpQuery(socket, msg, rinfo));
        resolve(socket);
      });
    });
  }

  private listenTcp(address: string, port: number): Promise<net.Server> {
    const server = net.createServer((sock) => this.onTcpConnection(sock));
    server.maxConnections = this.options.maxTcpClients ?? 1024;
    return new Promise((resolve, reject) => {
      const fail = (err: Error): void => {
        server.close();
        reject(Object.assign(err, { message: `dns proxy cannot listen on tcp ${address}:${port}: ${err.message}` }));
      };
      server.once('error', fail);
      server.listen({ host: address, port, exclusive: true, ipv6Only: net.isIPv6(address) }, () => {
        server.off('error', fail);
        server.on('error', (err) => this.log.warn({ err: err.message, address }, 'tcp listener error'));
        resolve(server);
      });
    });
  }

  private closeListeners(): Promise<void> {
    const closing: Promise<void>[] = [];
    for (const s of this.udpSockets.splice(0)) closing.push(new Promise((r) => s.close(() => r())));
    for (const s of this.tcpServers.splice(0)) closing.push(new Promise((r) => s.close(() => r())));
    return Promise.all(closing).then(() => undefined);
  }

  private onUdpQuery(socket: dgram.Socket, msg: Buffer, rinfo: dgram.RemoteInfo): void {
    const client = { address: rinfo.address, port: rinfo.port };
    void this.handle(msg, 'udp', client).then((answer) => {
      if (!answer || !this.started) return; // closed meanwhile: the socket is gone
      try {
        socket.send(answer, rinfo.port, rinfo.address, (err) => {
          if (err) this.log.debug({ err: err.message, client }, 'could not send answer to client');
        });
      } catch (err) {
        this.log.debug({ err: (err as Error).message, client }, 'could not send answer to client');
      }
    });
  }

  private onTcpConnection(sock: net.Socket): void {
    this.tcpClients.add(sock);
    sock.setNoDelay(true);
    sock.setTimeout(this.options.tcpIdleTimeoutMs ?? 10_000, () => sock.destroy());
    sock.on('error', () => undefined); // resets by clients are normal; the socket closes itself
    sock.on('close', () => this.tcpClients.delete(sock));
    const client = { address: sock.remoteAddress ?? '', port: sock.remotePort ?? 0 };
    const reader = new TcpFrameReader();
    let pending = 0;
    sock.on('data', (chunk: Buffer) => {
      for (const frame of reader.push(chunk)) {
        pending++;
        if (pending >= TCP_PIPELINE_LIMIT) sock.pause();
        void this.handle(frame, 'tcp', client).then((answer) => {
          pending--;
          if (pending < TCP_PIPELINE_LIMIT && sock.isPaused() && !sock.destroyed) sock.resume();
          if (answer && sock.writable) sock.write(tcpFrame(answer));
        });
      }
    });
  }

  /** Never rejects: whatever goes wrong, the packet is dropped or answered. */
  private async handle(query: Buffer, transport: DnsTransport, client: DnsClient): Promise<Buffer | undefined> {
    const started = performance.now();
    try {
      return await this.answer(query, transport, client);
    } catch (err) {
      this.counters.malformed++;
      this.log.warn({ err: (err as Error).message, client, transport }, 'dns query dropped: unexpected error');
      return undefined;
    } finally {
      const ms = performance.now() - started;
      observeLatency(this.counters.latencyBuckets, ms);
      this.counters.latencySumMs += ms;
    }
  }

  private async answer(query: Buffer, transport: DnsTransport, client: DnsClient): Promise<Buffer | undefined> {
    let packet: dnsPacket.DecodedPacket;
    try {
      packet = dnsPacket.decode(query);
    } catch {
      this.counters.malformed++;
      return undefined;
    }
    // A response arriving here is not a question: never answer it, or two
    // misconfigured proxies could bounce packets between them forever.
    if (packet.flag_qr) {
      this.counters.malformed++;
      return undefined;
    }
    this.counters.queries++;
    const optRecord = packet.additionals?.find((rr) => rr.type === 'OPT');
    const dnssecOk = optRecord?.type === 'OPT' ? optRecord.flag_do : false;
    const local = (rcode: number, questionEnd: number, ede?: { code: number; text: string }): Buffer =>
      buildLocalAnswer(query, questionEnd, { rcode, edns: optRecord ? { dnssecOk, ede } : undefined });

    const questions = packet.questions ?? [];
    const questionEnd = firstQuestionEnd(query);
    // Exactly one question: with several, the upstream would answer all of
    // them but only the first would have been checked against the policy.
    if (questions.length !== 1 || questionEnd < 0) {
      this.counters.formerr++;
      return local(RCODE.FORMERR, HEADER_BYTES);
    }
    const opcode = (query.readUInt16BE(2) >> 11) & 0xf;
    if (opcode !== 0) {
      this.counters.notimp++;
      return local(RCODE.NOTIMP, questionEnd, { code: EDE.NOT_SUPPORTED, text: 'cgfence proxy answers standard queries only' });
    }

    const qname = normalizeDomainName(questions[0].name);
    const qtype = qtypeName(firstQuestionType(query, questionEnd), questions[0].type);
    const origin = this.lookupOrigin(client.port, query.readUInt16BE(0));
    const policy = this.policy;
    const entry = policy?.matcher.match(qname);
    const mode = this.mode;
    const decision: QueryDecision = entry === undefined ? 'allowed' : mode === 'enforce' ? 'blocked' : 'audited';
    this.emit(this.queryListeners, { qname, qtype, decision, client, process: origin });

    if (entry !== undefined && policy !== undefined) {
      // Read /proc now, in the tick the query arrived in: a short-lived
      // process (curl) may be gone by the time the upstream would answer.
      const processDetails = origin ? describeProcess(origin, this.reader) : undefined;
      this.emit(this.eventListeners, {
        kind: mode === 'enforce' ? 'dns_block' : 'dns_audit',
        qname,
        qtype,
        entry: entry.value,
        client,
        transport,
        process: processDetails,
        policy: { version: policy.version, hash: policy.hash },
        time: this.clock(),
      });
      if (entry.resolve === true && this.learner) void this.learner.learn(qname);
      if (mode === 'enforce') {
        this.counters.blocked++;
        return local(RCODE.NXDOMAIN, questionEnd, { code: EDE.BLOCKED, text: `blocked by cgfence policy ${policy.version}: ${entry.value}` });
      }
      this.counters.audited++;
    }
    return this.forward(query, questionEnd, transport, local);
  }

  private async forward(
    query: Buffer,
    questionEnd: number,
    transport: DnsTransport,
    local: (rcode: number, questionEnd: number, ede?: { code: number; text: string }) => Buffer,
  ): Promise<Buffer> {
    if (this.inFlight >= this.maxInFlight) {
      this.counters.overloaded++;
      this.counters.servfail++;
      return local(RCODE.SERVFAIL, questionEnd, { code: EDE.NETWORK_ERROR, text: 'cgfence proxy overloaded' });
    }
    this.inFlight++;
    try {
      const answer =
        transport === 'udp'
          ? await this.udpPool.query(query, questionEnd, this.timeoutMs)
          : await this.tcpUpstream.query(query, this.timeoutMs);
      this.counters.forwarded++;
      return answer;
    } catch (err) {
      const timeout = err instanceof UpstreamError && err.code === 'UPSTREAM_TIMEOUT';
      if (timeout) this.counters.upstreamTimeouts++;
      this.counters.servfail++;
      return local(RCODE.SERVFAIL, questionEnd, { code: EDE.NETWORK_ERROR, text: `upstream: ${(err as Error).message}` });
    } finally {
      this.inFlight--;
    }
  }

  private lookupOrigin(clientPort: number, dnsId: number): AttributedProcess | undefined {
    if (!this.options.attribution) return undefined;
    try {
      return this.options.attribution.lookup(clientPort, dnsId);
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'attribution lookup failed');
      return undefined;
    }
  }

  private emit<T>(listeners: Set<Listener<T>>, value: T): void {
    for (const listener of listeners) {
      try {
        listener(value);
      } catch (err) {
        this.log.error({ err: (err as Error).message }, 'dns proxy listener threw');
      }
    }
  }
}
