import { BeforeApplicationShutdown, Inject, Injectable, OnApplicationBootstrap } from '@nestjs/common';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { CONTROL_SOCKET, ControlRequest, RunStarted } from '@cgfence/proto';
import { assertMayEnd, startRun } from '../runs/run-start';
import type { AgentConfig } from '../agent/agent-config';
import { ControlCaller, ControlServer } from '../agent/control-server';
import { AGENT_CONFIG, AGENT_LOGGER } from '../app/tokens';
import { PolicyService } from '../policy/policy.service';
import { RunsService } from '../runs/runs.service';
import { AgentStatusService } from './agent-status.service';

/**
 * The local control socket (<state-dir>/agent.sock; root, and members of
 * --run-group, identified by SO_PEERCRED): status, run start and end, reload.
 * Opens once everything else runs; closes first.
 */
@Injectable()
export class ControlService implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private server: ControlServer | undefined;

  constructor(
    @Inject(AGENT_CONFIG) private readonly config: AgentConfig,
    @Inject(AGENT_LOGGER) private readonly logger: Logger,
    private readonly status: AgentStatusService,
    private readonly runs: RunsService,
    private readonly policy: PolicyService,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    this.server = new ControlServer(join(this.config.stateDir, CONTROL_SOCKET), (req, caller) => this.handle(req, caller), { runGroup: this.config.runGroup });
    await this.server.listen();
  }

  async beforeApplicationShutdown(): Promise<void> {
    await this.server?.close();
    this.server = undefined;
  }

  async handle(req: ControlRequest, caller: ControlCaller): Promise<unknown> {
    switch (req.op) {
      case 'status':
        return this.status.freshStatus();
      case 'run.start': {
        const started: RunStarted = startRun(this.runs, req, caller);
        // The run record's command, secrets taken out (RunsService.create), not req.command.
        this.logger.info({ runId: started.runId, labels: req.labels, command: this.runs.registry.get(started.runId)?.command, pid: caller.pid, uid: started.uid, user: started.user }, 'run started');
        return started;
      }
      case 'run.end': {
        assertMayEnd(this.runs.registry, req.runId, caller);
        const run = this.runs.finish(req.runId, req.exitCode, req.signal);
        this.logger.info({ runId: run.runId, exitCode: req.exitCode, signal: req.signal }, 'run ended');
        return { runId: run.runId };
      }
      case 'reload': {
        const r = await this.policy.reload('control socket');
        const p = this.policy.current;
        return { reloaded: r.reloaded, version: p.version, hash: p.hash, error: r.error ?? this.policy.error };
      }
    }
  }
}
