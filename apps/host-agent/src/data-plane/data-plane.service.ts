import { Inject, Injectable, OnApplicationShutdown, OnModuleInit } from '@nestjs/common';
import type { Logger } from 'pino';
import { DataPlane, DataPlaneConfig, KernelEvent } from '@cgfence/bpf';
import type { AgentConfig, Mode } from '../agent/agent-config';
import { applyPolicy, type PolicyMeta } from '../agent/policy-apply';
import { DeployCgroup } from '../app/deploy-cgroup.service';
import { FirstOfEach } from './first-of-each';
import { AGENT_CONFIG, AGENT_LOGGER } from '../app/tokens';
import { DnsProxyService } from '../dns/dns-proxy.service';
import { describeProcess, procfsReader } from '../dns/process-details';
import { JournalService } from '../journal/journal.service';
import { alertRecord, recordFromIpBlock, UNIX_DESTINATION } from '../journal/journal-record';
import type { BlocklistEntry } from '../policy/entry-types';
import { policyNames, type Policy } from '../policy/policy';
import type { PolicyEnforcer } from '../policy/policy-source';
import { PolicyService } from '../policy/policy.service';

/** Cap on the (run, socket) pairs remembered as journaled; past it they are forgotten (a pair may be journaled again). */
export const UNIX_JOURNALED_MAX = 4096;

/**
 * The kernel half (libs/bpf DataPlane) on the deploy cgroup: attached (or
 * adopted from its pins) once the DNS proxy answers, the boot policy's IP
 * lists applied, kernel events journaled. From then on it is the policy's
 * enforcer: kernel first, then the proxy. At shutdown its links and maps stay
 * pinned: IP enforcement outlives the agent.
 */
@Injectable()
export class DataPlaneService implements OnModuleInit, OnApplicationShutdown, PolicyEnforcer {
  private plane: DataPlane | undefined;
  private expected: string[] = [];
  /** False once the kernel said the proxy heartbeat went stale. */
  proxyHealthy = true;
  /** (run cgroup, socket path) pairs whose unix-guard refusal is journaled already: the first one per run is; the kernel counts them all. */
  private readonly unixJournaled = new FirstOfEach(UNIX_JOURNALED_MAX);

  constructor(
    @Inject(AGENT_CONFIG) private readonly config: AgentConfig,
    @Inject(AGENT_LOGGER) private readonly logger: Logger,
    private readonly cgroup: DeployCgroup,
    private readonly proxy: DnsProxyService,
    private readonly policy: PolicyService,
    private readonly journal: JournalService,
  ) {}

  async onModuleInit(): Promise<void> {
    const plane = DataPlane.attach({
      cgroupPath: this.cgroup.path,
      pinDir: this.cgroup.pinDir,
      config: this.dataPlaneConfig(this.policy.mode),
      unixGuard: { paths: this.config.refusedUnixSockets, attachTypes: this.config.unixGuardAttachTypes },
    });
    this.plane = plane;
    this.reportUnixGuard(plane);
    this.proxy.connectKernel({
      pinDir: this.cgroup.pinDir,
      lookupDnsOrigin: (port, id) => plane.lookupDnsOrigin(port, id),
      learnAddresses: (addrs, ttl) => plane.learnAddresses(addrs, ttl),
    });
    // The heartbeat comes from a thread of its own (no DNS work can starve
    // it); the kernel also checks the proxy's socket (libs/bpf liveness.ts).
    // Started before the first apply, so a slow apply cannot let it go stale.
    const heartbeat = plane.startHeartbeat();
    heartbeat.catch(() => undefined); // awaited below; must not go unhandled if the apply throws first
    // On the trie builder thread, with the names of the kernel's backstop: the
    // proxy already answers meanwhile (and the thread is warm for reloads).
    await plane.applyIpPolicyAsync({ ...this.policy.current.cidrs, names: policyNames(this.policy.current.entries) });
    await heartbeat;
    plane.onEvent((e) => this.onKernelEvent(e));
    this.expected = plane.attachedPrograms();
    this.policy.bindEnforcer(this);
    this.logger.info(
      {
        cgroup: this.cgroup.path,
        adoptedPins: plane.adopted,
        proxyPort: this.proxy.port,
        policy: this.policy.current.version,
        hash: this.policy.current.hash,
        mode: this.policy.mode,
        failMode: this.config.failMode,
        source: this.policy.source.description,
      },
      'cgfence agent enforcing',
    );
  }

  onApplicationShutdown(): void {
    this.plane?.close();
    this.plane = undefined;
  }

  /** The attached DataPlane (libs/bpf). */
  get kernel(): DataPlane {
    if (!this.plane) throw new Error('the data plane is not attached');
    return this.plane;
  }

  get attached(): boolean {
    return this.plane !== undefined;
  }

  /** Programs attached at start that are no longer attached. */
  missingPrograms(): string[] {
    if (!this.plane) return [];
    const now = this.plane.attachedPrograms();
    return this.expected.filter((p) => !now.includes(p));
  }

  async apply(entries: readonly BlocklistEntry[], meta: PolicyMeta | (() => PolicyMeta | undefined)): Promise<Policy | undefined> {
    const applied = await applyPolicy(this.kernel, entries, meta, (p) => this.proxy.setPolicy(p));
    return applied?.policy;
  }

  setMode(mode: Mode): void {
    this.kernel.setConfig(this.dataPlaneConfig(mode));
    this.proxy.setMode(mode);
  }

  private dataPlaneConfig(mode: Mode): DataPlaneConfig {
    const c = this.config;
    return { proxyPort: this.proxy.port, mode, failMode: c.failMode, heartbeatTimeoutMs: c.heartbeatTimeoutMs, refusedDnsPorts: c.refusedDnsPorts, clientRate: c.clientRate };
  }

  /** Says plainly (log and journal alert) when the kernel cannot refuse the resolving daemons' sockets. */
  private reportUnixGuard(plane: DataPlane): void {
    const st = plane.unixGuardStatus();
    if (st.state !== 'unavailable') return;
    const message =
      'not covered on this kernel: names resolved by nscd, systemd-resolved (nss-resolve) or sssd over their unix sockets ' +
      `(${st.paths.join(', ')}) are looked up outside the deploy cgroup and never reach the DNS proxy; ` +
      `the cgroup connect_unix hook needs Linux 6.7 or later (${st.reason}). Everything else is enforced.`;
    this.logger.warn({ unixGuard: st }, message);
    this.journal.record(alertRecord(message, this.journal.context(), { time: new Date(), method: 'ip' }));
  }

  private onKernelEvent(e: KernelEvent): void {
    const ctx = this.journal.context();
    const policy = { version: this.policy.current.version, hash: this.policy.current.hash };
    if (e.kind === 'unix_refused' || e.kind === 'unix_audit') {
      // A connect to a resolving daemon's socket: glibc falls back to DNS on port 53 (the proxy decides the name).
      // glibc tries nscd on every user, group or host lookup of every
      // process, whether or not nscd runs: journal the first refusal of each
      // socket per run (cgroup), with its process; the kernel counts the rest
      // (kernel_unix_refused:<path>).
      if (!this.unixJournaled.admit(`${e.cgroupId}\u0000${e.kind}\u0000${e.daddr}`)) return;
      this.journal.record(
        recordFromIpBlock(
          { time: new Date(), audited: e.kind === 'unix_audit', destination: `${UNIX_DESTINATION}${e.daddr}`, process: describeProcess(e, procfsReader), policy },
          ctx,
        ),
      );
      return;
    }
    if (e.kind === 'name_drop') {
      // Queued by the kernel's name backstop while the proxy was down (fail open), read when the agent is back.
      this.journal.record(
        alertRecord(`DNS query for a listed (or unreadable) name dropped by the kernel while the DNS proxy was down; query to ${e.daddr}:${e.dport}`, ctx, {
          time: new Date(),
          process: describeProcess(e, procfsReader),
          policy,
        }),
      );
      return;
    }
    if (e.kind === 'proxy_down') {
      this.proxyHealthy = false;
      const what = this.config.failMode === 'open' ? 'DNS is not redirected (fail open)' : 'DNS fails (fail closed)';
      this.journal.record(
        alertRecord(`DNS proxy heartbeat stale: ${what}; query to ${e.daddr}:${e.dport}`, ctx, { time: new Date(), process: describeProcess(e, procfsReader), policy }),
      );
      return;
    }
    this.journal.record(
      recordFromIpBlock(
        {
          time: new Date(),
          audited: e.kind === 'ip_audit',
          destination: e.family === 6 ? `[${e.daddr}]:${e.dport}` : `${e.daddr}:${e.dport}`,
          process: describeProcess(e, procfsReader),
          policy,
        },
        ctx,
      ),
    );
  }
}
