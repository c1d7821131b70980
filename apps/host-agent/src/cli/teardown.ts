import { existsSync, readdirSync, rmdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { DataPlane, ensureBpffs, findCgroup2Root } from '@cgfence/bpf';
import { pinDirFor, runningAgentPid } from '../agent/agent-config';
import { isPopulated, removeCgroupTree } from '../runs/cgroup-fs';
import { ProtectedCgroups, protectedPinRoot } from '../runs/protected-cgroups';

export interface TeardownResult {
  cgroup: string;
  pinDir: string;
  detached: boolean;
  removedCgroups: boolean;
  /** Cgroups kept because processes still live in them. */
  busy: string[];
  /** `--protect-cgroup` cgroups the programs were detached from. */
  protectedCgroups: string[];
}

/**
 * Returns a host to its state before cgfence: detaches and unpins everything
 * the agent attached, and removes its cgroups once they are empty. Refuses
 * while the agent of this state dir is running.
 */
export function teardown(cgroupName: string, stateDir: string): TeardownResult {
  const pid = runningAgentPid(stateDir);
  if (pid !== undefined) throw new Error(`the agent (pid ${pid}) is still running with state dir ${stateDir}: stop it first`);
  const cgroup = join(findCgroup2Root(), cgroupName);
  const pinDir = pinDirFor(ensureBpffs(), cgroupName);
  const hadPins = existsSync(pinDir);
  const protectedCgroups = ProtectedCgroups.teardown(protectedPinRoot(pinDir));
  if (existsSync(cgroup) || hadPins) DataPlane.teardown({ cgroupPath: cgroup, pinDir });
  // The shared bpffs folder of all cgfence agents goes too once the last one is gone.
  const shared = dirname(pinDir);
  if (existsSync(shared) && readdirSync(shared).length === 0) rmdirSync(shared);
  const busy: string[] = [];
  if (existsSync(cgroup)) {
    const walk = (dir: string): void => {
      for (const e of readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) walk(join(dir, e.name));
      if (isPopulated(dir)) busy.push(dir);
    };
    walk(cgroup);
    if (busy.length === 0) removeCgroupTree(cgroup);
  }
  rmSync(join(stateDir, 'agent.sock'), { force: true });
  return { cgroup, pinDir, detached: hadPins, removedCgroups: !existsSync(cgroup), busy, protectedCgroups };
}
