import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, readdirSync, renameSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { newEventId } from '../journal/event-id';
import type { RunLabels, RunLookup } from '../journal/journal-record';
import { cgroupIdOf, isPopulated, removeCgroupTree } from './cgroup-fs';

export type RunState = 'running' | 'finished' | 'reaped';

export interface RunRecord {
  readonly runId: string;
  readonly labels: RunLabels;
  /** Absolute path of the run's cgroup: <deployCgroup>/run-<runId>. */
  readonly cgroupPath: string;
  /** The kernel's cgroup id (inode of the cgroup directory), as events carry it. */
  readonly cgroupId: bigint;
  readonly createdAt: string;
  readonly state: RunState;
  readonly finishedAt: string | null;
  /** Exit code of the run's command; null when unknown (killed, adopted after a restart). */
  readonly exitCode: number | null;
  readonly reapedAt: string | null;
  /** The command line `cgfence run` started (absent for adopted runs and old records). */
  readonly command?: string | null;
  /** Whom the command runs as: the caller's uid (SO_PEERCRED) or `--user`'s (absent for adopted runs and old records). */
  readonly uid?: number;
  /** That uid's user name (the uid as text when it has none). */
  readonly user?: string;
}

/** Whom a run's command runs as. */
export interface RunOwner {
  readonly uid: number;
  readonly user: string;
}

export type RunRegistryErrorCode = 'RUN_NOT_FOUND' | 'RUN_NOT_RUNNING' | 'INVALID_LABELS' | 'CGROUP_FAILED';

export class RunRegistryError extends Error {
  constructor(
    readonly code: RunRegistryErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'RunRegistryError';
  }
}

export interface RunRegistryOptions {
  /** Absolute path of the deploy cgroup (inside the cgroup2 mount); created if missing. */
  readonly deployCgroup: string;
  /** Where runs.json is kept. */
  readonly stateDir: string;
  /** How long a reaped run is still known (so late events still find its labels). Default 24 h. */
  readonly keepReapedMs?: number;
  readonly now?: () => Date;
  readonly newRunId?: () => string;
  readonly logger?: Logger;
}

export interface ReapOptions {
  /**
   * Also end runs still marked running whose cgroup has been empty this long
   * after creation: their `cgfence run` died without reporting the exit.
   * Default: never.
   */
  readonly abandonedAfterMs?: number;
}

export interface ReapResult {
  /** Runs whose cgroup was removed. */
  readonly removed: string[];
  /** Finished runs whose cgroup still holds processes (left behind daemons). */
  readonly busy: string[];
  /** Runs this reap ended because they were abandoned (no exit reported): their summaries are due. */
  readonly abandoned: RunRecord[];
}

export const RUNS_FILE = 'runs.json';
const RUN_DIR_PREFIX = 'run-';
const LABEL_KEY = /^[A-Za-z0-9][A-Za-z0-9_./-]{0,62}$/;
// eslint-disable-next-line no-control-regex -- rejecting control characters is the point
const CONTROL = /[\u0000-\u001f\u007f]/;
const MAX_LABELS = 32;
const MAX_LABEL_VALUE = 256;

interface StoredRun extends Omit<RunRecord, 'cgroupId'> {
  readonly cgroupId: string;
}

interface StoredFile {
  readonly version: 1;
  readonly deployCgroup: string;
  readonly runs: StoredRun[];
}

export function validateLabels(labels: Readonly<Record<string, unknown>>): RunLabels {
  const keys = Object.keys(labels);
  if (keys.length > MAX_LABELS) throw new RunRegistryError('INVALID_LABELS', `at most ${MAX_LABELS} labels, got ${keys.length}`);
  const out: Record<string, string> = {};
  for (const key of keys) {
    const value = labels[key];
    if (!LABEL_KEY.test(key)) throw new RunRegistryError('INVALID_LABELS', `label key ${JSON.stringify(key)}: letters, digits, _ . / - only, at most 63`);
    if (typeof value !== 'string' || value.length > MAX_LABEL_VALUE || CONTROL.test(value)) {
      throw new RunRegistryError('INVALID_LABELS', `label ${key}: value must be a string of at most ${MAX_LABEL_VALUE} printable characters`);
    }
    out[key] = value;
  }
  return out;
}

/**
 * The runs of this host: one child cgroup of the deploy cgroup per
 * `cgfence run`. Maps the kernel's cgroup id (which events carry) back to the
 * run and its labels, and cleans up the cgroups of finished runs once they
 * are empty. Persisted in <stateDir>/runs.json, so a restarted agent still
 * knows its runs; run cgroups it finds that the file does not know (written
 * by an agent that crashed before saving) are adopted as finished runs, so
 * they are reaped too.
 */
export class RunRegistry implements RunLookup {
  private readonly runs = new Map<string, RunRecord>();
  private readonly byId = new Map<bigint, RunRecord>();
  private readonly file: string;
  private readonly now: () => Date;
  private readonly newRunId: () => string;

  constructor(private readonly options: RunRegistryOptions) {
    this.file = join(options.stateDir, RUNS_FILE);
    this.now = options.now ?? (() => new Date());
    this.newRunId = options.newRunId ?? newEventId;
    mkdirSync(options.stateDir, { recursive: true, mode: 0o750 });
    mkdirSync(options.deployCgroup, { recursive: true });
    this.load();
    this.reconcile();
  }

  get deployCgroup(): string {
    return this.options.deployCgroup;
  }

  /** Makes the run's cgroup and records the run. Put the command in it with addProcess. */
  create(labels: Readonly<Record<string, string>> = {}, command?: string, owner?: RunOwner): RunRecord {
    const valid = validateLabels(labels);
    const runId = this.newRunId();
    const cgroupPath = join(this.options.deployCgroup, `${RUN_DIR_PREFIX}${runId}`);
    try {
      mkdirSync(cgroupPath);
    } catch (err) {
      throw new RunRegistryError('CGROUP_FAILED', `cannot create cgroup ${cgroupPath}: ${(err as Error).message}`);
    }
    const run: RunRecord = {
      runId,
      labels: valid,
      cgroupPath,
      cgroupId: cgroupIdOf(cgroupPath),
      createdAt: this.now().toISOString(),
      state: 'running',
      finishedAt: null,
      exitCode: null,
      reapedAt: null,
      ...(command !== undefined ? { command } : {}),
      ...(owner !== undefined ? { uid: owner.uid, user: owner.user } : {}),
    };
    this.put(run);
    this.save();
    return run;
  }

  /** Moves a process (and the threads of it) into the run's cgroup. Its children are born there. */
  addProcess(runId: string, pid: number): void {
    const run = this.require(runId);
    if (run.state !== 'running') throw new RunRegistryError('RUN_NOT_RUNNING', `run ${runId} is ${run.state}`);
    try {
      writeFileSync(join(run.cgroupPath, 'cgroup.procs'), `${pid}\n`);
    } catch (err) {
      throw new RunRegistryError('CGROUP_FAILED', `cannot move pid ${pid} into ${run.cgroupPath}: ${(err as Error).message}`);
    }
  }

  get(runId: string): RunRecord | undefined {
    return this.runs.get(runId);
  }

  list(): RunRecord[] {
    return [...this.runs.values()].sort((a, b) => (a.createdAt < b.createdAt ? -1 : a.createdAt > b.createdAt ? 1 : 0));
  }

  byCgroupId(cgroupId: bigint): RunRecord | undefined {
    return this.byId.get(cgroupId);
  }

  finish(runId: string, exitCode: number | null): RunRecord {
    const run = this.require(runId);
    if (run.state !== 'running') throw new RunRegistryError('RUN_NOT_RUNNING', `run ${runId} is already ${run.state}`);
    const done: RunRecord = { ...run, state: 'finished', finishedAt: this.now().toISOString(), exitCode };
    this.put(done);
    this.save();
    return done;
  }

  /** Removes the cgroups of finished runs that no process lives in any more. */
  reap(options: ReapOptions = {}): ReapResult {
    const removed: string[] = [];
    const busy: string[] = [];
    const abandoned: RunRecord[] = [];
    const nowMs = this.now().getTime();
    for (const run of [...this.runs.values()]) {
      let current = run;
      if (current.state === 'running' && options.abandonedAfterMs !== undefined) {
        const age = nowMs - Date.parse(current.createdAt);
        if (age >= options.abandonedAfterMs && (!existsSync(current.cgroupPath) || !isPopulated(current.cgroupPath))) {
          current = { ...current, state: 'finished', finishedAt: this.now().toISOString(), exitCode: null };
          this.put(current);
          abandoned.push(current);
          this.options.logger?.warn({ runId: current.runId }, 'run abandoned: its cgroup is empty and no exit was reported');
        }
      }
      if (current.state !== 'finished') continue;
      if (existsSync(current.cgroupPath)) {
        if (isPopulated(current.cgroupPath)) {
          busy.push(current.runId);
          continue;
        }
        try {
          removeCgroupTree(current.cgroupPath);
        } catch (err) {
          // A process may have been moved in meanwhile: try again next time.
          this.options.logger?.warn({ runId: current.runId, err: (err as Error).message }, 'could not remove run cgroup');
          busy.push(current.runId);
          continue;
        }
      }
      this.put({ ...current, state: 'reaped', reapedAt: this.now().toISOString() });
      removed.push(current.runId);
    }
    this.forgetOldReaped(nowMs);
    this.save();
    return { removed, busy, abandoned };
  }

  private require(runId: string): RunRecord {
    const run = this.runs.get(runId);
    if (!run) throw new RunRegistryError('RUN_NOT_FOUND', `no run ${runId}`);
    return run;
  }

  private put(run: RunRecord): void {
    this.runs.set(run.runId, run);
    this.byId.set(run.cgroupId, run);
  }

  private forgetOldReaped(nowMs: number): void {
    const keep = this.options.keepReapedMs ?? 24 * 3600 * 1000;
    for (const run of [...this.runs.values()]) {
      if (run.state === 'reaped' && run.reapedAt !== null && nowMs - Date.parse(run.reapedAt) > keep) {
        this.runs.delete(run.runId);
        if (this.byId.get(run.cgroupId) === run) this.byId.delete(run.cgroupId);
      }
    }
  }

  private load(): void {
    if (!existsSync(this.file)) return;
    let stored: StoredFile;
    try {
      stored = JSON.parse(readFileSync(this.file, 'utf8')) as StoredFile;
      if (stored.version !== 1 || !Array.isArray(stored.runs)) throw new Error('unknown format');
    } catch (err) {
      // Losing the labels of past runs is better than an agent that cannot
      // start; keep the bad file for a human to look at.
      const aside = `${this.file}.corrupt-${Date.now()}`;
      renameSync(this.file, aside);
      this.options.logger?.error({ err: (err as Error).message, file: aside }, 'run registry file unreadable; starting empty');
      return;
    }
    for (const r of stored.runs) this.put({ ...r, cgroupId: BigInt(r.cgroupId) });
  }

  /** Brings the records in line with the cgroups that exist. */
  private reconcile(): void {
    let changed = false;
    const known = new Set([...this.runs.values()].map((r) => r.cgroupPath));
    for (const entry of readdirSync(this.options.deployCgroup, { withFileTypes: true })) {
      if (!entry.isDirectory() || !entry.name.startsWith(RUN_DIR_PREFIX)) continue;
      const cgroupPath = join(this.options.deployCgroup, entry.name);
      if (known.has(cgroupPath)) continue;
      const at = this.now().toISOString();
      this.put({
        runId: entry.name.slice(RUN_DIR_PREFIX.length),
        labels: {},
        cgroupPath,
        cgroupId: cgroupIdOf(cgroupPath),
        createdAt: at,
        state: 'finished',
        finishedAt: at,
        exitCode: null,
        reapedAt: null,
      });
      changed = true;
    }
    for (const run of [...this.runs.values()]) {
      if (run.state !== 'reaped' && !existsSync(run.cgroupPath)) {
        this.put({ ...run, state: 'reaped', finishedAt: run.finishedAt ?? this.now().toISOString(), reapedAt: this.now().toISOString() });
        changed = true;
      }
    }
    if (changed) this.save();
  }

  private save(): void {
    const stored: StoredFile = {
      version: 1,
      deployCgroup: this.options.deployCgroup,
      runs: this.list().map((r) => ({ ...r, cgroupId: r.cgroupId.toString() })),
    };
    const tmp = `${this.file}.tmp`;
    const fd = openSync(tmp, 'w', 0o640);
    try {
      writeSync(fd, `${JSON.stringify(stored, null, 2)}\n`);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, this.file);
  }
}
