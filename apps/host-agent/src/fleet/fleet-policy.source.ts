import { Inject, Injectable } from '@nestjs/common';
import type { AgentConfig } from '../agent/agent-config';
import { AGENT_CONFIG } from '../app/tokens';
import { PolicySource, ReloadResult } from '../policy/policy-source';
import { FleetLinkService } from './fleet-link.service';

/**
 * Fleet mode's policy: the last good bundle from disk at boot (before NATS:
 * the host is protected even if the server is unreachable), then whatever the
 * server's signed desired state says; a reload asks the server.
 */
@Injectable()
export class FleetPolicySource extends PolicySource {
  readonly description: string;

  constructor(
    @Inject(AGENT_CONFIG) config: AgentConfig,
    private readonly link: FleetLinkService,
  ) {
    super();
    this.description = `fleet ${config.fleetServer ?? '(policy server)'}`;
  }

  async boot(): Promise<void> {
    await this.link.client.restoreLastGood();
  }

  async reload(): Promise<ReloadResult> {
    await this.link.client.syncNow();
    return { reloaded: true, error: this.link.client.status().lastError?.message };
  }
}
