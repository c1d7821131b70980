import { BeforeApplicationShutdown, Inject, Injectable, OnModuleInit } from '@nestjs/common';
import type { Logger } from 'pino';
import { LEARNED_MAX_ENTRIES, type ProcessInfo } from '@cgfence/bpf';
import type { AgentConfig } from '../agent/agent-config';
import { AGENT_CONFIG, AGENT_LOGGER } from '../app/tokens';
import { JournalService } from '../journal/journal.service';
import { recordFromDnsEvent } from '../journal/journal-record';
import type { Policy } from '../policy/policy';
import { PolicyService } from '../policy/policy.service';
import type { DnsProxyStats } from './dns-events';
import { DnsProxy } from './dns-proxy';
import { type DnsService, ProxyPool } from './proxy-pool';
import { DEFAULT_MAX_PER_ENTRY, HOSTS_FILE_RESERVE, LearnedAddressBudget } from './learned-budget';

/** What the proxy asks of the kernel: who sent a query, and where '!resolve' addresses go. */
export interface KernelForProxy {
  lookupDnsOrigin(port: number, id: number): ProcessInfo | undefined;
  learnAddresses(addrs: string[], ttlSeconds: number): unknown;
  readonly pinDir: string;
}

/**
 * The DNS proxy's lifecycle: one DnsProxy in this process, or a ProxyPool
 * (UDP in worker processes, TCP here). Queries never pass through Nest: this
 * only starts, configures and stops the plain classes, and journals their
 * block events. Starts before the data plane (the kernel redirects to its port).
 */
/** Learns kept while the data plane is not attached yet (the policy's '!resolve' names at start: one per name). */
const HELD_LEARNS_MAX = 4096;

@Injectable()
export class DnsProxyService implements OnModuleInit, BeforeApplicationShutdown {
  private proxy: DnsService | undefined;
  private kernel: KernelForProxy | undefined;
  port = 0;
  /** Addresses of '!resolve' names handed to the kernel since start. */
  learnedAddresses = 0;
  /** Addresses of '!resolve' names not learned because their entry's quota was full (each alerted). */
  learnedRefused = 0;
  /** Each '!resolve' entry's share of the kernel's learned-address map (learned-budget.ts). */
  private budget: LearnedAddressBudget | undefined;
  private readonly heldLearns: { addrs: string[]; ttl: number; entry: string; at: number }[] = [];

  constructor(
    @Inject(AGENT_CONFIG) private readonly config: AgentConfig,
    @Inject(AGENT_LOGGER) private readonly logger: Logger,
    private readonly policy: PolicyService,
    private readonly journal: JournalService,
  ) {}

  async onModuleInit(): Promise<void> {
    const c = this.config;
    const budget = new LearnedAddressBudget(
      (addrs, ttl) => {
        if (!this.kernel) return;
        this.kernel.learnAddresses(addrs, ttl);
        this.learnedAddresses += addrs.length;
      },
      (alert) => {
        this.logger.error({ entry: alert.entry, quota: alert.quota, refused: alert.refused }, alert.message);
        this.policy.alert(alert.message);
      },
      { capacity: LEARNED_MAX_ENTRIES - HOSTS_FILE_RESERVE, maxPerEntry: c.learnedPerEntry ?? DEFAULT_MAX_PER_ENTRY },
    );
    this.budget = budget;
    this.sizeBudget(this.policy.current);
    const options = {
      upstream: c.upstream,
      port: c.proxyPort,
      mode: this.policy.mode,
      policy: this.policy.current,
      upstreamTimeoutMs: c.upstreamTimeoutMs,
      attribution: { lookup: (port: number, id: number) => this.kernel?.lookupDnsOrigin(port, id) },
      addressBlocker: {
        learn: (addrs: string[], ttl: number, entry: string) => {
          if (!this.kernel) return this.holdUntilKernel(addrs, ttl, entry);
          this.learnedRefused += budget.learn(addrs, ttl, entry);
        },
      },
      ...(c.resolveTtlMinSeconds !== undefined ? { resolveTtl: { minSeconds: c.resolveTtlMinSeconds } } : {}),
      logger: this.logger,
    };
    const workers = c.proxyWorkers ?? 1;
    this.proxy = workers > 1 ? new ProxyPool({ ...options, workers }) : new DnsProxy({ ...options, udpEngine: c.dnsUdpEngine ?? 'core' });
    this.port = (await this.proxy.start()).port;
    this.proxy.onEvent((e) => this.journal.record(recordFromDnsEvent(e, this.journal.context())));
  }

  /** Stops answering before the data plane lets go of its maps. */
  async beforeApplicationShutdown(): Promise<void> {
    await this.proxy?.close();
    this.proxy = undefined;
  }

  /** The data plane, once attached: attribution and learned addresses go to it. */
  connectKernel(kernel: KernelForProxy): void {
    this.kernel = kernel;
    if (this.proxy instanceof ProxyPool) this.proxy.setAttributionPinDir(kernel.pinDir);
    // The policy's '!resolve' names are resolved as the proxy starts, before the data plane is attached.
    for (const held of this.heldLearns.splice(0)) {
      const left = held.ttl - (Date.now() - held.at) / 1000;
      if (left <= 0) continue;
      try {
        this.learnedRefused += this.budget?.learn(held.addrs, left, held.entry) ?? 0;
      } catch (err) {
        this.logger.error({ entry: held.entry, err: (err as Error).message }, 'learned addresses held until the kernel was attached could not be written');
      }
    }
  }

  /** Learned before the data plane was attached: kept (at most HELD_LEARNS_MAX) and written once it is. */
  private holdUntilKernel(addrs: string[], ttl: number, entry: string): void {
    if (this.heldLearns.length >= HELD_LEARNS_MAX) {
      this.logger.error({ entry, addresses: addrs.length }, 'learned addresses before the kernel was attached: too many held, these are not blocked');
      return;
    }
    this.heldLearns.push({ addrs: [...addrs], ttl, entry, at: Date.now() });
  }

  /** The plain proxy object (event shipping listens to its queries). */
  get service(): DnsService {
    if (!this.proxy) throw new Error('the DNS proxy is not running');
    return this.proxy;
  }

  get pool(): ProxyPool | undefined {
    return this.proxy instanceof ProxyPool ? this.proxy : undefined;
  }

  /** With workers, "the proxy lives" means at least one of them does (they answer all UDP). */
  alive(): boolean {
    const pool = this.pool;
    return this.proxy !== undefined && (pool === undefined || pool.workerPids().length > 0);
  }

  setPolicy(policy: Policy): void | Promise<void> {
    this.sizeBudget(policy);
    return this.service.setPolicy(policy);
  }

  private sizeBudget(policy: Policy): void {
    if (!this.budget) return;
    const { entries, quota } = this.budget.setPolicy(policy.entries);
    if (entries > 0) this.logger.info({ entries, quota }, "learned-address quota per '!resolve' entry");
  }

  setMode(mode: 'enforce' | 'audit'): void {
    this.service.setMode(mode);
  }

  /** Counters without waiting: a pool's as its workers last reported them (each second). */
  statsNow(): DnsProxyStats | undefined {
    const p = this.proxy;
    if (!p) return undefined;
    return p instanceof ProxyPool ? p.statsSnapshot() : (p as DnsProxy).stats();
  }

  /** Counters asked for now (a pool asks its workers). */
  async stats(): Promise<DnsProxyStats | undefined> {
    return this.proxy ? await this.proxy.stats() : undefined;
  }
}
