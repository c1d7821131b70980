import { BeforeApplicationShutdown, Inject, Injectable, OnApplicationBootstrap, OnModuleInit } from '@nestjs/common';
import type { Logger } from 'pino';
import type { AgentConfig } from '../agent/agent-config';
import { AGENT_CONFIG, AGENT_LOGGER, FLEET_SETTINGS } from '../app/tokens';
import { AgentStatusService } from '../control/agent-status.service';
import { PolicyService } from '../policy/policy.service';
import { DriftService } from './drift.service';
import { FleetClient, SinkStatus } from './fleet-client';
import { agentVersion, FleetSettings } from './fleet-config';

/**
 * The fleet link: the FleetClient (register, sync, chunk fetch, reports,
 * the desired-state broadcast) with the agent as its sink. Connects once the
 * agent enforces (the last good bundle was restored before), stops first.
 */
@Injectable()
export class FleetLinkService implements OnModuleInit, OnApplicationBootstrap, BeforeApplicationShutdown {
  readonly client: FleetClient;
  private spoolReport: (() => { pending: number; dropped: number }) | undefined;

  constructor(
    @Inject(AGENT_CONFIG) private readonly config: AgentConfig,
    @Inject(AGENT_LOGGER) logger: Logger,
    @Inject(FLEET_SETTINGS) settings: FleetSettings,
    private readonly policy: PolicyService,
    private readonly status: AgentStatusService,
    private readonly drift: DriftService,
  ) {
    this.client = new FleetClient({
      servers: settings.servers,
      ring: settings.ring,
      hostId: settings.hostId,
      labels: settings.labels,
      seedFile: settings.seedFile,
      stateDir: config.stateDir,
      logger,
      agentVersion: agentVersion(),
      syncIntervalMs: settings.syncIntervalMs,
      reportIntervalMs: settings.reportIntervalMs,
      reconnectWaitMs: settings.reconnectWaitMs,
      sink: {
        apply: (text, meta) => this.policy.applyText(text, meta),
        setModeOverride: (mode) => this.policy.setModeOverride(mode),
        status: () => this.sinkStatus(),
        alert: (message) => this.policy.alert(message),
      },
    });
  }

  onModuleInit(): void {
    this.status.addFleetSection(() => this.client.status());
  }

  onApplicationBootstrap(): void {
    this.client.start();
  }

  async beforeApplicationShutdown(): Promise<void> {
    await this.client.stop();
  }

  /** Event shipping: what the heartbeat report says of the spool. */
  reportSpool(report: () => { pending: number; dropped: number }): void {
    this.spoolReport = report;
  }

  private sinkStatus(): SinkStatus {
    return {
      mode: this.policy.mode,
      failMode: this.config.failMode,
      health: this.status.health(),
      drift: this.drift.current,
      blocks: this.status.blockEvents(),
      ...(this.spoolReport ? { spool: this.spoolReport() } : {}),
    };
  }
}
