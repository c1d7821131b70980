import { BeforeApplicationShutdown, Inject, Injectable, OnApplicationBootstrap } from '@nestjs/common';
import type { Logger } from 'pino';
import { findCgroup2Root } from '@cgfence/bpf';
import type { ProtectedCgroupStatus } from '@cgfence/proto';
import type { AgentConfig } from '../agent/agent-config';
import { DeployCgroup } from '../app/deploy-cgroup.service';
import { AGENT_CONFIG, AGENT_LOGGER } from '../app/tokens';
import { PROTECT_POLL_MS, ProtectedCgroups, protectedPinRoot } from '../runs/protected-cgroups';
import { RunsService } from '../runs/runs.service';

/**
 * `--protect-cgroup`: existing cgroups under the deploy cgroup's programs,
 * checked every PROTECT_POLL_MS once the data plane is attached (its pinned
 * links name the programs); their service starts count as runs for
 * attribution. Cgroups dropped from the configuration are detached at start.
 * The links stay pinned at shutdown, like the deploy cgroup's.
 */
@Injectable()
export class ProtectedCgroupsService implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private cgroups: ProtectedCgroups | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    @Inject(AGENT_CONFIG) private readonly config: AgentConfig,
    @Inject(AGENT_LOGGER) private readonly logger: Logger,
    private readonly cgroup: DeployCgroup,
    private readonly runs: RunsService,
  ) {}

  onApplicationBootstrap(): void {
    const cgroups = new ProtectedCgroups({
      cgroupRoot: findCgroup2Root(),
      paths: this.config.protectCgroups ?? [],
      sourcePinDir: this.cgroup.pinDir,
      pinRoot: protectedPinRoot(this.cgroup.pinDir),
      logger: this.logger,
    });
    this.cgroups = cgroups;
    this.runs.addLookup(cgroups);
    cgroups.reconcile();
    this.timer = setInterval(() => cgroups.reconcile(), PROTECT_POLL_MS);
    this.timer.unref();
  }

  beforeApplicationShutdown(): void {
    clearInterval(this.timer);
  }

  status(): ProtectedCgroupStatus[] {
    return this.cgroups?.status() ?? [];
  }
}
