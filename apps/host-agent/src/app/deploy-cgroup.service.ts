import { Inject, Injectable, OnModuleInit } from '@nestjs/common';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { ensureBpffs, findCgroup2Root } from '@cgfence/bpf';
import { AgentConfig, pinDirFor } from '../agent/agent-config';
import { applyLimits, LimitsReport } from '../agent/cgroup-limits';
import { StateDirLock } from './state-dir-lock.service';
import { AGENT_CONFIG, AGENT_LOGGER } from './tokens';

/**
 * The deploy cgroup (created if missing, its resource limits applied) and the
 * bpffs directory the data plane pins into. Neither is removed at shutdown:
 * enforcement outlives the agent (`cgfence agent teardown` removes them).
 */
@Injectable()
export class DeployCgroup implements OnModuleInit {
  path = '';
  pinDir = '';
  limits: LimitsReport = { controllers: [], applied: {} };

  constructor(
    @Inject(AGENT_CONFIG) private readonly config: AgentConfig,
    @Inject(AGENT_LOGGER) private readonly logger: Logger,
    // Started after the state directory is ours.
    readonly lock: StateDirLock,
  ) {}

  onModuleInit(): void {
    const bpffs = ensureBpffs();
    this.path = join(findCgroup2Root(), this.config.cgroupName);
    this.pinDir = pinDirFor(bpffs, this.config.cgroupName);
    mkdirSync(this.path, { recursive: true });
    this.limits = applyLimits(this.path, this.config.limits);
    if (this.limits.note) this.logger.warn(this.limits.note);
  }
}
