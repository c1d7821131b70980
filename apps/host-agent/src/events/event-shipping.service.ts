import { Inject, Injectable, OnApplicationBootstrap, OnApplicationShutdown, OnModuleInit } from '@nestjs/common';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { AgentConfig } from '../agent/agent-config';
import { AGENT_CONFIG, AGENT_LOGGER, FLEET_SETTINGS } from '../app/tokens';
import { AgentStatusService } from '../control/agent-status.service';
import { DnsProxyService } from '../dns/dns-proxy.service';
import type { FleetSettings } from '../fleet/fleet-config';
import { FleetLinkService } from '../fleet/fleet-link.service';
import { JournalService } from '../journal/journal.service';
import { PolicyService } from '../policy/policy.service';
import { RunsService } from '../runs/runs.service';
import { AgentEvents } from './agent-events';
import { JetStreamTransport } from './jetstream-transport';
import { DEFAULT_SPOOL_MAX_BYTES } from './spool';

/**
 * Event shipping (fleet mode): every journal record and run summary goes to
 * JetStream through the disk spool (<state-dir>/spool), on the fleet link's
 * NATS connection. Stops after the proxy and the data plane, flushing what it can.
 */
@Injectable()
export class EventShippingService implements OnModuleInit, OnApplicationBootstrap, OnApplicationShutdown {
  readonly events: AgentEvents;
  private closed = false;

  constructor(
    @Inject(AGENT_CONFIG) config: AgentConfig,
    @Inject(AGENT_LOGGER) logger: Logger,
    @Inject(FLEET_SETTINGS) settings: FleetSettings,
    private readonly journal: JournalService,
    private readonly runs: RunsService,
    private readonly proxy: DnsProxyService,
    private readonly link: FleetLinkService,
    private readonly policy: PolicyService,
    private readonly status: AgentStatusService,
  ) {
    this.events = new AgentEvents({
      hostId: settings.hostId,
      cohort: config.cohort ?? null,
      transport: new JetStreamTransport(() => link.client.natsConnection()),
      spool: { dir: join(config.stateDir, 'spool'), maxBytes: settings.spoolMaxBytes ?? DEFAULT_SPOOL_MAX_BYTES },
      logger,
    });
  }

  onModuleInit(): void {
    // Records after the shipper closed (kernel events during shutdown) stay in the local journal only.
    this.journal.onRecord((r) => {
      if (!this.closed) this.events.record(r);
    });
    this.runs.onEnded(({ run, signal }) => this.events.runEnded(run, signal, this.policy.current.version));
    this.runs.onReaped((reaped) => this.events.reaped(reaped, this.policy.current.version));
    this.link.client.onConnected(() => this.events.wake());
    this.link.reportSpool(() => this.events.report());
    this.status.addSpoolSection(() => this.events.status());
  }

  onApplicationBootstrap(): void {
    this.events.start({ alert: (m) => this.policy.alert(m), proxy: this.proxy.service, runs: this.runs.registry });
  }

  async onApplicationShutdown(): Promise<void> {
    this.closed = true;
    await this.events.close();
  }
}
