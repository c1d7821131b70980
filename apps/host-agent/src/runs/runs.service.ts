import { BeforeApplicationShutdown, Inject, Injectable, OnApplicationBootstrap, OnModuleInit } from '@nestjs/common';
import type { Logger } from 'pino';
import { CommandRedactor, compileRedactPatterns } from '@cgfence/proto';
import type { AgentConfig } from '../agent/agent-config';
import { DeployCgroup } from '../app/deploy-cgroup.service';
import { AGENT_CONFIG, AGENT_LOGGER } from '../app/tokens';
import type { RunLookup } from '../journal/journal-record';
import { ReapResult, RunOwner, RunRecord, RunRegistry } from './run-registry';

const REAP_MS = 10_000;

export interface RunEnded {
  readonly run: RunRecord;
  readonly signal: string | null;
}

/**
 * The runs of the deploy cgroup (RunRegistry) and the timer that reaps the
 * abandoned ones. Others listen for ended and reaped runs (event shipping).
 */
@Injectable()
export class RunsService implements OnModuleInit, OnApplicationBootstrap, BeforeApplicationShutdown {
  private registry_: RunRegistry | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly endedListeners = new Set<(e: RunEnded) => void>();
  private readonly reapedListeners = new Set<(r: ReapResult) => void>();
  private readonly startedListeners = new Set<(run: RunRecord) => void>();
  private readonly lookups: RunLookup[] = [];
  /** Whom an event's cgroup id belongs to: a run, else what addLookup() added (protected cgroups' synthetic runs). */
  readonly lookup: RunLookup = {
    byCgroupId: (id) => this.registry_?.byCgroupId(id) ?? this.lookups.reduce<ReturnType<RunLookup['byCgroupId']>>((found, l) => found ?? l.byCgroupId(id), undefined),
  };

  private redactor: CommandRedactor | undefined;

  constructor(
    @Inject(AGENT_CONFIG) private readonly config: AgentConfig,
    @Inject(AGENT_LOGGER) private readonly logger: Logger,
    private readonly cgroup: DeployCgroup,
  ) {}

  get registry(): RunRegistry {
    if (!this.registry_) throw new Error('the run registry is not open yet');
    return this.registry_;
  }

  onModuleInit(): void {
    this.registry_ = new RunRegistry({ deployCgroup: this.cgroup.path, stateDir: this.config.stateDir, logger: this.logger });
  }

  onApplicationBootstrap(): void {
    this.timer = setInterval(() => this.reap(), REAP_MS);
    this.timer.unref();
  }

  beforeApplicationShutdown(): void {
    clearInterval(this.timer);
  }

  activeCount(): number {
    return this.registry_ ? this.registry_.list().filter((r) => r.state === 'running').length : 0;
  }

  /** `cgfence run` starts a command: a new run cgroup. */
  create(labels: Readonly<Record<string, string>>, command: string, owner?: RunOwner): RunRecord {
    // The run's command is kept in the state dir and shipped in its summary: secrets out first.
    this.redactor ??= new CommandRedactor(compileRedactPatterns(this.config.redactPatterns ?? []));
    const run = this.registry.create(labels, this.redactor.redact(command).text, owner);
    for (const l of this.startedListeners) l(run);
    return run;
  }

  onStarted(listener: (run: RunRecord) => void): void {
    this.startedListeners.add(listener);
  }

  /** `cgfence run` reported its command's end. */
  finish(runId: string, exitCode: number | null, signal: string | null): RunRecord {
    const run = this.registry.finish(runId, exitCode);
    for (const l of this.endedListeners) l({ run, signal });
    return run;
  }

  /** More cgroups that count as runs for attribution (protected cgroups). */
  addLookup(lookup: RunLookup): void {
    this.lookups.push(lookup);
  }

  onEnded(listener: (e: RunEnded) => void): void {
    this.endedListeners.add(listener);
  }

  onReaped(listener: (r: ReapResult) => void): void {
    this.reapedListeners.add(listener);
  }

  private reap(): void {
    try {
      const reaped = this.registry.reap({ abandonedAfterMs: 60_000 });
      for (const l of this.reapedListeners) l(reaped);
    } catch (err) {
      this.logger.warn({ err }, 'reaping run cgroups failed');
    }
  }
}
