// Attach and pins: opens cgfence.bpf.o with libbpf (through koffi), loads it
// reusing the maps pinned in a pin dir, attaches its programs to a cgroup
// with bpf links (or adopts the links pinned there by an earlier agent) and
// pins what it creates, so enforcement outlives this process. Teardown
// detaches and unpins. Knows nothing about what the maps hold.
import { constants } from 'node:os';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, rmdirSync, statSync, unlinkSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { DataPlaneError, intStep, ptrStep } from './errors';
import { MapName, PINNED_MAPS, PROGRAMS, ProgramName } from './layout';
import { describeErrno, KERNEL_ABI, libbpf, libc, Ptr } from './libbpf';
import { findCgroup2Root, parseMounts } from './mounts';

/** The compiled object, next to the compiled loader: dist/src/*.js -> dist/bpf/. */
export const BPF_OBJECT_PATH = join(__dirname, '..', 'bpf', 'cgfence.bpf.o');

interface PinLayout {
  maps: string;
  links: string;
}

function pinLayout(pinDir: string): PinLayout {
  return { maps: join(pinDir, 'maps'), links: join(pinDir, 'links') };
}

function listDir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

/** bpf_link_info.cgroup.attach_type: after type, id, prog_id, padding and cgroup_id. */
const LINK_INFO_CGROUP_ATTACH_TYPE_OFFSET = 24;

/** Reads the type, prog id and (for a cgroup link) cgroup id and attach type of a bpf link fd. */
export function linkInfo(fd: number): { type: number; progId: number; cgroupId: bigint; attachType: number } {
  const info = Buffer.alloc(64);
  const len = Buffer.alloc(4);
  len.writeUInt32LE(info.length);
  intStep('link info', 'bpf_obj_get_info_by_fd', () => libbpf().bpf_obj_get_info_by_fd(fd, info, len));
  return {
    type: info.readUInt32LE(0),
    progId: info.readUInt32LE(KERNEL_ABI.LINK_INFO_PROG_ID_OFFSET),
    cgroupId: info.readBigUInt64LE(KERNEL_ABI.LINK_INFO_CGROUP_ID_OFFSET),
    attachType: info.readUInt32LE(LINK_INFO_CGROUP_ATTACH_TYPE_OFFSET),
  };
}

function assertOnBpffs(pinDir: string): void {
  const mounts = parseMounts(readFileSync('/proc/mounts', 'utf8')).filter((m) => m.fsType === 'bpf');
  if (!mounts.some((m) => pinDir === m.mountPoint || pinDir.startsWith(`${m.mountPoint.replace(/\/$/, '')}/`))) {
    throw new DataPlaneError('check pin dir', `${pinDir} is not on a bpf filesystem (call ensureBpffs() first)`);
  }
}

function assertCgroup2Dir(cgroupPath: string): void {
  const root = findCgroup2Root();
  if (cgroupPath !== root && !cgroupPath.startsWith(`${root}/`)) {
    throw new DataPlaneError('check cgroup', `${cgroupPath} is not inside the cgroup2 hierarchy at ${root}`);
  }
  if (!existsSync(join(cgroupPath, 'cgroup.procs'))) {
    throw new DataPlaneError('check cgroup', `${cgroupPath} is not a cgroup directory (no cgroup.procs)`);
  }
}

function rmdirQuiet(path: string): void {
  try {
    rmdirSync(path);
  } catch {
    // not empty (pins from before this call) or already gone
  }
}

export function unlinkQuiet(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // already gone
  }
}

/** The names of `links` the kernel still has attached to a cgroup. */
export function attachedLinkNames<N extends string>(links: ReadonlyMap<N, Ptr>): N[] {
  const out: N[] = [];
  for (const [name, link] of links) {
    if (linkInfo(libbpf().bpf_link__fd(link)).cgroupId !== 0n) out.push(name);
  }
  return out;
}

/** Frees the userspace handles of a loaded object and its links; pinned links stay attached. */
export function closeObject(obj: Ptr, links: Map<string, Ptr>): void {
  for (const link of links.values()) libbpf().bpf_link__destroy(link);
  links.clear();
  libbpf().bpf_object__close(obj);
}

/**
 * The loaded object and its links to one cgroup. `attach()` takes a callback
 * that runs after load and before any program is attached or switched: the
 * place to make the maps safe (config, prefilter) for the new programs.
 */
export class CgroupAttachment {
  private closed = false;

  private constructor(
    private readonly obj: Ptr,
    readonly mapFds: Readonly<Record<MapName, number>>,
    private readonly links: Map<ProgramName, Ptr>,
    readonly adopted: boolean,
    readonly cgroupPath: string,
    readonly pinDir: string,
  ) {}

  /**
   * open -> pin paths -> load (reusing pinned maps) -> `beforeAttach(mapFds)`
   * -> attach or adopt each link -> pin. Adopted links are switched
   * atomically to the freshly loaded programs, so the cgroup never runs
   * without them and never runs them twice. A failure undoes what this call
   * created and never touches what was pinned before it.
   */
  static attach(opts: { cgroupPath: string; pinDir: string }, beforeAttach: (mapFds: Record<MapName, number>) => void): CgroupAttachment {
    const cgroupPath = resolve(opts.cgroupPath);
    const pinDir = resolve(opts.pinDir);
    assertCgroup2Dir(cgroupPath);
    assertOnBpffs(pinDir);
    const cgroupId = statSync(cgroupPath, { bigint: true }).ino;
    const pins = pinLayout(pinDir);
    const bpf = libbpf();

    // Before touching anything: pins here must belong to this cgroup.
    for (const name of listDir(pins.links)) {
      const pin = join(pins.links, name);
      const fd = intStep(`adopt ${name}`, `bpf_obj_get(${pin})`, () => bpf.bpf_obj_get(pin));
      try {
        const info = linkInfo(fd);
        if (info.type !== KERNEL_ABI.BPF_LINK_TYPE_CGROUP || info.cgroupId !== cgroupId) {
          throw new DataPlaneError(
            `adopt ${name}`,
            `pinned link ${pin} is attached to cgroup id ${info.cgroupId}, not to ${cgroupPath} (id ${cgroupId}); ` +
              'tear that pin dir down or use another one',
          );
        }
      } finally {
        libc().close(fd);
      }
    }
    const existingMapPins = new Set(listDir(pins.maps));
    for (const dir of [pinDir, pins.maps, pins.links]) {
      try {
        mkdirSync(dir, { recursive: true });
      } catch (err) {
        throw new DataPlaneError('create pin dirs', `mkdir ${dir}: ${(err as Error).message}`);
      }
    }

    if (!existsSync(BPF_OBJECT_PATH)) {
      throw new DataPlaneError('open', `${BPF_OBJECT_PATH} is missing (run node scripts/build.mjs)`);
    }
    const obj = ptrStep('open', `bpf_object__open_file(${BPF_OBJECT_PATH})`, () => bpf.bpf_object__open_file(BPF_OBJECT_PATH, null));
    const links = new Map<ProgramName, Ptr>();
    const createdLinkPins: string[] = [];
    let cgroupFd = -1;
    let adopted = false;
    try {
      const maps = {} as Record<MapName, Ptr>;
      for (const name of PINNED_MAPS) {
        const m = bpf.bpf_object__find_map_by_name(obj, name);
        if (!m) throw new DataPlaneError('set pin paths', `map ${name} not found in ${BPF_OBJECT_PATH}`);
        intStep('set pin paths', `bpf_map__set_pin_path(${name})`, () => bpf.bpf_map__set_pin_path(m, join(pins.maps, name)));
        maps[name] = m;
      }

      // Reuses every map already pinned (policy, learned addresses, config
      // survive a restart) and pins the ones it creates.
      intStep('load', 'bpf_object__load (verifier log above on stderr)', () => bpf.bpf_object__load(obj));

      const mapFds = {} as Record<MapName, number>;
      for (const name of PINNED_MAPS) mapFds[name] = intStep('load', `bpf_map__fd(${name})`, () => bpf.bpf_map__fd(maps[name]));

      beforeAttach(mapFds);

      try {
        cgroupFd = openSync(cgroupPath, 'r');
      } catch (err) {
        throw new DataPlaneError('open cgroup', `${cgroupPath}: ${(err as Error).message}`);
      }

      for (const name of PROGRAMS) {
        const prog = bpf.bpf_object__find_program_by_name(obj, name);
        if (!prog) throw new DataPlaneError(`attach ${name}`, `program ${name} not found in ${BPF_OBJECT_PATH}`);
        const pin = join(pins.links, name);
        if (existsSync(pin)) {
          const link = ptrStep(`adopt ${name}`, `bpf_link__open(${pin})`, () => bpf.bpf_link__open(pin));
          links.set(name, link);
          intStep(`adopt ${name}`, 'bpf_link__update_program', () => bpf.bpf_link__update_program(link, prog));
          adopted = true;
        } else {
          const link = ptrStep(`attach ${name}`, `bpf_program__attach_cgroup(${cgroupPath})`, () =>
            bpf.bpf_program__attach_cgroup(prog, cgroupFd),
          );
          links.set(name, link);
          intStep(`pin ${name}`, `bpf_link__pin(${pin})`, () => bpf.bpf_link__pin(link, pin));
          createdLinkPins.push(pin);
        }
      }
      closeSync(cgroupFd);
      cgroupFd = -1;
      return new CgroupAttachment(obj, mapFds, links, adopted, cgroupPath, pinDir);
    } catch (err) {
      // Undo what this call did; never touch what was pinned before it.
      for (const pin of createdLinkPins) {
        const fd = bpf.bpf_obj_get(pin);
        if (fd >= 0) {
          bpf.bpf_link_detach(fd);
          libc().close(fd);
        }
        unlinkQuiet(pin);
      }
      for (const link of links.values()) bpf.bpf_link__destroy(link);
      for (const name of PINNED_MAPS) if (!existingMapPins.has(name)) unlinkQuiet(join(pins.maps, name));
      bpf.bpf_object__close(obj);
      if (cgroupFd >= 0) closeSync(cgroupFd);
      for (const dir of [pins.links, pins.maps, pinDir]) rmdirQuiet(dir); // only if left empty
      throw err;
    }
  }

  /** Detaches every pinned link in `pinDir`, removes all its pins and the directory. Idempotent. */
  static teardown(opts: { cgroupPath: string; pinDir: string }): void {
    const pinDir = resolve(opts.pinDir);
    if (!existsSync(pinDir)) return;
    const pins = pinLayout(pinDir);
    const bpf = libbpf();
    const errors: string[] = [];
    for (const name of listDir(pins.links)) {
      const pin = join(pins.links, name);
      const fd = bpf.bpf_obj_get(pin);
      if (fd < 0) {
        errors.push(`open ${pin}: ${describeErrno(fd)}`);
        continue;
      }
      // Detach first: the programs leave the cgroup even if some other
      // process still holds the link open.
      const rc = bpf.bpf_link_detach(fd);
      libc().close(fd);
      if (rc < 0 && Math.abs(rc) !== constants.errno.ENOLINK /* already detached */) errors.push(`detach ${pin}: ${describeErrno(rc)}`);
      unlinkQuiet(pin);
    }
    for (const name of listDir(pins.maps)) unlinkQuiet(join(pins.maps, name));
    for (const dir of [pins.links, pins.maps, pinDir]) {
      try {
        rmdirSync(dir);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') errors.push(`rmdir ${dir}: ${(err as Error).message}`);
      }
    }
    if (errors.length > 0) {
      throw new DataPlaneError('teardown', `${opts.cgroupPath}: ${errors.join('; ')}`);
    }
  }

  /** Names of the programs whose links are attached to the cgroup right now. */
  attachedPrograms(): string[] {
    this.assertOpen();
    return attachedLinkNames(this.links);
  }

  /** Frees userspace handles (links stay pinned, so enforcement continues). */
  close(): void {
    if (this.closed) return;
    closeObject(this.obj, this.links);
    this.closed = true;
  }

  private assertOpen(): void {
    if (this.closed) throw new DataPlaneError('use', 'this DataPlane is closed');
  }
}

