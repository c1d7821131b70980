import { Inject, Injectable, OnModuleInit } from '@nestjs/common';
import { ModuleRef } from '@nestjs/core';
import type { Logger } from 'pino';
import { contentHash, parseBlocklistText } from '@cgfence/proto';
import type { AgentConfig, Mode } from '../agent/agent-config';
import type { PolicyMeta } from '../agent/policy-apply';
import { AGENT_CONFIG, AGENT_LOGGER } from '../app/tokens';
import type { FleetApplyMeta, SinkApplyResult } from '../fleet/fleet-client';
import { JournalService } from '../journal/journal.service';
import { alertRecord } from '../journal/journal-record';
import type { BlocklistEntry } from './entry-types';
import { createPolicy, formatPolicyErrors, Policy } from './policy';
import { PolicyEnforcer, PolicySource, ReloadResult } from './policy-source';

/** The policy of an agent that has none yet (fleet mode, before the first bundle). */
export function emptyPolicy(): Policy {
  return createPolicy([], { version: 'none', hash: contentHash([]) });
}

/**
 * The policy in force and the mode: what was applied last, when, the last
 * rejection, the server's audit override. Applies run one at a time, in the
 * order asked; until the data plane has attached (boot) an apply only sets
 * the policy the agent starts with.
 */
@Injectable()
export class PolicyService implements OnModuleInit {
  private policy: Policy = emptyPolicy();
  private loadedAt = new Date();
  private lastError: string | undefined;
  private modeOverride: Mode | undefined;
  private enforcer: PolicyEnforcer | undefined;
  private source_: PolicySource | undefined;
  private applying: Promise<unknown> = Promise.resolve();
  private readonly changeListeners = new Set<(p: Policy, ms: number) => void>();

  constructor(
    @Inject(AGENT_CONFIG) private readonly config: AgentConfig,
    @Inject(AGENT_LOGGER) private readonly logger: Logger,
    private readonly journal: JournalService,
    private readonly moduleRef: ModuleRef,
  ) {}

  /** The composition's policy source puts the boot policy in place before the proxy and the kernel start. */
  async onModuleInit(): Promise<void> {
    // The source lives in the composition's module (file or fleet), which imports this one.
    const source = this.moduleRef.get(PolicySource, { strict: false });
    this.source_ = source;
    await source.boot();
  }

  get current(): Policy {
    return this.policy;
  }

  get source(): PolicySource {
    if (!this.source_) throw new Error('no policy source yet');
    return this.source_;
  }

  get loaded(): Date {
    return this.loadedAt;
  }

  get error(): string | undefined {
    return this.lastError;
  }

  /** The mode in force: the server's audit override, else the configured one. */
  get mode(): Mode {
    return this.modeOverride ?? this.config.mode;
  }

  /** The data plane, once attached, puts every later policy and mode into force. */
  bindEnforcer(enforcer: PolicyEnforcer): void {
    this.enforcer = enforcer;
  }

  /** Called after each applied policy, with the apply's duration (metrics). */
  onChange(listener: (p: Policy, ms: number) => void): void {
    this.changeListeners.add(listener);
  }

  reload(why: string): Promise<ReloadResult> {
    return this.source.reload(why);
  }

  /**
   * Kernel first (tries built on a worker thread), then the DNS proxy; if the
   * kernel refuses, nothing changes anywhere and this throws. False when
   * `meta` declined (unchanged). Before the data plane attached: sets the
   * policy it starts with.
   */
  applyEntries(entries: readonly BlocklistEntry[], meta: PolicyMeta | (() => PolicyMeta | undefined)): Promise<boolean> {
    return this.serialized(async () => {
      const started = performance.now();
      let next: Policy | undefined;
      if (this.enforcer) next = await this.enforcer.apply(entries, meta);
      else {
        const m = typeof meta === 'function' ? meta() : meta;
        next = m === undefined ? undefined : createPolicy(entries, m);
      }
      if (!next) return false;
      this.policy = next;
      this.loadedAt = new Date();
      this.lastError = undefined;
      const ms = performance.now() - started;
      for (const l of this.changeListeners) l(next, ms);
      return true;
    });
  }

  /** A rejected policy: the last good one stays; the journal gets an alert. */
  rejected(message: string, why: string): void {
    this.lastError = message;
    this.logger.error({ why }, message);
    this.alert(`policy file rejected, keeping ${this.policy.version} (${this.policy.hash}): ${message}`);
  }

  /**
   * Parses and applies a bundle's content (fleet), all or nothing like a
   * policy file: kernel first, then the DNS proxy.
   */
  async applyText(text: string, meta: FleetApplyMeta): Promise<SinkApplyResult> {
    const label = `${meta.name} v${meta.version}`;
    let parsed: ReturnType<typeof parseBlocklistText>;
    try {
      parsed = parseBlocklistText(text);
    } catch (err) {
      return { ok: false, reason: 'malformed', message: `${label}: parser failed: ${(err as Error).message}` };
    }
    if (parsed.errors.length > 0) return { ok: false, reason: 'malformed', message: formatPolicyErrors(label, parsed.errors) };
    // The signed hash covers exactly these bytes: it names the policy.
    try {
      await this.applyEntries(parsed.entries, { version: label, hash: meta.hash });
    } catch (err) {
      return { ok: false, reason: 'apply-failed', message: `the kernel refused ${label}: ${(err as Error).message}` };
    }
    if (this.enforcer) this.logger.info({ version: this.policy.version, hash: this.policy.hash, revision: meta.revision }, 'fleet policy applied');
    return { ok: true };
  }

  /** The policy server's audit override: both the kernel and the DNS proxy switch. */
  setModeOverride(mode: Mode | undefined): void {
    this.modeOverride = mode;
    if (!this.enforcer) return;
    this.enforcer.setMode(this.mode);
    this.logger.info({ mode: this.mode, override: mode ?? null }, 'mode changed by the policy server');
  }

  /** An alert in the journal, naming the policy in force. */
  alert(message: string, time = new Date()): void {
    this.journal.record(alertRecord(message, this.journal.context(), { time, policy: { version: this.policy.version, hash: this.policy.hash } }));
  }

  private serialized<T>(task: () => Promise<T>): Promise<T> {
    const run = this.applying.then(task, task);
    this.applying = run.catch(() => undefined);
    return run;
  }
}
