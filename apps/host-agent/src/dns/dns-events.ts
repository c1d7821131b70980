import type { AttributedProcess, ProcessDetails } from './process-details';

export type ProxyMode = 'enforce' | 'audit';
export type DnsTransport = 'udp' | 'tcp';

export interface DnsClient {
  readonly address: string;
  readonly port: number;
}

/** A query the policy blocked (enforce) or would have blocked (audit). */
export interface DnsPolicyEvent {
  readonly kind: 'dns_block' | 'dns_audit';
  /** Normalised query name: lower case, A-labels, no trailing dot. */
  readonly qname: string;
  readonly qtype: string;
  /** The blocklist entry that matched, as written in the policy ('github.com', '*.github.com'). */
  readonly entry: string;
  /**
   * Set when the asked name (qname) was allowed but its upstream answer's
   * chain (a CNAME or DNAME target, or an answer record's owner name) is the
   * listed name that matched `entry` (normalised). Absent for a listed qname.
   */
  readonly cnameTarget?: string;
  readonly client: DnsClient;
  readonly transport: DnsTransport;
  /** Present when the kernel attributed the query to a process. */
  readonly process?: ProcessDetails;
  readonly policy: { readonly version: string; readonly hash: string };
  readonly time: Date;
}

export type QueryDecision = 'allowed' | 'blocked' | 'audited';

/** Every query the proxy resolved or refused, for the per-run "domains contacted" list. */
export interface DnsQueryNotice {
  readonly qname: string;
  readonly qtype: string;
  readonly decision: QueryDecision;
  readonly client: DnsClient;
  /** The kernel's attribution, without the /proc reads (cheap enough for every query). */
  readonly process?: AttributedProcess;
}

/** Counters since the proxy started; `inFlight` is a gauge. */
export interface DnsProxyStats {
  /** Well-formed queries handled (malformed packets are counted apart). */
  queries: number;
  /** Answers relayed from the upstream to the client. */
  forwarded: number;
  /** Answered NXDOMAIN by policy (enforce). */
  blocked: number;
  /** Would have been blocked, forwarded (audit). */
  audited: number;
  /** SERVFAIL answers of any cause: upstream timeout, upstream error, overload. */
  servfail: number;
  upstreamTimeouts: number;
  /** Unparseable packets, and responses sent to the proxy's listening port; dropped without answer. */
  malformed: number;
  /** Queries with a question count other than one: answered FORMERR. */
  formerr: number;
  /** Opcodes other than QUERY: answered NOTIMP. */
  notimp: number;
  /** Queries refused with SERVFAIL because `maxInFlight` was reached. */
  overloaded: number;
  /** Upstream datagrams that matched no query in flight (late or spoofed). */
  upstreamStray: number;
  /** Messages beyond a decode cap: too large, not exactly one question, or too many additional records (answered FORMERR, also in formerr), or a question name past its caps (labels, length, pointer hops or direction) or running off the message (dropped, also in malformed). */
  limitExceeded: number;
  /** Allowed queries answered SERVFAIL at once because the loop lagged or the client had its share in flight; also in servfail. */
  shed: number;
  /** Client TCP connections closed because the client did not read its answers. */
  tcpSlowReadersClosed: number;
  /** Client TCP connections closed because a frame was larger than the message cap. */
  tcpOversizedFrames: number;
  /** Times reading from a client TCP connection was paused for back-pressure. */
  tcpPaused: number;
  /** Answers to allowed names whose CNAME/DNAME chain reached a listed name (blocked or audited; also in blocked or audited). */
  chainListed: number;
  /** Upstream answers the chain check could not read within its caps: SERVFAIL in enforce mode (also in servfail), passed in audit mode. */
  answersUnreadable: number;
  /** Queries the UDP forwarding core forwarded, and answered, without JavaScript (also in queries and forwarded; 0 with the node engine). */
  coreForwarded: number;
  inFlight: number;
  /** Answers (and drops) per latency bucket, from the query's arrival (LATENCY_BOUNDS_MS; not cumulative). */
  latencyBuckets: number[];
  /** Sum of those latencies, in milliseconds. */
  latencySumMs: number;
}
