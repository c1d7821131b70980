import { Inject, Injectable } from '@nestjs/common';
import type { AgentStatus, FleetAgentStatus } from '@cgfence/proto';
import type { AgentConfig } from '../agent/agent-config';
import { DeployCgroup } from '../app/deploy-cgroup.service';
import { AGENT_CONFIG } from '../app/tokens';
import { DataPlaneService } from '../data-plane/data-plane.service';
import { ProtectedCgroupsService } from '../data-plane/protected-cgroups.service';
import { DnsProxyService } from '../dns/dns-proxy.service';
import type { ShipperStatus } from '../events/event-shipper';
import { PolicyService } from '../policy/policy.service';
import { RunsService } from '../runs/runs.service';

export interface AgentHealth {
  readonly proxy: boolean;
  readonly kernel: boolean;
  readonly detail?: string;
}

/**
 * What `cgfence agent status` shows, and the health the fleet reports and
 * /readyz use. Fleet mode adds its sections (fleet link, spool) at start.
 */
@Injectable()
export class AgentStatusService {
  readonly startedAt = new Date();
  private fleet: (() => FleetAgentStatus) | undefined;
  private spool: (() => ShipperStatus) | undefined;

  constructor(
    @Inject(AGENT_CONFIG) private readonly config: AgentConfig,
    private readonly cgroup: DeployCgroup,
    private readonly dataPlane: DataPlaneService,
    private readonly proxy: DnsProxyService,
    private readonly policy: PolicyService,
    private readonly runs: RunsService,
    private readonly protectedCgroups: ProtectedCgroupsService,
  ) {}

  /** Fleet mode: the fleet link's section. */
  addFleetSection(section: () => FleetAgentStatus): void {
    this.fleet = section;
  }

  /** Fleet mode: the event spool's section. */
  addSpoolSection(section: () => ShipperStatus): void {
    this.spool = section;
  }

  /** status() with the proxy workers' counters asked for now (what `cgfence agent status` shows). */
  async freshStatus(): Promise<AgentStatus> {
    await this.proxy.stats();
    return this.status();
  }

  /** The agent's state; a proxy pool's counters as its workers last sent them. */
  status(): AgentStatus {
    const counters: Record<string, string> = {};
    const plane = this.dataPlane.kernel;
    for (const [k, v] of Object.entries(plane.counters())) counters[`kernel_${k}`] = v.toString();
    // Per refused DNS port (--refused-dns-ports); these refusals are also in kernel_ip_blocks / kernel_ip_audits.
    for (const [port, n] of plane.dnsPortRefusals()) counters[`kernel_dns_port_${port}_refused`] = String(n);
    // Per refused unix socket (--refused-unix-sockets), and whether the kernel can refuse them at all (Linux 6.7+).
    for (const [path, n] of plane.unixRefusals()) counters[`kernel_unix_refused:${path}`] = String(n);
    // A pool sums its workers' counters (and those of workers that died).
    for (const [k, v] of Object.entries(this.proxy.statsNow() ?? {})) if (typeof v === 'number' && k !== 'latencySumMs') counters[`dns_${k}`] = String(v);
    const pool = this.proxy.pool;
    if (pool) {
      counters['dns_workers'] = String(pool.workerPids().length);
      counters['dns_worker_restarts'] = String(pool.restartCount);
    }
    const p = this.policy.current;
    const kinds = { domain: 0, wildcard: 0, cidr4: 0, cidr6: 0 };
    for (const e of p.entries) kinds[e.kind]++;
    return {
      host: this.config.host,
      pid: process.pid,
      startedAt: this.startedAt.toISOString(),
      cgroup: { path: this.cgroup.path, controllers: this.cgroup.limits.controllers, limits: this.cgroup.limits.applied, limitsNote: this.cgroup.limits.note },
      programs: plane.attachedPrograms(),
      adoptedPins: plane.adopted,
      pinDir: this.cgroup.pinDir,
      policy: {
        source: this.policy.source.description,
        version: p.version,
        hash: p.hash,
        domains: kinds.domain,
        wildcards: kinds.wildcard,
        cidr4: kinds.cidr4,
        cidr6: kinds.cidr6,
        loadedAt: this.policy.loaded.toISOString(),
        lastError: this.policy.error,
      },
      mode: this.policy.mode,
      failMode: this.config.failMode,
      proxy: { port: this.proxy.port, upstream: this.config.upstream, healthy: this.dataPlane.proxyHealthy },
      counters,
      runs: { active: this.runs.activeCount() },
      protectedCgroups: this.protectedCgroups.status(),
      unixGuard: plane.unixGuardStatus(),
      ...(this.fleet ? { fleet: this.fleet() } : {}),
      ...(this.spool ? { spool: this.spool() } : {}),
    };
  }

  /** The kernel programs still attached, and the proxy heartbeat fresh. */
  health(): AgentHealth {
    const missing = this.dataPlane.missingPrograms();
    const kernel = this.dataPlane.attached && missing.length === 0;
    let detail = missing.length > 0 ? `programs detached: ${missing.join(', ')}` : this.dataPlane.attached ? undefined : 'data plane not attached';
    if (!this.dataPlane.proxyHealthy) detail = [detail, 'DNS proxy heartbeat went stale'].filter(Boolean).join('; ');
    return { proxy: this.dataPlane.proxyHealthy, kernel, ...(detail ? { detail } : {}) };
  }

  /** Blocked and audited DNS queries and IP attempts since start (what the block-rate gate compares). */
  blockEvents(): number {
    if (!this.dataPlane.attached) return 0;
    const dns = this.proxy.statsNow();
    const kernel = this.dataPlane.kernel.counters();
    return (dns ? dns.blocked + dns.audited : 0) + Number((kernel['ip_blocks'] ?? 0n) + (kernel['ip_audits'] ?? 0n));
  }
}
