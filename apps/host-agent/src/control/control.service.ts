import { BeforeApplicationShutdown, Inject, Injectable, OnApplicationBootstrap } from '@nestjs/common';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { CONTROL_SOCKET, ControlRequest, RunStarted } from '@cgfence/proto';
import type { AgentConfig } from '../agent/agent-config';
import { ControlServer } from '../agent/control-server';
import { AGENT_CONFIG, AGENT_LOGGER } from '../app/tokens';
import { PolicyService } from '../policy/policy.service';
import { RunsService } from '../runs/runs.service';
import { AgentStatusService } from './agent-status.service';

/**
 * The local control socket (<state-dir>/control.sock, root only): status,
 * run start and end, reload. Opens once everything else runs; closes first.
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
    this.server = new ControlServer(join(this.config.stateDir, CONTROL_SOCKET), (req) => this.handle(req));
    await this.server.listen();
  }

  async beforeApplicationShutdown(): Promise<void> {
    await this.server?.close();
    this.server = undefined;
  }

  async handle(req: ControlRequest): Promise<unknown> {
    switch (req.op) {
      case 'status':
        return this.status.freshStatus();
      case 'run.start': {
        const run = this.runs.create(req.labels, req.command.join(' '));
        this.logger.info({ runId: run.runId, labels: run.labels, command: req.command, pid: req.pid }, 'run started');
        const started: RunStarted = { runId: run.runId, cgroupPath: run.cgroupPath };
        return started;
      }
      case 'run.end': {
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
