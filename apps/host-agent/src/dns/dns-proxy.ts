import dgram from 'node:dgram';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import pino, { type Logger } from 'pino';
import { normalizeDomainName } from '../policy/domain-matcher';
import type { BlocklistEntry } from '../policy/entry-types';
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
import { EDE_OTHER, screenAnswer } from './dns-answer';
import { ForwardCore, type CoreClient, type ForwardCoreStats } from './forward-core';
import { answersFormerr, parseQuery } from './dns-query';
import { EDE, RCODE, buildLocalAnswer, qtypeName, typeName } from './dns-wire';
import { LoadMonitor } from './load-monitor';
import { DEFAULT_TCP_CLIENT_CAPS, TcpClients, type TcpClientCaps } from './tcp-clients';
import { describeProcess, procfsReader, type AttributedProcess, type Attribution, type ProcessDetails, type ProcessReader } from './process-details';
import { TcpUpstream, UdpUpstreamPool, UpstreamError, parseUpstream, type UpstreamAddress, type UpstreamWaiter } from './upstream';
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
  /** Caps of client TCP connections (pipelining, unread answers, work per turn); see TcpClientCaps for defaults. */
  readonly tcpCaps?: Partial<TcpClientCaps>;
  /**
   * Forwarded queries one client (the process the kernel attributed, else
   * the source address and port) may have in flight; beyond it its allowed queries
   * are answered SERVFAIL at once (counted as shed). Default maxInFlight / 16.
   */
  readonly maxInFlightPerClient?: number;
  /** Event-loop lag beyond which allowed queries are answered SERVFAIL at once (shed). Default 250 ms. */
  readonly maxLoopLagMs?: number;
  /** Who sent a query; without it events carry no process. */
  readonly attribution?: Attribution;
  /** Where addresses of '!resolve' names go; without it '!resolve' is ignored. */
  readonly addressBlocker?: AddressBlocker;
  readonly resolveTtl?: { readonly minSeconds?: number; readonly maxSeconds?: number };
  readonly processReader?: ProcessReader;
  readonly logger?: Logger;
  readonly clock?: () => Date;
  /**
   * Who does UDP: 'node' (default) reads and sends every datagram in
   * JavaScript; 'core' hands the listening sockets to the C forwarding core
   * (forward-core.ts), which forwards names this proxy allowed before and
   * their plain answers on a thread of its own and gives this proxy the rest.
   * The agent runs 'core' (its --dns-udp-engine flag).
   */
  readonly udpEngine?: 'node' | 'core';
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
  /**
   * Check allowed names' upstream answers for CNAME/DNAME chains to listed
   * names (dns-answer.ts). Default true; false only for the benchmark's
   * before/after (the agent never turns it off).
   */
  readonly screenAnswers?: boolean;
}

/** Socket buffers large enough for thousands of queued datagrams (the kernel caps at net.core.[rw]mem_max). */
const SOCKET_BUFFER_BYTES = 4 * 1024 * 1024;
/** How long /proc details of a process are reused for its further listed queries. */
const PROCESS_CACHE_MS = 1000;
/** Processes whose details are kept at once (the cache starts over beyond it). */
const PROCESS_CACHE_ENTRIES = 1024;
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
    limitExceeded: 0,
    shed: 0,
    tcpSlowReadersClosed: 0,
    tcpOversizedFrames: 0,
    tcpPaused: 0,
    chainListed: 0,
    answersUnreadable: 0,
    coreForwarded: 0,
    inFlight: 0,
    latencyBuckets: emptyLatencyBuckets(),
    latencySumMs: 0,
  };
}

/**
 * The DNS proxy of the deploy cgroup. Listens on loopback (UDP and TCP, IPv4
 * and IPv6, one port), answers NXDOMAIN for names the policy blocks (enforce)
 * or forwards them and records that they would have been blocked (audit),
 * forwards everything else over UDP (over TCP when a TCP client's answer
 * comes back truncated), and answers
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
  private core: ForwardCore | undefined;
  private readonly tcpServers: net.Server[] = [];
  private readonly tcpClients: TcpClients;
  private readonly load: LoadMonitor;
  private readonly maxInFlightPerClient: number;
  private readonly inFlightByClient = new Map<string | number, number>();
  private readonly processCache = new Map<string, { details: ProcessDetails; at: number }>();
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
    this.maxInFlightPerClient = options.maxInFlightPerClient ?? Math.max(1, Math.floor(this.maxInFlight / 16));
    this.load = new LoadMonitor({ maxLagMs: options.maxLoopLagMs });
    this.tcpClients = new TcpClients(
      { ...DEFAULT_TCP_CLIENT_CAPS, ...(options.tcpIdleTimeoutMs !== undefined ? { idleTimeoutMs: options.tcpIdleTimeoutMs } : {}), ...options.tcpCaps },
      (frame, client) => this.handle(frame, 'tcp', client),
      this.counters,
    );
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
          // A failing refresh takes at most two lookups' timeouts (UDP, then TCP after a truncated answer).
          refreshGraceSeconds: (2 * this.timeoutMs) / 1000 + 1,
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
    const out = { ...this.counters, inFlight: this.inFlight, latencyBuckets: [...this.counters.latencyBuckets] };
    return this.core ? withCoreStats(out, this.core.stats()) : out;
  }

  /** The forwarding core's own counters ('core' engine, while started). */
  coreStats(): ForwardCoreStats | undefined {
    return this.core?.stats();
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
    this.load.start();
    if (this.policy) this.pinNames(this.policy);
    this.log.info({ port: this.listenPort, addresses, upstream: this.options.upstream, mode: this.mode }, 'dns proxy listening');
    return { port: this.listenPort };
  }

  /** Swaps the policy; queries decided from now on use it. */
  setPolicy(policy: Policy): void {
    this.policy = policy;
    // Names the core cached as allowed were allowed by the policy before this one.
    this.core?.clear();
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

  /** Reports now the queries the UDP core forwarded and the proxy has not taken yet (it takes them every 10 ms). */
  flushQueries(): void {
    this.core?.drain();
  }

  /** Subscribes to every handled query (for the "domains contacted" list). */
  onQuery(listener: Listener<DnsQueryNotice>): () => void {
    this.queryListeners.add(listener);
    return () => this.queryListeners.delete(listener);
  }

  async close(): Promise<void> {
    this.started = false;
    this.learner?.close();
    this.load.stop();
    this.tcpClients.closeAll();
    await this.closeListeners();
    this.udpPool.close();
    this.tcpUpstream.close();
  }

  private async listenAll(addresses: readonly string[], wanted: number): Promise<void> {
    let port = wanted;
    const core = this.options.udpEngine === 'core' && this.options.udp !== false;
    if (core) {
      this.core = ForwardCore.open(
        {
          listenAddresses: addresses,
          port,
          upstreamHost: this.upstream.host,
          upstreamPort: this.upstream.port,
          timeoutMs: this.timeoutMs,
          maxInFlight: this.maxInFlight,
          maxInFlightPerClient: this.maxInFlightPerClient,
        },
        {
          query: (msg, client, ageMs) => this.onUdpQuery(undefined, msg, client, performance.now() - ageMs),
          answer: (answer, query, client, ageMs) => this.onCoreAnswer(answer, query, client, performance.now() - ageMs),
          notice: (query, client) => this.onCoreNotice(query, client),
        },
      );
      port = this.core.port;
    }
    for (const address of addresses) {
      if (this.options.udp !== false && !core) {
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
      lookup: literalLookup as unknown as dgram.SocketOptions['lookup'],
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
        socket.on('message', (msg, rinfo) => this.onUdpQuery(socket, msg, rinfo, performance.now()));
        resolve(socket);
      });
    });
  }

  private listenTcp(address: string, port: number): Promise<net.Server> {
    const server = net.createServer((sock) => this.tcpClients.accept(sock));
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
    this.core?.close();
    this.core = undefined;
    const closing: Promise<void>[] = [];
    for (const s of this.udpSockets.splice(0)) closing.push(new Promise((r) => s.close(() => r())));
    for (const s of this.tcpServers.splice(0)) closing.push(new Promise((r) => s.close(() => r())));
    return Promise.all(closing).then(() => undefined);
  }

  /**
   * The UDP hot path, with no promise, closure or timer per query: decide in
   * this tick; a local answer goes back at once; a forwarded query waits in
   * the upstream pool as its own Forwarded record (the pool calls it back).
   */
  private onUdpQuery(socket: dgram.Socket | undefined, msg: Buffer, rinfo: DnsClient, started: number): void {
    let decided: Buffer | Forwarded | undefined;
    try {
      decided = this.decide(msg, 'udp', rinfo);
    } catch (err) {
      this.dropUnexpected(err, rinfo, 'udp');
    }
    if (decided instanceof Forwarded) {
      decided.socket = socket;
      decided.started = started;
      // An allowed name: the core forwards its next queries by itself (setPolicy forgets it).
      if (socket === undefined && decided.entry === undefined) this.core?.allow(msg);
      try {
        this.udpPool.send(msg, decided.questionEnd, this.timeoutMs, decided);
      } catch (err) {
        // The pool reports its failures to the waiter; this is for the unexpected.
        this.settleUdp(decided, undefined, new UpstreamError('UPSTREAM_ERROR', (err as Error).message));
      }
      return;
    }
    this.observe(started);
    if (decided !== undefined) this.reply(socket, decided, rinfo);
  }

  /**
   * The answer to a query the core forwarded by itself, handed over because
   * a record could lead elsewhere: the same check as any forwarded answer
   * (the query was counted in flight by the core, not here).
   */
  private onCoreAnswer(answer: Buffer, query: Buffer, client: CoreClient, started: number): void {
    let out: Buffer | undefined;
    try {
      const parsed = parseQuery(query);
      if (!parsed.ok) throw new Error(`the core handed an answer to an unreadable query (${parsed.problem})`);
      const qname = normalizeDomainName(parsed.name);
      const qtype = qtypeName(parsed.qtype, typeName(parsed.qtype));
      const origin = this.lookupOrigin(client.port, parsed.id);
      const asked = new Forwarded(this, query, parsed.questionEnd, parsed.edns?.dnssecOk, 'udp', client, 0, qname, qtype, origin, undefined);
      this.counters.forwarded++;
      out = this.inspectAnswer(asked, answer);
    } catch (err) {
      this.dropUnexpected(err, client, 'udp');
    }
    this.observe(started);
    if (out !== undefined && this.started) this.core?.reply(client, out);
  }

  /** A query the core forwarded by itself: counted, and reported with its process like any other (the domains-contacted list). */
  private onCoreNotice(query: Buffer, client: CoreClient): void {
    const parsed = parseQuery(query);
    if (!parsed.ok) return;
    this.counters.queries++;
    if (this.queryListeners.size === 0) return;
    this.emit(this.queryListeners, {
      qname: normalizeDomainName(parsed.name),
      qtype: qtypeName(parsed.qtype, typeName(parsed.qtype)),
      decision: 'allowed',
      client: plainClient(client),
      process: this.lookupOrigin(client.port, parsed.id),
    });
  }

  /** @internal The upstream pool's callback for a UDP query (Forwarded.settle). */
  settleUdp(f: Forwarded, answer: Buffer | undefined, err: UpstreamError | undefined): void {
    let out: Buffer | undefined;
    try {
      out = this.afterUpstream(f, answer, err);
    } catch (e) {
      this.dropUnexpected(e, f.client, 'udp');
    }
    this.observe(f.started);
    if (out !== undefined) this.reply(f.socket, out, f.client);
  }

  /** Sends an answer from the listener the query came in on: a dgram socket, or the core's (socket undefined). */
  private reply(socket: dgram.Socket | undefined, answer: Buffer, client: DnsClient): void {
    if (!this.started) return; // closed meanwhile: the socket is gone
    if (socket === undefined) {
      this.core?.reply(client as CoreClient, answer);
      return;
    }
    try {
      // No callback (it would cost a nextTick per answer); a failed send is the socket's 'error', logged there.
      socket.send(answer, client.port, client.address);
    } catch (err) {
      this.log.debug({ err: (err as Error).message, client: { address: client.address, port: client.port } }, 'could not send answer to client');
    }
  }

  private observe(started: number): void {
    const ms = performance.now() - started;
    observeLatency(this.counters.latencyBuckets, ms);
    this.counters.latencySumMs += ms;
  }

  private dropUnexpected(err: unknown, client: DnsClient, transport: DnsTransport): void {
    this.counters.malformed++;
    this.log.warn({ err: (err as Error).message, client: { address: client.address, port: client.port }, transport }, 'dns query dropped: unexpected error');
  }

  /** TCP (and the tests' direct calls): the same decision, awaited. Never rejects: whatever goes wrong, the packet is dropped or answered. */
  private async handle(query: Buffer, transport: DnsTransport, client: DnsClient): Promise<Buffer | undefined> {
    const started = performance.now();
    try {
      const decided = this.decide(query, transport, client);
      if (!(decided instanceof Forwarded)) return decided;
      let answer: Buffer | undefined;
      let error: UpstreamError | undefined;
      try {
        // Over UDP whatever transport the client used: a client pipelining
        // thousands of queries over TCP must not cost one upstream TCP
        // connection each. A TCP client whose answer comes back truncated gets
        // it over TCP (a UDP client gets the truncated answer and retries over
        // TCP itself, as stub resolvers do).
        answer = await this.udpPool.query(query, decided.questionEnd, this.timeoutMs);
        if (transport === 'tcp' && isTruncated(answer)) answer = await this.tcpUpstream.query(query, this.timeoutMs);
      } catch (err) {
        error = err instanceof UpstreamError ? err : new UpstreamError('UPSTREAM_ERROR', (err as Error).message);
      }
      return this.afterUpstream(decided, answer, error);
    } catch (err) {
      this.dropUnexpected(err, client, transport);
      return undefined;
    } finally {
      this.observe(started);
    }
  }

  /**
   * Decides on a query in the tick it arrived: a local answer (Buffer), a
   * drop (undefined), or a Forwarded query, admitted (counted in flight,
   * against its client's share) and to be sent upstream.
   */
  private decide(query: Buffer, transport: DnsTransport, client: DnsClient): Buffer | Forwarded | undefined {
    // Bounded decode (dns-query.ts): header, the one question, the OPT record; nothing past the caps.
    const parsed = parseQuery(query);
    if (!parsed.ok) {
      // Too short, a response arriving here (never answer one, or two
      // misconfigured proxies could bounce packets between them forever), a
      // name or record that breaks a cap or runs off the message: drop.
      if (!answersFormerr(parsed.problem)) {
        this.counters.malformed++;
        if (parsed.problem === 'bad-name') this.counters.limitExceeded++;
        return undefined;
      }
      // Too large, too many records, or not exactly one question (with
      // several, the upstream would answer all of them but only the first
      // would have been checked against the policy): FORMERR.
      this.counters.limitExceeded++;
      this.counters.formerr++;
      return buildLocalAnswer(query, parsed.questionEnd, { rcode: RCODE.FORMERR });
    }
    this.counters.queries++;
    const { questionEnd } = parsed;
    const dnssecOk = parsed.edns?.dnssecOk;

    if (parsed.opcode !== 0) {
      this.counters.notimp++;
      return localAnswer(query, questionEnd, dnssecOk, RCODE.NOTIMP, { code: EDE.NOT_SUPPORTED, text: 'cgfence proxy answers standard queries only' });
    }

    const qname = normalizeDomainName(parsed.name);
    const qtype = qtypeName(parsed.qtype, typeName(parsed.qtype));
    const origin = this.lookupOrigin(client.port, parsed.id);
    const policy = this.policy;
    const entry = policy?.matcher.match(qname);
    const mode = this.mode;
    const decision: QueryDecision = entry === undefined ? 'allowed' : mode === 'enforce' ? 'blocked' : 'audited';
    if (this.queryListeners.size > 0) this.emit(this.queryListeners, { qname, qtype, decision, client: plainClient(client), process: origin });

    if (entry !== undefined && policy !== undefined) {
      // Read /proc now, in the tick the query arrived in: a short-lived
      // process (curl) may be gone by the time the upstream would answer.
      const processDetails = origin ? this.describe(origin) : undefined;
      this.emit(this.eventListeners, {
        kind: mode === 'enforce' ? 'dns_block' : 'dns_audit',
        qname,
        qtype,
        entry: entry.value,
        client: plainClient(client),
        transport,
        process: processDetails,
        policy: { version: policy.version, hash: policy.hash },
        time: this.clock(),
      });
      if (entry.resolve === true && this.learner) void this.learner.learn(qname, entry.value);
      if (mode === 'enforce') {
        this.counters.blocked++;
        return localAnswer(query, questionEnd, dnssecOk, RCODE.NXDOMAIN, { code: EDE.BLOCKED, text: `blocked by cgfence policy ${policy.version}: ${entry.value}` });
      }
      this.counters.audited++;
    }
    // Overload is shed, not queued: when the event loop lags or this client
    // already has its fair share in flight, answer at once.
    if (this.load.overloaded()) {
      this.counters.shed++;
      this.counters.servfail++;
      return localAnswer(query, questionEnd, dnssecOk, RCODE.SERVFAIL, { code: EDE.NETWORK_ERROR, text: 'cgfence proxy overloaded' });
    }
    const key = fairnessKey(client, origin);
    const mine = this.inFlightByClient.get(key) ?? 0;
    if (mine >= this.maxInFlightPerClient) {
      this.counters.shed++;
      this.counters.servfail++;
      return localAnswer(query, questionEnd, dnssecOk, RCODE.SERVFAIL, { code: EDE.NETWORK_ERROR, text: 'cgfence proxy: too many queries in flight from this client' });
    }
    if (this.inFlight >= this.maxInFlight) {
      this.counters.overloaded++;
      this.counters.servfail++;
      return localAnswer(query, questionEnd, dnssecOk, RCODE.SERVFAIL, { code: EDE.NETWORK_ERROR, text: 'cgfence proxy overloaded' });
    }
    this.inFlightByClient.set(key, mine + 1);
    this.inFlight++;
    return new Forwarded(this, query, questionEnd, dnssecOk, transport, client, key, qname, qtype, origin, entry);
  }

  /** A forwarded query is back (answer) or failed (err): it leaves the in-flight counts; the answer is inspected. */
  private afterUpstream(f: Forwarded, answer: Buffer | undefined, err: UpstreamError | undefined): Buffer {
    this.inFlight--;
    const left = (this.inFlightByClient.get(f.key) ?? 1) - 1;
    if (left <= 0) this.inFlightByClient.delete(f.key);
    else this.inFlightByClient.set(f.key, left);
    if (answer === undefined) {
      if (err?.code === 'UPSTREAM_TIMEOUT') this.counters.upstreamTimeouts++;
      this.counters.servfail++;
      return f.local(RCODE.SERVFAIL, f.questionEnd, { code: EDE.NETWORK_ERROR, text: `upstream: ${err?.message ?? 'no answer'}` });
    }
    this.counters.forwarded++;
    return this.inspectAnswer(f, answer);
  }

  /**
   * The one place an upstream answer is looked at before it goes to the
   * client, for both transports (issue 13's CNAME/DNAME screen belongs
   * here). Returns what the client gets.
   */
  private inspectAnswer(asked: Forwarded, answer: Buffer): Buffer {
    // Its CNAME/DNAME chain (dns-answer.ts), for allowed names (a listed name in audit mode was recorded already).
    return asked.entry === undefined ? this.screenChain(answer, asked) : answer;
  }

  /**
   * An allowed name's upstream answer whose chain (CNAME/DNAME targets, owner
   * names of the answer records) reaches a listed name: NXDOMAIN in enforce
   * mode, passed and recorded as "would have blocked" in audit mode; the event
   * names the asked name (qname) and the listed name it led to (cnameTarget).
   * An answer that cannot be read within ANSWER_CAPS is SERVFAIL in enforce
   * mode (fail closed), passed in audit mode; both counted.
   */
  private screenChain(answer: Buffer, asked: AskedQuery): Buffer {
    const policy = this.policy;
    if (policy === undefined || policy.matcher.size === 0 || this.options.screenAnswers === false) return answer;
    const verdict = screenAnswer(answer, policy.matcher, asked.qname);
    if (verdict.verdict === 'clean') return answer;
    const mode = this.mode;
    if (verdict.verdict === 'unreadable') {
      this.counters.answersUnreadable++;
      if (mode !== 'enforce') return answer;
      this.counters.servfail++;
      return asked.local(RCODE.SERVFAIL, asked.questionEnd, { code: EDE_OTHER, text: `cgfence: upstream answer unreadable (${verdict.problem})` });
    }
    this.emit(this.eventListeners, {
      kind: mode === 'enforce' ? 'dns_block' : 'dns_audit',
      qname: asked.qname,
      qtype: asked.qtype,
      entry: verdict.entry.value,
      cnameTarget: verdict.name,
      client: plainClient(asked.client),
      transport: asked.transport,
      process: asked.origin ? this.describe(asked.origin) : undefined,
      policy: { version: policy.version, hash: policy.hash },
      time: this.clock(),
    });
    // The listed name's own addresses, resolved by the agent as if it had been asked (docs/threat-model.md).
    if (verdict.entry.resolve === true && this.learner) void this.learner.learn(verdict.name, verdict.entry.value);
    this.counters.chainListed++;
    if (mode === 'enforce') {
      this.counters.blocked++;
      return asked.local(RCODE.NXDOMAIN, asked.questionEnd, {
        code: EDE.BLOCKED,
        text: `blocked by cgfence policy ${policy.version}: ${verdict.entry.value} (via ${verdict.name})`,
      });
    }
    this.counters.audited++;
    return answer;
  }

  /**
   * /proc details of the process that sent a listed query, read at most once
   * a second per process: a process flooding listed names would otherwise
   * cost three /proc reads per query.
   */
  private describe(origin: AttributedProcess): ProcessDetails {
    const key = `${origin.tgid}/${origin.pid}/${origin.comm}/${origin.cgroupId}`;
    const now = performance.now();
    const hit = this.processCache.get(key);
    if (hit && now - hit.at < PROCESS_CACHE_MS) return hit.details;
    const details = describeProcess(origin, this.reader);
    if (this.processCache.size >= PROCESS_CACHE_ENTRIES) this.processCache.clear();
    this.processCache.set(key, { details, at: now });
    return details;
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

/**
 * A query sent upstream: what its answer needs (the client, the decision's
 * inputs for the answer hook) and, on the UDP path, the pool's waiter for it,
 * so a query in flight is this one object.
 */
class Forwarded implements UpstreamWaiter {
  /** UDP: the listener socket the answer goes back on (undefined: the core's, client is a CoreClient). */
  socket: dgram.Socket | undefined = undefined;
  /** performance.now() when the query arrived. */
  started = 0;

  constructor(
    private readonly proxy: DnsProxy,
    readonly query: Buffer,
    readonly questionEnd: number,
    /** undefined: the query had no OPT record (the answer carries none either). */
    readonly dnssecOk: boolean | undefined,
    readonly transport: DnsTransport,
    readonly client: DnsClient,
    /** Whose in-flight share it counts against. */
    readonly key: string | number,
    readonly qname: string,
    readonly qtype: string,
    readonly origin: AttributedProcess | undefined,
    /** The listed entry it matched in audit mode (forwarded all the same); undefined when allowed. */
    readonly entry: BlocklistEntry | undefined,
  ) {}

  settle(answer: Buffer | undefined, err: UpstreamError | undefined): void {
    this.proxy.settleUdp(this, answer, err);
  }

  /** A local answer to this query (SERVFAIL, NXDOMAIN), with an Extended DNS Error when the query had EDNS. */
  local(rcode: number, questionEnd: number, ede?: { code: number; text: string }): Buffer {
    return localAnswer(this.query, questionEnd, this.dnssecOk, rcode, ede);
  }
}

function localAnswer(query: Buffer, questionEnd: number, dnssecOk: boolean | undefined, rcode: number, ede?: { code: number; text: string }): Buffer {
  return buildLocalAnswer(query, questionEnd, { rcode, edns: dnssecOk !== undefined ? { dnssecOk, ede } : undefined });
}

/** The client as events carry it (the UDP path passes node's rinfo, which has more fields). */
function plainClient(client: DnsClient): DnsClient {
  return { address: client.address, port: client.port };
}

/**
 * dgram's address lookup for answers: the address is always the IP literal a
 * datagram came from, so no dns.lookup (and its nextTick) per answer. dgram
 * passes the socket's family (4 or 6) as the second argument.
 */
function literalLookup(address: string, family: number, callback: (err: Error | null, address: string, family: number) => void): void {
  callback(null, address, family);
}

/** What screenChain needs of the query an answer is for. */
interface AskedQuery {
  readonly qname: string;
  readonly qtype: string;
  readonly client: DnsClient;
  readonly transport: DnsTransport;
  readonly origin: AttributedProcess | undefined;
  readonly questionEnd: number;
  readonly local: (rcode: number, questionEnd: number, ede?: { code: number; text: string }) => Buffer;
}

function isTruncated(answer: Buffer): boolean {
  return answer.length >= 4 && (answer[2] & 0x02) !== 0;
}

/** The proxy's counters with the core's added: what it answered by itself, and the queries it forwarded (counted as their notices arrive). */
function withCoreStats(s: DnsProxyStats, c: ForwardCoreStats): DnsProxyStats {
  const shed = c.clientShed + c.queueFull;
  return {
    ...s,
    queries: s.queries + shed + c.inFlightFull + c.tooLarge,
    forwarded: s.forwarded + c.fastAnswers,
    coreForwarded: s.coreForwarded + c.fastAnswers,
    servfail: s.servfail + shed + c.inFlightFull + c.timeouts + c.answersUnchecked,
    upstreamTimeouts: s.upstreamTimeouts + c.timeouts,
    formerr: s.formerr + c.tooLarge,
    limitExceeded: s.limitExceeded + c.tooLarge,
    overloaded: s.overloaded + c.inFlightFull,
    upstreamStray: s.upstreamStray + c.stray,
    malformed: s.malformed + c.queueFullDropped,
    shed: s.shed + shed,
    inFlight: s.inFlight + c.inFlight,
    latencyBuckets: s.latencyBuckets.map((n, i) => n + (c.latencyBuckets[i] ?? 0)),
    latencySumMs: s.latencySumMs + c.latencySumUs / 1000,
  };
}

/** Whose share of the in-flight queries a query counts against: the process the kernel named, else the source address and port. */
function fairnessKey(client: DnsClient, origin: AttributedProcess | undefined): string | number {
  return origin !== undefined && origin.tgid > 0 ? origin.tgid : `addr:${client.address}:${client.port}`;
}
