import { DynamicModule, Module } from '@nestjs/common';
import type { Logger } from 'pino';
import type { AgentConfig } from '../agent/agent-config';
import { ControlModule } from '../control/control.module';
import { DataPlaneModule } from '../data-plane/data-plane.module';
import { DnsModule } from '../dns/dns.module';
import { EventsModule } from '../events/events.module';
import type { FleetSettings } from '../fleet/fleet-config';
import { FleetModule } from '../fleet/fleet.module';
import { JournalModule } from '../journal/journal.module';
import { MetricsModule } from '../metrics/metrics.module';
import { PolicyFileModule } from '../policy/policy-file.module';
import { RunsModule } from '../runs/runs.module';
import { CoreModule } from './core.module';
import { FLEET_SETTINGS } from './tokens';

/** What both compositions hold: the agent's parts, one module per folder. */
const COMMON = [RunsModule, JournalModule, DnsModule, DataPlaneModule, ControlModule, MetricsModule];

/**
 * The host agent as two module compositions. Start order follows the
 * imports (a module starts after those it imports): state dir and deploy
 * cgroup, runs, journal, policy (the boot policy), DNS proxy, data plane
 * (kernel attached, policy applied, heartbeat), then status, fleet link,
 * event shipping and the control socket; stop order is the reverse.
 */
@Module({})
export class AgentModule {
  /** Standalone mode: the policy comes from a file. */
  static standalone(config: AgentConfig, logger: Logger, extra: DynamicModule['imports'] = []): DynamicModule {
    return { module: AgentModule, imports: [CoreModule.forRoot(config, logger), PolicyFileModule, ...COMMON, ...extra] };
  }

  /** Fleet mode: the policy comes from the policy server; events go to JetStream. */
  static fleet(config: AgentConfig, logger: Logger, settings: FleetSettings, extra: DynamicModule['imports'] = []): DynamicModule {
    return {
      module: AgentModule,
      imports: [CoreModule.forRoot(config, logger), FleetSettingsModule.forRoot(settings), FleetModule, EventsModule, ...COMMON, ...extra],
    };
  }
}

/** Fleet mode's settings, injectable anywhere (FLEET_SETTINGS). */
@Module({})
class FleetSettingsModule {
  static forRoot(settings: FleetSettings): DynamicModule {
    return { global: true, module: FleetSettingsModule, providers: [{ provide: FLEET_SETTINGS, useValue: settings }], exports: [FLEET_SETTINGS] };
  }
}
