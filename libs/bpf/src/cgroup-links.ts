// One more cgroup under the same programs: attaches the programs of a data
// plane that is already attached (found through its pinned links) to another
// existing cgroup v2 directory, such as a systemd service's or a container's,
// with bpf links pinned in a pin dir of their own. The maps are shared, so a
// policy applied once holds in every attached cgroup. Nothing in DataPlane
// changes: the source links name the programs (prog id) and how they attach
// (attach type).
import { constants } from 'node:os';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, rmdirSync, statSync, unlinkSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { DataPlaneError, intStep } from './errors';
import { PROGRAMS } from './layout';
import { describeErrno, KERNEL_ABI, libbpf, libc } from './libbpf';
import { linkInfo } from './attachment';
import { findCgroup2Root } from './mounts';
import { UNIX_PROGRAMS } from './unix-guard';

interface LinkInfo {
  progId: number;
  cgroupId: bigint;
  attachType: number;
}

function linkInfoOf(fd: number): LinkInfo {
  const info = linkInfo(fd);
  if (info.type !== KERNEL_ABI.BPF_LINK_TYPE_CGROUP) throw new DataPlaneError('link info', `fd ${fd} is not a cgroup bpf link`);
  return info;
}

/** Opens a pinned object, runs `use` on its fd and closes it. */
function withPinned<T>(step: string, pin: string, use: (fd: number) => T): T {
  const fd = intStep(step, `bpf_obj_get(${pin})`, () => libbpf().bpf_obj_get(pin));
  try {
    return use(fd);
  } finally {
    libc().close(fd);
  }
}

function listDir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

export interface CgroupLinkState {
  /** The cgroup id the pinned links are attached to; 0n when the cgroup is gone (the kernel detached them); undefined: nothing pinned. */
  cgroupId: bigint | undefined;
  /** Programs with a pinned link still attached. */
  attached: string[];
  /** Every program of the data plane has an attached link here. */
  complete: boolean;
}

/**
 * Attaches (or keeps) the programs of the data plane pinned in `sourcePinDir`
 * on `cgroupPath`, one bpf link per program pinned in `pinDir`. Links pinned
 * there already, still on this very cgroup, are switched to the source's
 * current programs (an upgraded agent); links left from a cgroup that was
 * removed or recreated since are dropped and made anew. Returns the cgroup's
 * id and whether anything new was attached.
 */
export function attachCgroupLinks(opts: { sourcePinDir: string; cgroupPath: string; pinDir: string }): { cgroupId: bigint; attachedNow: boolean } {
  const cgroupPath = resolve(opts.cgroupPath);
  const root = findCgroup2Root();
  if (cgroupPath === root || !cgroupPath.startsWith(`${root}/`)) {
    throw new DataPlaneError('check cgroup', `${cgroupPath} is not a cgroup below the cgroup2 root ${root}`);
  }
  if (!existsSync(join(cgroupPath, 'cgroup.procs'))) throw new DataPlaneError('check cgroup', `${cgroupPath} is not a cgroup directory (no cgroup.procs)`);
  const cgroupId = statSync(cgroupPath, { bigint: true }).ino;
  const bpf = libbpf();
  try {
    mkdirSync(opts.pinDir, { recursive: true });
  } catch (err) {
    throw new DataPlaneError('create pin dir', `mkdir ${opts.pinDir}: ${(err as Error).message}`);
  }
  let attachedNow = false;
  const created: string[] = [];
  let cgroupFd = -1;
  try {
    cgroupFd = openSync(cgroupPath, 'r');
    // The unix guard's programs go wherever the source has them (kernel 6.7+,
    // not turned off); a protected cgroup drops them when the source did.
    const unixInSource = UNIX_PROGRAMS.filter((p) => existsSync(join(opts.sourcePinDir, 'links', p)));
    for (const name of UNIX_PROGRAMS) if (!unixInSource.includes(name)) detachPin(join(opts.pinDir, name));
    for (const name of [...PROGRAMS, ...unixInSource]) {
      const source = withPinned(`read ${name}`, join(opts.sourcePinDir, 'links', name), linkInfoOf);
      if (source.cgroupId === 0n) throw new DataPlaneError(`read ${name}`, `the source link of ${name} in ${opts.sourcePinDir} is detached`);
      const progFd = intStep(`attach ${name}`, `bpf_prog_get_fd_by_id(${source.progId})`, () => bpf.bpf_prog_get_fd_by_id(source.progId));
      try {
        const pin = join(opts.pinDir, name);
        if (existsSync(pin)) {
          const kept = withPinned(`adopt ${name}`, pin, (fd) => {
            if (linkInfoOf(fd).cgroupId !== cgroupId) {
              libbpf().bpf_link_detach(fd); // ENOLINK when the kernel already did: fine
              return false;
            }
            intStep(`adopt ${name}`, 'bpf_link_update', () => bpf.bpf_link_update(fd, progFd, null));
            return true;
          });
          if (kept) continue;
          unlinkSync(pin);
        }
        const linkFd = intStep(`attach ${name}`, `bpf_link_create(${cgroupPath})`, () => bpf.bpf_link_create(progFd, cgroupFd, source.attachType, null));
        try {
          intStep(`pin ${name}`, `bpf_obj_pin(${pin})`, () => bpf.bpf_obj_pin(linkFd, pin));
        } catch (err) {
          bpf.bpf_link_detach(linkFd);
          throw err;
        } finally {
          libc().close(linkFd);
        }
        created.push(pin);
        attachedNow = true;
      } finally {
        libc().close(progFd);
      }
    }
  } catch (err) {
    // Undo this call's links only; an earlier call's stay.
    for (const pin of created) detachPin(pin);
    if (listDir(opts.pinDir).length === 0) rmdirQuiet(opts.pinDir);
    if (err instanceof DataPlaneError) throw err;
    throw new DataPlaneError('open cgroup', `${cgroupPath}: ${(err as Error).message}`);
  } finally {
    if (cgroupFd >= 0) closeSync(cgroupFd);
  }
  return { cgroupId, attachedNow };
}

/** What the links pinned in `pinDir` are attached to now. */
export function cgroupLinkState(pinDir: string): CgroupLinkState {
  let cgroupId: bigint | undefined;
  const attached: string[] = [];
  for (const name of listDir(pinDir)) {
    try {
      const info = withPinned(`read ${name}`, join(pinDir, name), linkInfoOf);
      cgroupId = cgroupId === undefined || cgroupId === 0n ? info.cgroupId : cgroupId;
      if (info.cgroupId !== 0n) attached.push(name);
    } catch {
      // not a link: ignored
    }
  }
  return { cgroupId, attached, complete: PROGRAMS.every((p) => attached.includes(p)) };
}

function detachPin(pin: string): string | undefined {
  let problem: string | undefined;
  const fd = libbpf().bpf_obj_get(pin);
  if (fd >= 0) {
    const rc = libbpf().bpf_link_detach(fd);
    libc().close(fd);
    if (rc < 0 && Math.abs(rc) !== constants.errno.ENOLINK) problem = `detach ${pin}: ${describeErrno(rc)}`;
  }
  try {
    unlinkSync(pin);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') problem ??= `unlink ${pin}: ${(err as Error).message}`;
  }
  return problem;
}

/**
 * Detaches and unpins every link in `pinDir` and removes the directory.
 * Idempotent; a cgroup that is gone (links the kernel already detached) is
 * no error.
 */
export function detachCgroupLinks(pinDir: string): void {
  if (!existsSync(pinDir)) return;
  const problems = listDir(pinDir)
    .map((name) => detachPin(join(pinDir, name)))
    .filter((p): p is string => p !== undefined);
  try {
    rmdirSync(pinDir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') problems.push(`rmdir ${pinDir}: ${(err as Error).message}`);
  }
  if (problems.length > 0) throw new DataPlaneError('detach', problems.join('; '));
}

function rmdirQuiet(path: string): void {
  try {
    rmdirSync(path);
  } catch {
    // not empty or gone
  }
}
