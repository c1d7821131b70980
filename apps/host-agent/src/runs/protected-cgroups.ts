import { existsSync, readdirSync, rmdirSync, statSync } from 'node:fs';
import { isAbsolute, join, posix, relative } from 'node:path';
import type { Logger } from 'pino';
import { attachCgroupLinks, cgroupLinkState, detachCgroupLinks } from '@cgfence/bpf';
import type { ProtectedCgroupStatus } from '@cgfence/proto';
import type { RunLabels, RunLookup } from '../journal/journal-record';

/** How often configured cgroups are checked for coming and going (a service start or stop). */
export const PROTECT_POLL_MS = 2000;

/** Synthetic runs remembered for attribution (each service start is one); the oldest are forgotten first. */
export const MAX_SYNTHETIC_RUNS = 1024;

/** The labels-file key (fleet mode) naming cgroups to protect, comma-separated. */
export const PROTECT_LABEL = 'cgfence.protect-cgroups';

const UNIT = /\.(service|scope|slice|socket|mount|swap|target)$/;

export class ProtectCgroupError extends Error {}

/**
 * A `--protect-cgroup` value as a path relative to the cgroup v2 root
 * (`system.slice/deployd.service`); absolute paths inside the root are taken
 * too. Refuses the root, `..`, and the deploy cgroup or anything above or
 * below it (its runs have their programs already).
 */
export function normalizeProtectedPath(value: string, cgroupRoot: string, deployCgroupName: string): string {
  let rel = value.trim();
  // A path under the mount point is taken as is; any other absolute path is
  // read from the hierarchy's root, as /proc/PID/cgroup and systemd write them.
  if (isAbsolute(rel) && (rel === cgroupRoot || rel.startsWith(`${cgroupRoot}/`))) rel = relative(cgroupRoot, rel);
  rel = posix.normalize(rel.replace(/^\/+/, '')).replace(/\/+$/, '');
  if (rel === '' || rel === '.') throw new ProtectCgroupError(`--protect-cgroup ${value}: the cgroup root itself cannot be protected (every process on the host is in it)`);
  if (rel.split('/').includes('..')) throw new ProtectCgroupError(`--protect-cgroup ${value}: ".." is not allowed`);
  const deploy = deployCgroupName.replace(/^\/+|\/+$/g, '');
  if (rel === deploy || rel.startsWith(`${deploy}/`) || deploy.startsWith(`${rel}/`)) {
    throw new ProtectCgroupError(`--protect-cgroup ${value}: overlaps the deploy cgroup ${deploy}, whose runs are protected already`);
  }
  return rel;
}

/** Values from `--protect-cgroup` (repeatable) and the fleet labels file's `cgfence.protect-cgroups=a,b`, normalised, deduplicated, not nested. */
export function protectedPaths(values: readonly string[], cgroupRoot: string, deployCgroupName: string): string[] {
  const out = [...new Set(values.flatMap((v) => v.split(',')).filter((v) => v.trim() !== '').map((v) => normalizeProtectedPath(v, cgroupRoot, deployCgroupName)))];
  for (const a of out) {
    const inner = out.find((b) => b.startsWith(`${a}/`));
    if (inner) throw new ProtectCgroupError(`--protect-cgroup ${inner} is inside --protect-cgroup ${a}: give the outer one only`);
  }
  return out.sort();
}

interface Entry {
  readonly path: string;
  readonly labels: RunLabels;
  cgroupId?: bigint;
  error?: string;
}

export interface ProtectedCgroupsOptions {
  readonly cgroupRoot: string;
  /** Relative paths (protectedPaths()). */
  readonly paths: readonly string[];
  /** The deploy cgroup's pin dir: its pinned links name the programs. */
  readonly sourcePinDir: string;
  /** Where the links of protected cgroups are pinned, one dir per cgroup (`<pin dir>-protected`; bpffs names cannot hold a dot). */
  readonly pinRoot: string;
  readonly logger: Logger;
}

/** A cgroup path as one bpffs file name: bpffs refuses "." in names, so it is escaped like "/". */
function pinName(path: string): string {
  return encodeURIComponent(path).replace(/\./g, '%2E');
}

/** The pin dir of the protected cgroups of a deploy cgroup's pin dir. */
export function protectedPinRoot(pinDir: string): string {
  return `${pinDir}-protected`;
}

/**
 * Existing cgroups (a deploy daemon's service, a container's scope) under the
 * same programs as the deploy cgroup. Each check attaches to the configured
 * cgroups that exist, forgets the ones that went away (the kernel detached
 * their links) and detaches cgroups no longer configured. Each start of a
 * service is a new cgroup, so a new cgroup id: that is its synthetic run
 * (`cgroup-<id>`), labelled `cgroup=<path>` and `unit=<name>` for events.
 */
export class ProtectedCgroups implements RunLookup {
  private readonly entries: Entry[];
  private readonly byId = new Map<bigint, { runId: string; labels: RunLabels }>();

  constructor(private readonly o: ProtectedCgroupsOptions) {
    this.entries = o.paths.map((path) => {
      const unit = posix.basename(path);
      return { path, labels: { cgroup: `/${path}`, ...(UNIT.test(unit) ? { unit } : {}) } };
    });
  }

  private pinDirOf(path: string): string {
    return join(this.o.pinRoot, pinName(path));
  }

  /** Brings the kernel in line with the configuration; never throws (a failure is in status() and the log). */
  reconcile(): void {
    const wanted = new Set(this.entries.map((e) => pinName(e.path)));
    for (const name of existsSync(this.o.pinRoot) ? readdirSync(this.o.pinRoot) : []) {
      if (wanted.has(name)) continue;
      try {
        detachCgroupLinks(join(this.o.pinRoot, name));
        this.o.logger.info({ cgroup: `/${decodeURIComponent(name)}` }, 'protected cgroup removed from the configuration: programs detached');
      } catch (err) {
        this.o.logger.warn({ err: (err as Error).message }, 'could not detach a cgroup no longer protected');
      }
    }
    for (const e of this.entries) this.check(e);
  }

  private check(e: Entry): void {
    const abs = join(this.o.cgroupRoot, e.path);
    const pinDir = this.pinDirOf(e.path);
    if (!existsSync(abs)) {
      if (e.cgroupId !== undefined || existsSync(pinDir)) {
        // The service stopped: the kernel detached the links with the cgroup; drop the pins.
        try {
          detachCgroupLinks(pinDir);
        } catch (err) {
          this.o.logger.warn({ cgroup: `/${e.path}`, err: (err as Error).message }, 'could not unpin the links of a removed cgroup');
        }
        if (e.cgroupId !== undefined) this.o.logger.info({ cgroup: `/${e.path}`, runId: `cgroup-${e.cgroupId}` }, 'protected cgroup is gone (service stopped); waiting for it');
      }
      e.cgroupId = undefined;
      e.error = undefined;
      return;
    }
    try {
      // The common case, every 2 s: the same cgroup, every link still on it. Nothing to do.
      if (e.cgroupId !== undefined && statSync(abs, { bigint: true }).ino === e.cgroupId) {
        const now = cgroupLinkState(pinDir);
        if (now.complete && now.cgroupId === e.cgroupId) return;
      }
      const r = attachCgroupLinks({ sourcePinDir: this.o.sourcePinDir, cgroupPath: abs, pinDir });
      if (r.cgroupId !== e.cgroupId) {
        const runId = `cgroup-${r.cgroupId}`;
        this.byId.set(r.cgroupId, { runId, labels: e.labels });
        for (const old of this.byId.keys()) {
          if (this.byId.size <= MAX_SYNTHETIC_RUNS) break;
          this.byId.delete(old);
        }
        this.o.logger.info({ cgroup: `/${e.path}`, unit: e.labels['unit'], runId, adopted: !r.attachedNow }, 'protecting cgroup');
      }
      e.cgroupId = r.cgroupId;
      e.error = undefined;
    } catch (err) {
      // Gone between the check and the attach is a stop, not a failure.
      if (!existsSync(abs)) return this.check(e);
      if (e.error !== (err as Error).message) this.o.logger.error({ cgroup: `/${e.path}`, err: (err as Error).message }, 'cannot protect cgroup');
      e.error = (err as Error).message;
      e.cgroupId = undefined;
    }
  }

  byCgroupId(cgroupId: bigint): { runId: string; labels: RunLabels } | undefined {
    return this.byId.get(cgroupId);
  }

  status(): ProtectedCgroupStatus[] {
    return this.entries.map((e) => ({
      path: `/${e.path}`,
      unit: e.labels['unit'] ?? null,
      state: e.error !== undefined ? 'failed' : e.cgroupId !== undefined ? 'protected' : 'waiting',
      cgroupId: e.cgroupId?.toString() ?? null,
      runId: e.cgroupId !== undefined ? `cgroup-${e.cgroupId}` : null,
      ...(e.error !== undefined ? { error: e.error } : {}),
    }));
  }

  /** Detaches every protected cgroup of a pin root (`cgfence agent teardown`). */
  static teardown(pinRoot: string): string[] {
    if (!existsSync(pinRoot)) return [];
    const detached: string[] = [];
    for (const name of readdirSync(pinRoot)) {
      detachCgroupLinks(join(pinRoot, name));
      detached.push(`/${decodeURIComponent(name)}`);
    }
    rmdirSync(pinRoot);
    return detached;
  }
}
