import { ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { waitFor } from '@cgfence/devservices';
import { findCgroup2Root } from '@cgfence/bpf';
import { LoopbackUpstream, UpstreamRecords } from '../dns/testing/loopback-upstream';
import { JournalReader } from '../journal/event-journal';
import { isUnixRefusal, type JournalRecord } from '../journal/journal-record';

/** The `cgfence` executable, as users run it. */
export const CGFENCE = join(__dirname, '..', '..', '..', '..', 'cli', 'bin', 'cgfence');

export interface Ran {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** SIGTERM, SIGKILL after 10 s; resolves once the process has exited. */
export async function stopChild(p: ChildProcess | undefined): Promise<void> {
  if (!p || p.exitCode !== null || p.signalCode !== null) return;
  const exited = new Promise((r) => p.once('exit', r));
  p.kill('SIGTERM');
  const t = setTimeout(() => p.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(t);
}

/** Runs a process to completion (bounded by `timeoutMs`). */
export function exec(file: string, args: string[], opts: { input?: string; timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: ['pipe', 'pipe', 'pipe'], env: opts.env ?? process.env });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 30_000);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
    child.stdin.end(opts.input ?? '');
  });
}

export interface AgentOptions {
  /** Policy file text. */
  policy: string;
  mode?: 'enforce' | 'audit';
  failMode?: 'open' | 'closed';
  /** Names the local upstream answers (anything else: NXDOMAIN from upstream). */
  records?: Record<string, UpstreamRecords>;
  extraArgs?: string[];
  /** 'HOST:PORT' of an upstream started by the caller (a benchmark's dnsdist) instead of the loopback one's. */
  upstreamAddress?: string;
  /** Environment of the agent process (default: this process's), e.g. CGFENCE_AGENT_TUNING=off. */
  env?: NodeJS.ProcessEnv;
  /** node options before the `cgfence` script (`--trace-gc`, V8 flags to compare with the agent's own). */
  nodeArgs?: string[];
  /** Another tree's `cgfence` (a benchmark's baseline build), for the agent and every CLI call. Default CGFENCE. */
  cgfenceBin?: string;
}

/**
 * A real host agent (`cgfence agent`, a separate root process) with its own
 * deploy cgroup, pins, state directory and a local upstream DNS server on
 * loopback — never the machine's resolver. `stop()` removes all of it.
 */
/**
 * A block or audit of an address (method 'ip'), not a unix-guard refusal:
 * a shell started without HOME looks its user up, glibc tries nscd's socket
 * and the guard journals that refusal (method 'ip', destination 'unix:…').
 */
export function isAddressRecord(r: { method: string; destination: string | null }): boolean {
  return r.method === 'ip' && !isUnixRefusal(r);
}

export class AgentUnderTest {
  proc?: ChildProcess;
  log = '';

  private constructor(
    readonly dir: string,
    readonly cgroupName: string,
    readonly upstream: LoopbackUpstream,
    readonly opts: AgentOptions,
  ) {}

  static async start(opts: AgentOptions): Promise<AgentUnderTest> {
    const dir = mkdtempSync(join(tmpdir(), 'cgfence-agent-e2e-'));
    const records = opts.records ?? {};
    const upstream = await LoopbackUpstream.start((name) => records[name.toLowerCase().replace(/\.$/, '')]);
    const sut = new AgentUnderTest(dir, `cgf-e2e-${randomBytes(4).toString('hex')}`, upstream, opts);
    writeFileSync(sut.policyFile, opts.policy);
    try {
      await sut.launch();
    } catch (err) {
      await sut.stop();
      throw err;
    }
    return sut;
  }

  get stateDir(): string {
    return join(this.dir, 'state');
  }
  get policyFile(): string {
    return join(this.dir, 'policy.txt');
  }
  get cgroupPath(): string {
    return join(findCgroup2Root(), this.cgroupName);
  }

  /** Starts (or restarts) the agent process and waits until it answers. */
  async launch(): Promise<void> {
    const o = this.opts;
    const args = [
      ...(o.nodeArgs ?? []),
      o.cgfenceBin ?? CGFENCE, 'agent',
      '--policy-file', this.policyFile,
      '--upstream', o.upstreamAddress ?? this.upstream.address,
      '--mode', o.mode ?? 'enforce',
      '--fail-mode', o.failMode ?? 'open',
      '--cgroup', this.cgroupName,
      '--state-dir', this.stateDir,
      '--host', 'e2e-host',
      '--upstream-timeout-ms', '1000',
      // Agents of parallel runs share loopback: any free port, unless a test asks for one.
      ...(o.extraArgs?.includes('--metrics-listen') ? [] : ['--metrics-listen', '127.0.0.1:0']),
      ...(o.extraArgs ?? []),
    ];
    this.log = '';
    const proc = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env: o.env ?? process.env });
    proc.stdout?.on('data', (d: Buffer) => (this.log += d.toString()));
    proc.stderr?.on('data', (d: Buffer) => (this.log += d.toString()));
    this.proc = proc;
    await waitFor(`the agent to answer on its control socket (log:\n${this.log})`, async () => {
      if (proc.exitCode !== null) throw new Error(`agent exited with ${proc.exitCode}:\n${this.log}`);
      const r = await this.cli(['agent', 'status', '--json']);
      return r.code === 0;
    }, 60_000); // a 200,000-entry policy on a loaded 2-core machine takes ~20 s to start
  }

  /** `cgfence ARGS... --state-dir <ours>` (state dir appended where it is accepted). */
  cli(args: string[], opts: { input?: string; timeoutMs?: number } = {}): Promise<Ran> {
    const withState = args[0] === 'run' ? ['run', '--state-dir', this.stateDir, ...args.slice(1)] : [...args, '--state-dir', this.stateDir];
    return exec(process.execPath, [this.opts.cgfenceBin ?? CGFENCE, ...withState], opts);
  }

  /** `cgfence run [--label k=v]... -- COMMAND...` against this agent. */
  run(command: string[], opts: { labels?: Record<string, string>; input?: string; timeoutMs?: number } = {}): Promise<Ran> {
    const labels = Object.entries(opts.labels ?? {}).flatMap(([k, v]) => ['--label', `${k}=${v}`]);
    return this.cli(['run', ...labels, '--', ...command], opts);
  }

  events(): JournalRecord[] {
    return new JournalReader(this.stateDir).list();
  }

  async waitForEvent(what: string, pred: (r: JournalRecord) => boolean, timeoutMs = 10_000): Promise<JournalRecord> {
    let found: JournalRecord | undefined;
    await waitFor(what, async () => {
      found = this.events().find(pred);
      return found !== undefined;
    }, timeoutMs);
    return found!;
  }

  writePolicy(text: string): void {
    writeFileSync(this.policyFile, text);
  }

  signal(sig: NodeJS.Signals): void {
    this.proc?.kill(sig);
  }

  /** kill -9: no cleanup at all, as a crash. */
  async kill9(): Promise<void> {
    const p = this.proc;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const exited = new Promise((r) => p.once('exit', r));
    p.kill('SIGKILL');
    await exited;
  }

  async stopProcess(): Promise<void> {
    await stopChild(this.proc);
  }

  /** Stops the agent, kills anything left in its cgroups, tears down pins and cgroups, removes the directory. */
  async stop(): Promise<void> {
    await this.stopProcess();
    const kill = join(this.cgroupPath, 'cgroup.kill');
    if (existsSync(kill)) {
      try {
        writeFileSync(kill, '1');
      } catch {
        // cgroup.kill needs 5.14+; the teardown below reports leftovers.
      }
      await waitFor('the deploy cgroup to empty', async () => !/populated 1/.test(readFileSync(join(this.cgroupPath, 'cgroup.events'), 'utf8')), 5000).catch(() => undefined);
    }
    const down = await this.cli(['agent', 'teardown', '--cgroup', this.cgroupName]);
    await this.upstream.close();
    rmSync(this.dir, { recursive: true, force: true });
    if (down.code !== 0) throw new Error(`teardown failed: ${down.stderr}`);
  }
}
