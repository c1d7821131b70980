import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

export interface LimitsReport {
  /** Controllers enabled for the deploy cgroup. */
  controllers: string[];
  /** Limits in force, as read back from the kernel. */
  applied: Record<string, string>;
  /** Why a requested limit could not be applied (e.g. a hybrid host where the controller sits on cgroup v1). */
  note?: string;
}

const CONTROLLER_OF: Record<string, string> = { 'cpu.max': 'cpu', 'memory.max': 'memory', 'pids.max': 'pids' };

function readWords(path: string): string[] {
  return existsSync(path) ? readFileSync(path, 'utf8').trim().split(/\s+/).filter(Boolean) : [];
}

/**
 * Enables the controllers a requested limit needs (in the parent's
 * cgroup.subtree_control) and writes the limits. A controller that cgroup v2
 * does not have here (on hybrid hosts cpu, memory and pids often live on v1)
 * is reported plainly instead of failing the agent.
 */
export function applyLimits(cgroupPath: string, limits: Readonly<Record<string, string | undefined>>): LimitsReport {
  const parent = dirname(cgroupPath);
  const available = new Set(readWords(join(parent, 'cgroup.controllers')));
  const missing: string[] = [];
  const applied: Record<string, string> = {};
  for (const [file, value] of Object.entries(limits)) {
    if (value === undefined) continue;
    const controller = CONTROLLER_OF[file];
    if (!controller) throw new Error(`unknown limit ${file}`);
    if (!available.has(controller)) {
      missing.push(controller);
      continue;
    }
    const enabled = new Set(readWords(join(parent, 'cgroup.subtree_control')));
    if (!enabled.has(controller)) writeFileSync(join(parent, 'cgroup.subtree_control'), `+${controller}`);
    try {
      writeFileSync(join(cgroupPath, file), value);
    } catch (err) {
      throw new Error(`cannot set ${file}=${value} on ${cgroupPath}: ${(err as Error).message}`);
    }
    applied[file] = readFileSync(join(cgroupPath, file), 'utf8').trim();
  }
  const controllers = readWords(join(cgroupPath, 'cgroup.controllers'));
  const report: LimitsReport = { controllers, applied };
  if (missing.length > 0) {
    report.note = `cgroup v2 at ${parent} has no ${[...new Set(missing)].join(', ')} controller (available: ${[...available].join(', ') || 'none'}); those limits are NOT applied — on a hybrid host they live on cgroup v1`;
  }
  return report;
}

/** The controllers and limits a cgroup has now, for status. */
export function readLimits(cgroupPath: string): LimitsReport {
  const controllers = readWords(join(cgroupPath, 'cgroup.controllers'));
  const applied: Record<string, string> = {};
  for (const file of Object.keys(CONTROLLER_OF)) {
    const p = join(cgroupPath, file);
    if (existsSync(p)) applied[file] = readFileSync(p, 'utf8').trim();
  }
  return { controllers, applied };
}
