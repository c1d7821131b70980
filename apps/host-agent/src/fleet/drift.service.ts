import { BeforeApplicationShutdown, Inject, Injectable, OnApplicationBootstrap } from '@nestjs/common';
import type { Logger } from 'pino';
import { compareIpPolicy } from '@cgfence/bpf';
import type { AgentConfig } from '../agent/agent-config';
import { AGENT_CONFIG, AGENT_LOGGER } from '../app/tokens';
import { DataPlaneService } from '../data-plane/data-plane.service';
import type { SinkStatus } from './fleet-client';
import { PolicyService } from '../policy/policy.service';

/**
 * Compares the kernel's IP maps with what this agent applied (every
 * --drift-check-ms, fleet mode) and alerts when they part.
 */
@Injectable()
export class DriftService implements OnApplicationBootstrap, BeforeApplicationShutdown {
  current: SinkStatus['drift'] = null;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    @Inject(AGENT_CONFIG) private readonly config: AgentConfig,
    @Inject(AGENT_LOGGER) private readonly logger: Logger,
    private readonly dataPlane: DataPlaneService,
    private readonly policy: PolicyService,
  ) {}

  onApplicationBootstrap(): void {
    const every = this.config.driftCheckMs ?? 0;
    if (every <= 0) return;
    this.timer = setInterval(() => this.check(), every);
    this.timer.unref();
    this.check(); // a baseline for status and the first report
  }

  beforeApplicationShutdown(): void {
    clearInterval(this.timer);
  }

  check(): SinkStatus['drift'] {
    if (!this.dataPlane.attached) return this.current;
    const plane = this.dataPlane.kernel;
    const applied = plane.appliedIpPolicyDigest();
    if (!applied) return this.current;
    const checkedAt = new Date().toISOString();
    let next: NonNullable<SinkStatus['drift']>;
    try {
      next = { ...compareIpPolicy(applied, plane.ipPolicyDigest()), checkedAt };
    } catch (err) {
      next = { drifted: true, detail: `cannot read the kernel's IP maps back: ${(err as Error).message}`, checkedAt };
    }
    const was = this.current?.drifted ?? false;
    if (next.drifted && (!was || next.detail !== this.current?.detail)) {
      const message = `IP policy drift: the kernel no longer holds what was applied (${this.policy.current.version}): ${next.detail}`;
      this.logger.error({ detail: next.detail }, message);
      this.policy.alert(message);
    } else if (!next.drifted && was) {
      this.logger.info('IP policy drift gone: the kernel holds what was applied');
    }
    this.current = next;
    return next;
  }
}
