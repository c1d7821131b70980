import { ChildProcess, spawn, SpawnOptions } from 'node:child_process';
import { createWriteStream } from 'node:fs';

/** A child process whose output goes to a log file, stopped on demand. */
export class ManagedProcess {
  private exited: Promise<number | null>;

  constructor(readonly name: string, readonly child: ChildProcess) {
    this.exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
  }

  static start(name: string, cmd: string, args: string[], logFile: string, opts: SpawnOptions = {}): ManagedProcess {
    const log = createWriteStream(logFile, { flags: 'a' });
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
    // Two sources into one file: neither may end it (the first to close would, and the other's next write would throw).
    child.stdout?.pipe(log, { end: false });
    child.stderr?.pipe(log, { end: false });
    child.once('close', () => log.end());
    child.once('error', (err) => log.write(`spawn error: ${err.message}\n`));
    return new ManagedProcess(name, child);
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Resolves with the exit code once the process has ended. */
  wait(): Promise<number | null> {
    return this.exited;
  }

  /** SIGTERM, then SIGKILL if it has not ended within `graceMs`. */
  async stop(graceMs = 10_000, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    if (!this.running) return;
    this.child.kill(signal);
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
  }

  /** Kills at once, as a crash would. */
  async kill(): Promise<void> {
    if (!this.running) return;
    this.child.kill('SIGKILL');
    await this.exited;
  }
}
