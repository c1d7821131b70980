import { Inject, Injectable, OnApplicationShutdown, OnModuleInit } from '@nestjs/common';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { AgentConfig, PID_FILE, runningAgentPid } from '../agent/agent-config';
import { AGENT_CONFIG } from './tokens';

/**
 * The state directory and its pid file: one agent per state directory. First
 * to start (a global module), last to stop; the pid file also goes when the
 * process exits without a shutdown (a failed start).
 */
@Injectable()
export class StateDirLock implements OnModuleInit, OnApplicationShutdown {
  private readonly pidFile: string;
  private readonly removeOnExit = () => this.release();

  constructor(@Inject(AGENT_CONFIG) private readonly config: AgentConfig) {
    this.pidFile = join(config.stateDir, PID_FILE);
  }

  onModuleInit(): void {
    const dir = this.config.stateDir;
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const running = runningAgentPid(dir);
    if (running !== undefined && running !== process.pid) throw new Error(`an agent (pid ${running}) is already running with state dir ${dir}`);
    writeFileSync(this.pidFile, `${process.pid}\n`);
    process.once('exit', this.removeOnExit);
  }

  onApplicationShutdown(): void {
    process.removeListener('exit', this.removeOnExit);
    this.release();
  }

  private release(): void {
    if (runningAgentPid(this.config.stateDir) === process.pid) rmSync(this.pidFile, { force: true });
  }
}
