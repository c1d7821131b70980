import { DynamicModule, Global, Module } from '@nestjs/common';
import type { Logger } from 'pino';
import type { AgentConfig } from '../agent/agent-config';
import { DeployCgroup } from './deploy-cgroup.service';
import { StateDirLock } from './state-dir-lock.service';
import { AGENT_CONFIG, AGENT_LOGGER } from './tokens';

/**
 * What every module of the agent may inject: the validated configuration, the
 * logger, the state directory lock and the deploy cgroup. Global, so it starts
 * first and stops last.
 */
@Global()
@Module({})
export class CoreModule {
  static forRoot(config: AgentConfig, logger: Logger): DynamicModule {
    return {
      module: CoreModule,
      providers: [{ provide: AGENT_CONFIG, useValue: config }, { provide: AGENT_LOGGER, useValue: logger }, StateDirLock, DeployCgroup],
      exports: [AGENT_CONFIG, AGENT_LOGGER, StateDirLock, DeployCgroup],
    };
  }
}
