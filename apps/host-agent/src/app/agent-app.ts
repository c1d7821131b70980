import 'reflect-metadata';
import type { DynamicModule, INestApplicationContext, INestMicroservice } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { Logger } from 'pino';
import type { AgentConfig } from '../agent/agent-config';
import { AgentStatusService } from '../control/agent-status.service';
import { FleetClient } from '../fleet/fleet-client';
import type { FleetSettings } from '../fleet/fleet-config';
import { FleetBroadcastTransport } from '../fleet/fleet-transport';
import { PolicyService } from '../policy/policy.service';
import { AgentModule } from './agent.module';
import { PinoNestLogger } from '@cgfence/nest-pino';

export interface AgentAppOptions {
  /** Fleet mode: the policy server's settings; absent: standalone (config.policyFile). */
  readonly fleet?: FleetSettings;
  /** More modules (tests). */
  readonly imports?: DynamicModule['imports'];
}

/**
 * Boots the agent: the Nest application of the chosen composition, every
 * module started in dependency order (state dir, cgroup, journal, policy,
 * DNS proxy, data plane, fleet link, control socket). close() stops them in
 * the reverse order; pins and the deploy cgroup stay.
 */
export async function startAgentApp(config: AgentConfig, logger: Logger, opts: AgentAppOptions = {}): Promise<INestApplicationContext> {
  const nestLogger = new PinoNestLogger(logger, { nestLogLevel: 'debug' });
  let app: INestApplicationContext;
  if (opts.fleet) {
    // Fleet mode is a Nest microservice: the broadcast arrives through its NATS transport.
    const strategy = new FleetBroadcastTransport();
    const ms: INestMicroservice = await NestFactory.createMicroservice(AgentModule.fleet(config, logger, opts.fleet, opts.imports), {
      strategy,
      logger: nestLogger,
      abortOnError: false,
    });
    strategy.useConnectionsOf(ms.get(FleetClient));
    // listen() registers the handlers, runs the lifecycle hooks (start), then
    // the transport (ms.init() first would run the hooks twice).
    try {
      await ms.listen();
    } catch (err) {
      await ms.close().catch(() => undefined);
      throw err;
    }
    app = ms;
  } else {
    app = await NestFactory.createApplicationContext(AgentModule.standalone(config, logger, opts.imports), { logger: nestLogger, abortOnError: false });
  }
  const s = app.get(AgentStatusService).status();
  logger.info(
    { cgroup: s.cgroup.path, adoptedPins: s.adoptedPins, proxyPort: s.proxy.port, policy: s.policy.version, hash: s.policy.hash, mode: s.mode, failMode: s.failMode, source: s.policy.source },
    'cgfence agent running',
  );
  return app;
}

/** SIGHUP: reload the policy file, or ask the policy server. */
export function reloadOnSighup(app: INestApplicationContext, logger: Logger): () => void {
  const onHup = () => {
    logger.info({ why: 'SIGHUP' }, 'reload');
    app
      .get(PolicyService)
      .reload('SIGHUP')
      .catch((err: unknown) => logger.warn({ err }, 'reload failed'));
  };
  process.on('SIGHUP', onHup);
  return () => process.removeListener('SIGHUP', onHup);
}
