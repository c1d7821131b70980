import { readFileSync, readdirSync, rmdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Where the cgroup v2 hierarchy is mounted, from /proc/mounts: /sys/fs/cgroup
 * on unified hosts, /sys/fs/cgroup/unified on hybrid ones. Undefined when
 * there is no cgroup2 mount.
 */
export function findCgroup2Mount(mountsText: string = readFileSync('/proc/mounts', 'utf8')): string | undefined {
  for (const line of mountsText.split('\n')) {
    const [, mountPoint, fsType] = line.split(' ');
    // /proc/mounts escapes spaces and the like as octal (\040).
    if (fsType === 'cgroup2' && mountPoint) return mountPoint.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8)));
  }
  return undefined;
}

/**
 * The kernel's id of a cgroup: on cgroup v2 it is the inode number of the
 * cgroup's directory (what bpf_get_current_cgroup_id() returns).
 */
export function cgroupIdOf(path: string): bigint {
  return statSync(path, { bigint: true }).ino;
}

/** Whether any process lives in the cgroup or its descendants ('populated' in cgroup.events). */
export function isPopulated(path: string): boolean {
  const events = readFileSync(join(path, 'cgroup.events'), 'utf8');
  const m = /^populated (\d)$/m.exec(events);
  if (!m) throw new Error(`${path}/cgroup.events has no 'populated' line`);
  return m[1] === '1';
}

/**
 * Removes a cgroup and any child cgroups made inside it, deepest first. A
 * cgroup directory is removed with rmdir even though it shows control files.
 * Fails (EBUSY) if a process still lives in it.
 */
export function removeCgroupTree(path: string): void {
  for (const entry of readdirSync(path, { withFileTypes: true })) {
    if (entry.isDirectory()) removeCgroupTree(join(path, entry.name));
  }
  rmdirSync(path);
}
