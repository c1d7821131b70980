// Finding the cgroup v2 hierarchy and the BPF filesystem from /proc/mounts.
import { mkdirSync, readFileSync } from 'node:fs';
import { libc } from './libbpf';

export interface MountEntry {
  source: string;
  mountPoint: string;
  fsType: string;
  options: string[];
}

/** /proc/mounts escapes space, tab, newline and backslash as octal (\040 ...). */
function unescapeMountField(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

/** Parses the text of /proc/mounts (or /proc/self/mounts). */
export function parseMounts(text: string): MountEntry[] {
  const entries: MountEntry[] = [];
  for (const line of text.split('\n')) {
    const fields = line.trim().split(/\s+/);
    if (fields.length < 4) continue;
    entries.push({
      source: unescapeMountField(fields[0]!),
      mountPoint: unescapeMountField(fields[1]!),
      fsType: fields[2]!,
      options: fields[3]!.split(','),
    });
  }
  return entries;
}

/**
 * The mount point of the cgroup v2 (unified) hierarchy. It is /sys/fs/cgroup
 * on pure v2 hosts and /sys/fs/cgroup/unified on hybrid ones; if several are
 * mounted, /sys/fs/cgroup wins, then the first listed.
 */
export function findCgroup2Root(mountsText?: string): string {
  const text = mountsText ?? readFileSync('/proc/mounts', 'utf8');
  const v2 = parseMounts(text).filter((m) => m.fsType === 'cgroup2');
  if (v2.length === 0) {
    throw new Error(
      'no cgroup2 filesystem in /proc/mounts: cgfence needs the cgroup v2 hierarchy ' +
        '(mount it with `mount -t cgroup2 none /sys/fs/cgroup` or boot with systemd.unified_cgroup_hierarchy=1)',
    );
  }
  return (v2.find((m) => m.mountPoint === '/sys/fs/cgroup') ?? v2[0]!).mountPoint;
}

/** True when `path` is itself a mount point of a filesystem of type `fsType`. */
export function isMountedAs(mountsText: string, path: string, fsType: string): boolean {
  const want = path.replace(/\/+$/, '') || '/';
  return parseMounts(mountsText).some((m) => m.mountPoint === want && m.fsType === fsType);
}

/** Mounts the BPF filesystem at `path` unless one is already mounted there. Returns `path`. */
export function ensureBpffs(path = '/sys/fs/bpf'): string {
  if (isMountedAs(readFileSync('/proc/mounts', 'utf8'), path, 'bpf')) return path;
  mkdirSync(path, { recursive: true });
  const rc = libc().mount('bpf', path, 'bpf', 0, null);
  if (rc !== 0) {
    const err = libc().errnoName();
    // Someone else may have mounted it between our check and our call.
    if (isMountedAs(readFileSync('/proc/mounts', 'utf8'), path, 'bpf')) return path;
    throw new Error(`ensureBpffs: mount -t bpf bpf ${path} failed: ${err} (needs root / CAP_SYS_ADMIN)`);
  }
  return path;
}
