import { Injectable, OnModuleInit } from '@nestjs/common';
import { collectDefaultMetrics, Counter, Histogram, Registry } from 'prom-client';
import type { AgentStatus } from '@cgfence/proto';
import { AgentStatusService } from '../control/agent-status.service';
import { DataPlaneService } from '../data-plane/data-plane.service';
import { DnsProxyService } from '../dns/dns-proxy.service';
import { LATENCY_BOUNDS_MS } from '../dns/latency-histogram';
import { JournalService } from '../journal/journal.service';
import { isUnixRefusal } from '../journal/journal-record';
import { PolicyService } from '../policy/policy.service';
import { RunsService } from '../runs/runs.service';

/** The IPv4 prefilter's slots (one per /16). */
const PREFILTER_SLOTS = 65_536;

type Sample = { labels?: Record<string, string>; value: number };

/**
 * A metric whose values are read at scrape time from counters kept elsewhere
 * (the proxy's and the kernel's): prom-client formats it; nothing is copied
 * per query. Counters here are monotonic because their sources are.
 */
function pulled(name: string, help: string, type: 'counter' | 'gauge', read: () => Sample[]) {
  return {
    name,
    help,
    type,
    aggregator: 'sum' as const,
    get: () => ({ name, help, type, aggregator: 'sum' as const, values: read().map((s) => ({ labels: s.labels ?? {}, value: s.value })) }),
    reset: () => undefined,
  };
}

/**
 * The agent's Prometheus metrics (prom-client, a registry of its own): DNS
 * queries and answers, blocks and audits by method, proxy latency, kernel
 * counters, the policy in force, applies, learned addresses and the
 * prefilter's fill, and in fleet mode the spool and the fleet link. The DNS
 * and kernel numbers are read when scraped, from the counters the proxy and
 * the kernel keep anyway.
 */
@Injectable()
export class MetricsService implements OnModuleInit {
  readonly registry = new Registry();
  private snapshot: AgentStatus | undefined;
  private readonly blocks: Counter<'method' | 'action'>;
  private readonly alerts: Counter;
  private readonly runsStarted: Counter;
  private readonly applySeconds: Histogram;

  constructor(
    private readonly status: AgentStatusService,
    private readonly proxy: DnsProxyService,
    private readonly dataPlane: DataPlaneService,
    private readonly policy: PolicyService,
    private readonly journal: JournalService,
    private readonly runs: RunsService,
  ) {
    const r = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    this.blocks = new Counter({ name: 'cgfence_agent_blocks_total', help: 'Blocked (enforce) and audited (would have been blocked) attempts, by method (dns, ip, unix: a connect to a resolving daemon\'s socket)', labelNames: ['method', 'action'], registers: r });
    this.alerts = new Counter({ name: 'cgfence_agent_alerts_total', help: 'Alerts written to the journal (proxy heartbeat stale, policy rejected, drift, spool full)', registers: r });
    this.runsStarted = new Counter({ name: 'cgfence_agent_runs_started_total', help: 'Runs started with cgfence run', registers: r });
    this.applySeconds = new Histogram({
      name: 'cgfence_agent_policy_apply_seconds',
      help: 'Time to put a policy into force (kernel tries built and swapped, then the proxy)',
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: r,
    });
    // Every series from the start, so rate() and increase() see the first block.
    for (const method of ['dns', 'ip', 'unix']) for (const action of ['blocked', 'audited']) this.blocks.labels(method, action).inc(0);
    this.registerPulled();
  }

  onModuleInit(): void {
    this.journal.onRecord((rec) => {
      if (rec.action === 'alert') this.alerts.inc();
      // A unix guard refusal travels as method 'ip' with a unix: destination; here it is its own series,
      // so an IP block rate is only IP connects (a shell's nscd lookup is not one).
      else this.blocks.labels(isUnixRefusal(rec) ? 'unix' : rec.method, rec.action).inc();
    });
    this.runs.onStarted(() => this.runsStarted.inc());
    this.policy.onChange((_p, ms) => this.applySeconds.observe(ms / 1000));
  }

  /** The text exposition; the proxy workers' counters are asked for first. */
  async scrape(): Promise<string> {
    this.snapshot = await this.status.freshStatus();
    try {
      return await this.registry.metrics();
    } finally {
      this.snapshot = undefined;
    }
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  private registerPulled(): void {
    const s = () => this.snapshot ?? this.status.status();
    const dns = () => this.proxy.statsNow();
    const n = (v: string | undefined) => Number(v ?? 0);
    const add = (m: ReturnType<typeof pulled>) => this.registry.registerMetric(m as never);

    add(pulled('cgfence_agent_dns_queries_total', 'Well-formed DNS queries the proxy handled', 'counter', () => [{ value: dns()?.queries ?? 0 }]));
    add(
      pulled('cgfence_agent_dns_answers_total', 'DNS answers by decision: forwarded (allowed or audited), blocked (NXDOMAIN), servfail, formerr, notimp', 'counter', () => {
        const d = dns();
        return (['forwarded', 'blocked', 'servfail', 'formerr', 'notimp'] as const).map((k) => ({ labels: { decision: k }, value: d?.[k] ?? 0 }));
      }),
    );
    add(pulled('cgfence_agent_dns_audited_total', 'DNS queries the policy would have blocked, forwarded (audit mode)', 'counter', () => [{ value: dns()?.audited ?? 0 }]));
    add(pulled('cgfence_agent_dns_dropped_total', 'DNS packets dropped without an answer (malformed, or a response sent to the proxy)', 'counter', () => [{ value: dns()?.malformed ?? 0 }]));
    add(pulled('cgfence_agent_dns_overloaded_total', 'Queries refused with SERVFAIL because the in-flight cap was reached', 'counter', () => [{ value: dns()?.overloaded ?? 0 }]));
    add(pulled('cgfence_agent_dns_upstream_timeouts_total', 'Queries the upstream resolver did not answer in time (SERVFAIL)', 'counter', () => [{ value: dns()?.upstreamTimeouts ?? 0 }]));
    add(
      pulled('cgfence_agent_dns_upstream_errors_total', 'SERVFAIL answers for upstream failures other than timeouts', 'counter', () => {
        const d = dns();
        return [{ value: d ? Math.max(0, d.servfail - d.upstreamTimeouts - d.overloaded - d.shed) : 0 }];
      }),
    );
    add(pulled('cgfence_agent_dns_upstream_stray_total', 'Upstream datagrams that matched no query in flight (late or spoofed)', 'counter', () => [{ value: dns()?.upstreamStray ?? 0 }]));
    add(pulled('cgfence_agent_dns_limit_exceeded_total', 'DNS messages beyond a decode cap (size, question count, records: FORMERR; question name: dropped)', 'counter', () => [{ value: dns()?.limitExceeded ?? 0 }]));
    add(pulled('cgfence_agent_dns_shed_total', 'Allowed queries answered SERVFAIL at once: loop lag or the client had its share in flight', 'counter', () => [{ value: dns()?.shed ?? 0 }]));
    add(pulled('cgfence_agent_dns_tcp_paused_total', 'Times reading from a DNS TCP client was paused (pipelining or unread answers)', 'counter', () => [{ value: dns()?.tcpPaused ?? 0 }]));
    add(pulled('cgfence_agent_dns_tcp_slow_readers_closed_total', 'DNS TCP clients closed for not reading their answers', 'counter', () => [{ value: dns()?.tcpSlowReadersClosed ?? 0 }]));
    add(pulled('cgfence_agent_dns_tcp_oversized_frames_total', 'DNS TCP connections closed for a frame over the message cap', 'counter', () => [{ value: dns()?.tcpOversizedFrames ?? 0 }]));
    add(pulled('cgfence_agent_dns_core_forwarded_total', 'Queries the UDP forwarding core forwarded and answered without JavaScript (--dns-udp-engine core)', 'counter', () => [{ value: dns()?.coreForwarded ?? 0 }]));
    add(pulled('cgfence_agent_dns_chain_listed_total', 'Answers to allowed names whose CNAME/DNAME chain reached a listed name (NXDOMAIN in enforce, recorded in audit)', 'counter', () => [{ value: dns()?.chainListed ?? 0 }]));
    add(pulled('cgfence_agent_dns_answers_unreadable_total', 'Upstream answers the chain check could not read within its caps (SERVFAIL in enforce, passed in audit)', 'counter', () => [{ value: dns()?.answersUnreadable ?? 0 }]));
    add(pulled('cgfence_agent_dns_in_flight', 'Forwarded queries waiting for the upstream', 'gauge', () => [{ value: dns()?.inFlight ?? 0 }]));
    const latencyName = 'cgfence_agent_dns_latency_seconds';
    const latencyHelp = "Time from a query's arrival at the proxy to its answer (or drop)";
    this.registry.registerMetric({
      name: latencyName,
      help: latencyHelp,
      type: 'histogram',
      aggregator: 'sum',
      reset: () => undefined,
      get: () => {
        const d = dns();
        const buckets = d?.latencyBuckets ?? [];
        let cumulative = 0;
        const values = LATENCY_BOUNDS_MS.map((ms, i) => {
          cumulative += buckets[i] ?? 0;
          return { metricName: `${latencyName}_bucket`, labels: { le: ms / 1000 }, value: cumulative };
        });
        const count = buckets.reduce((a, b) => a + b, 0);
        values.push({ metricName: `${latencyName}_bucket`, labels: { le: '+Inf' as unknown as number }, value: count });
        return {
          name: latencyName,
          help: latencyHelp,
          type: 'histogram',
          aggregator: 'sum',
          values: [...values, { metricName: `${latencyName}_sum`, labels: {}, value: (d?.latencySumMs ?? 0) / 1000 }, { metricName: `${latencyName}_count`, labels: {}, value: count }],
        };
      },
    } as never);

    add(
      pulled('cgfence_agent_kernel_events_total', 'Kernel counters of the eBPF programs (dns_redirects, ip_blocks, skb_drops, ringbuf_lost, failopen_bypass, ...)', 'counter', () =>
        Object.entries(s().counters)
          .filter(([k]) => k.startsWith('kernel_'))
          .map(([k, v]) => ({ labels: { counter: k.slice('kernel_'.length) }, value: n(v) })),
      ),
    );
    add(
      pulled('cgfence_agent_unix_guard_active', "1 while the kernel refuses the deploy cgroup's connects to resolving daemons' unix sockets; 0 when off or unavailable (kernel before 6.7)", 'gauge', () => {
        const g = s().unixGuard;
        return [{ labels: { state: g?.state ?? 'off' }, value: g?.state === 'active' ? 1 : 0 }];
      }),
    );
    add(pulled('cgfence_agent_kernel_programs_attached', 'eBPF programs attached to the deploy cgroup', 'gauge', () => [{ value: s().programs.length }]));
    add(pulled('cgfence_agent_proxy_healthy', '1 while the kernel sees a fresh proxy heartbeat; 0 once it went stale (the fail mode applies)', 'gauge', () => [{ value: s().proxy.healthy ? 1 : 0 }]));
    add(
      pulled('cgfence_agent_policy_info', 'The policy in force (value 1): version, content hash, source, mode', 'gauge', () => {
        const p = s();
        return [{ labels: { version: p.policy.version, hash: p.policy.hash, source: p.policy.source, mode: p.mode, fail_mode: p.failMode }, value: 1 }];
      }),
    );
    add(
      pulled('cgfence_agent_policy_entries', 'Entries of the policy in force, by kind', 'gauge', () => {
        const p = s().policy;
        return [
          { labels: { kind: 'domain' }, value: p.domains },
          { labels: { kind: 'wildcard' }, value: p.wildcards },
          { labels: { kind: 'cidr4' }, value: p.cidr4 },
          { labels: { kind: 'cidr6' }, value: p.cidr6 },
        ];
      }),
    );
    add(pulled('cgfence_agent_policy_loaded_timestamp_seconds', 'When the policy in force was applied (Unix time)', 'gauge', () => [{ value: Date.parse(s().policy.loadedAt) / 1000 }]));
    add(pulled('cgfence_agent_policy_rejected', '1 while the last policy update was rejected (the previous one stays in force)', 'gauge', () => [{ value: s().policy.lastError ? 1 : 0 }]));
    add(pulled('cgfence_agent_learned_addresses_total', "Addresses of '!resolve' names the proxy handed to the kernel", 'counter', () => [{ value: this.proxy.learnedAddresses }]));
    add(pulled('cgfence_agent_learned_addresses_refused_total', "Addresses of '!resolve' names not learned because their entry's quota was full (alerted)", 'counter', () => [{ value: this.proxy.learnedRefused }]));
    add(
      pulled('cgfence_agent_kernel_prefilter_slots_marked', `IPv4 /16 prefilter slots marked (of ${PREFILTER_SLOTS}): the kernel map's fill`, 'gauge', () =>
        this.dataPlane.attached ? [{ value: this.dataPlane.kernel.ipPrefilterStatus().markedSlots }] : [],
      ),
    );
    add(pulled('cgfence_agent_runs_active', 'Runs (cgfence run) in progress', 'gauge', () => [{ value: s().runs.active }]));
    add(
      pulled('cgfence_agent_spool_bytes', 'Event spool: bytes of events not yet acknowledged by JetStream (fleet mode)', 'gauge', () => {
        const sp = s().spool;
        return sp ? [{ value: sp.bytes }] : [];
      }),
    );
    add(
      pulled('cgfence_agent_spool_max_bytes', 'Event spool: its bound (--spool-max-bytes)', 'gauge', () => {
        const sp = s().spool;
        return sp ? [{ value: sp.maxBytes }] : [];
      }),
    );
    add(
      pulled('cgfence_agent_spool_backlog_events', 'Event spool: events not yet acknowledged by JetStream', 'gauge', () => {
        const sp = s().spool;
        return sp ? [{ value: sp.pending }] : [];
      }),
    );
    add(
      pulled('cgfence_agent_spool_dropped_total', 'Event spool: events dropped because it was full (the oldest go first)', 'counter', () => {
        const sp = s().spool;
        return sp ? [{ value: sp.dropped }] : [];
      }),
    );
    add(
      pulled('cgfence_agent_spool_shipped_total', 'Event spool: events acknowledged by JetStream', 'counter', () => {
        const sp = s().spool;
        return sp ? [{ value: sp.shipped }] : [];
      }),
    );
    add(
      pulled('cgfence_agent_fleet_connected', "1 while connected to the policy server's NATS (fleet mode)", 'gauge', () => {
        const f = s().fleet;
        return f ? [{ value: f.connected ? 1 : 0 }] : [];
      }),
    );
    add(
      pulled('cgfence_agent_fleet_last_sync_age_seconds', 'Seconds since the last successful sync with the policy server (absent before the first)', 'gauge', () => {
        const f = s().fleet;
        return f?.lastSync?.ok ? [{ value: (Date.now() - Date.parse(f.lastSync.at)) / 1000 }] : [];
      }),
    );
    add(
      pulled('cgfence_agent_fleet_revision', 'Fleet revisions: server (at the last sync), seen (the newest desired state checked), applied (whose bundle is in force)', 'gauge', () => {
        const f = s().fleet;
        if (!f) return [];
        return [
          ...(f.lastSync?.ok && f.lastSync.revision !== undefined ? [{ labels: { which: 'server' }, value: f.lastSync.revision }] : []),
          ...(f.seenRevision !== null ? [{ labels: { which: 'seen' }, value: f.seenRevision }] : []),
          ...(f.applied ? [{ labels: { which: 'applied' }, value: f.applied.revision }] : []),
        ];
      }),
    );
    add(
      pulled('cgfence_agent_fleet_update_rejected', '1 while the last fleet update was rejected (the last good policy stays in force)', 'gauge', () => {
        const f = s().fleet;
        return f ? [{ value: f.lastError ? 1 : 0 }] : [];
      }),
    );
  }
}
