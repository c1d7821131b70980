// The unix-socket guard (c/unix-guard.bpf.c): cgroup connect_unix and
// sendmsg_unix programs (kernel 6.7+) that refuse the deploy cgroup's
// connections to the sockets of resolving daemons (nscd, systemd-resolved's
// varlink, sssd's nss responder), so glibc falls back to DNS on port 53.
//
// A separate object from cgfence.bpf.o, loaded after it: on a kernel without
// the hook only this part fails, and the caller says so. libbpf 1.1 does not
// know these attach types, so the program type and the numeric expected
// attach type are set through the libbpf API before load; the numbers are
// checked against the running kernel's BTF by unix-guard.int.spec.ts.
//
// Pins live next to the main object's (<pinDir>/links/cgf_*_unix,
// <pinDir>/maps/cgf_unix_paths): the main teardown removes them too.
import { constants } from 'node:os';
import { closeSync, existsSync, openSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { attachedLinkNames, closeObject, unlinkQuiet } from './attachment';
import { DataPlaneError, intStep, ptrStep } from './errors';
import { KERNEL_ABI, libbpf, libc, Ptr } from './libbpf';

/** The compiled object, next to cgfence.bpf.o. */
export const UNIX_GUARD_OBJECT_PATH = join(__dirname, '..', 'bpf', 'unix-guard.bpf.o');

/** Kernel ABI numbers libbpf 1.1 and the 6.1 uapi headers lack (checked against the kernel's BTF by the int test). */
export const UNIX_HOOK_ABI = {
  BPF_PROG_TYPE_CGROUP_SOCK_ADDR: 18,
  BPF_CGROUP_UNIX_CONNECT: 49,
  BPF_CGROUP_UNIX_SENDMSG: 50,
} as const;

/** Layout of c/unix-guard.h (checked by unix-guard.int.spec.ts's probe). */
export const UNIX_GUARD_LAYOUT = {
  CGF_UNIX_PATH_LEN: 108,
  CGF_UNIX_PATHS_MAX: 32,
  CGF_EV_UNIX_REFUSED: 16,
  CGF_EV_UNIX_AUDIT: 17,
  CGF_FAMILY_UNIX: 1,
  KEY_SIZE: 112,
  KEY_LEN_OFFSET: 0,
  KEY_PATH_OFFSET: 4,
  VALUE_SIZE: 16,
  VALUE_REFUSALS_OFFSET: 0,
  VALUE_ID_OFFSET: 8,
} as const;

/** Programs of the object (function names), pinned under <pinDir>/links with these names. */
export const UNIX_PROGRAMS = ['cgf_connect_unix', 'cgf_sendmsg_unix'] as const;
export type UnixProgramName = (typeof UNIX_PROGRAMS)[number];
const UNIX_MAP = 'cgf_unix_paths';

/**
 * The sockets of the resolving daemons glibc's NSS asks whatever the host's
 * nsswitch.conf says: nscd (glibc's compiled-in path, and the same socket
 * under /run: /var/run is a symlink to it on every current distribution) and
 * systemd-resolved's varlink interface (nss-resolve). Both spellings of each
 * /run path are listed: the programs compare strings. Refusing them costs a
 * run nothing but the cache: glibc goes on with the NSS modules.
 */
export const DEFAULT_UNIX_GUARD_PATHS: readonly string[] = [
  '/var/run/nscd/socket',
  '/run/nscd/socket',
  '/run/systemd/resolve/io.systemd.Resolve',
  '/var/run/systemd/resolve/io.systemd.Resolve',
];

/**
 * sssd's nss responder (nss_sss). It serves users and groups too, and for
 * those it is the source, not a cache: refused, a run would no longer know
 * the directory's users. So it is refused by default only where it serves
 * hosts (see sssServesHosts).
 */
export const SSSD_NSS_SOCKET = '/var/lib/sss/pipes/nss';

/** True when an nsswitch.conf text's `hosts:` line names the `sss` source. */
export function sssServesHosts(nsswitchConf: string): boolean {
  for (const raw of nsswitchConf.split('\n')) {
    const line = raw.replace(/#.*/, '').trim();
    const m = /^hosts\s*:(.*)$/.exec(line);
    if (m) return m[1]!.split(/\s+/).some((w) => w === 'sss');
  }
  return false;
}

/** What the guard does on this host. */
export type UnixGuardStatus =
  | { state: 'active'; paths: string[] }
  | { state: 'off' }
  | { state: 'unavailable'; paths: string[]; reason: string };

/**
 * The map key of a socket path: '/abs/path' (a pathname socket) or '@name'
 * (an abstract socket, as ss and systemd write them). Throws a RangeError
 * naming the problem.
 */
export function encodeUnixPath(path: string): Buffer {
  const L = UNIX_GUARD_LAYOUT;
  let bytes: Buffer;
  if (path.startsWith('/')) {
    bytes = Buffer.from(path, 'utf8');
    if (bytes.includes(0)) throw new RangeError(`unix socket path ${JSON.stringify(path)} contains a NUL byte`);
  } else if (path.startsWith('@') && path.length > 1) {
    bytes = Buffer.concat([Buffer.from([0]), Buffer.from(path.slice(1), 'utf8')]);
  } else {
    throw new RangeError(`unix socket path must be absolute (/…) or abstract (@name), got ${JSON.stringify(path)}`);
  }
  if (bytes.length > L.CGF_UNIX_PATH_LEN) {
    throw new RangeError(`unix socket path ${JSON.stringify(path)} is ${bytes.length} bytes; sun_path holds ${L.CGF_UNIX_PATH_LEN}`);
  }
  const key = Buffer.alloc(L.KEY_SIZE);
  key.writeUInt32LE(bytes.length, L.KEY_LEN_OFFSET);
  bytes.copy(key, L.KEY_PATH_OFFSET);
  return key;
}

/** The path a map key stands for (inverse of encodeUnixPath). */
export function decodeUnixPath(key: Buffer): string {
  const L = UNIX_GUARD_LAYOUT;
  const len = Math.min(key.readUInt32LE(L.KEY_LEN_OFFSET), L.CGF_UNIX_PATH_LEN);
  const bytes = key.subarray(L.KEY_PATH_OFFSET, L.KEY_PATH_OFFSET + len);
  return bytes[0] === 0 ? `@${bytes.subarray(1).toString('utf8')}` : bytes.toString('utf8');
}

/** Throws a RangeError naming the problem: at most CGF_UNIX_PATHS_MAX distinct, well-formed paths. */
export function validateUnixGuardPaths(paths: readonly string[]): void {
  if (paths.length > UNIX_GUARD_LAYOUT.CGF_UNIX_PATHS_MAX) {
    throw new RangeError(`at most ${UNIX_GUARD_LAYOUT.CGF_UNIX_PATHS_MAX} unix socket paths, got ${paths.length}`);
  }
  const seen = new Set<string>();
  for (const p of paths) {
    encodeUnixPath(p);
    if (seen.has(p)) throw new RangeError(`unix socket path ${JSON.stringify(p)} is listed twice`);
    seen.add(p);
  }
}

/** Detaches a pinned link and removes the pin; a missing pin or a link the kernel already detached is fine. */
function detachPin(pin: string): void {
  if (!existsSync(pin)) return;
  const fd = libbpf().bpf_obj_get(pin);
  if (fd >= 0) {
    const rc = libbpf().bpf_link_detach(fd);
    libc().close(fd);
    if (rc < 0 && Math.abs(rc) !== constants.errno.ENOLINK) {
      throw new DataPlaneError('detach unix guard', `bpf_link_detach(${pin}) failed: errno ${Math.abs(rc)}`);
    }
  }
  unlinkQuiet(pin);
}

export interface UnixGuardAttachOptions {
  cgroupPath: string;
  /** The main data plane's pin dir (its links/ and maps/ must exist). */
  pinDir: string;
  /** The main object's cgf_config (mode), cgf_events (ring buffer) and cgf_counters (ringbuf_lost). */
  configFd: number;
  eventsFd: number;
  countersFd: number;
  paths: readonly string[];
  /**
   * Attach types to load with; default UNIX_HOOK_ABI's. Only for tests and
   * diagnostics: a value the kernel refuses shows the path of a kernel
   * without the hook.
   */
  attachTypes?: { connect: number; sendmsg: number };
}

export class UnixGuard {
  private closed = false;
  /** id -> path, as last read from the map (events name ids; a flood of them must not walk the map each). */
  private ids = new Map<number, string>();

  private constructor(
    private readonly obj: Ptr,
    private readonly links: Map<UnixProgramName, Ptr>,
    private readonly mapFd: number,
  ) {}

  /**
   * open -> reuse the main maps -> set type and attach type -> load (reusing
   * a pinned cgf_unix_paths) -> write the paths -> attach or adopt each link
   * -> pin. A failure (a kernel without the hook) undoes what this call made
   * and throws a DataPlaneError; what was pinned before is left alone.
   */
  static attach(opts: UnixGuardAttachOptions): UnixGuard {
    validateUnixGuardPaths(opts.paths);
    const pinDir = resolve(opts.pinDir);
    const bpf = libbpf();
    const types = opts.attachTypes ?? { connect: UNIX_HOOK_ABI.BPF_CGROUP_UNIX_CONNECT, sendmsg: UNIX_HOOK_ABI.BPF_CGROUP_UNIX_SENDMSG };
    if (!existsSync(UNIX_GUARD_OBJECT_PATH)) {
      throw new DataPlaneError('open unix guard', `${UNIX_GUARD_OBJECT_PATH} is missing (run node scripts/build.mjs)`);
    }
    const mapPin = join(pinDir, 'maps', UNIX_MAP);
    const mapPinnedBefore = existsSync(mapPin);
    const obj = ptrStep('open unix guard', `bpf_object__open_file(${UNIX_GUARD_OBJECT_PATH})`, () => bpf.bpf_object__open_file(UNIX_GUARD_OBJECT_PATH, null));
    const links = new Map<UnixProgramName, Ptr>();
    const created: string[] = [];
    let cgroupFd = -1;
    try {
      const find = (name: string): Ptr => {
        const m = bpf.bpf_object__find_map_by_name(obj, name);
        if (!m) throw new DataPlaneError('open unix guard', `map ${name} not found in ${UNIX_GUARD_OBJECT_PATH}`);
        return m;
      };
      intStep('load unix guard', 'bpf_map__reuse_fd(cgf_config)', () => bpf.bpf_map__reuse_fd(find('cgf_config'), opts.configFd));
      intStep('load unix guard', 'bpf_map__reuse_fd(cgf_events)', () => bpf.bpf_map__reuse_fd(find('cgf_events'), opts.eventsFd));
      intStep('load unix guard', 'bpf_map__reuse_fd(cgf_counters)', () => bpf.bpf_map__reuse_fd(find('cgf_counters'), opts.countersFd));
      const paths = find(UNIX_MAP);
      intStep('load unix guard', `bpf_map__set_pin_path(${UNIX_MAP})`, () => bpf.bpf_map__set_pin_path(paths, mapPin));
      const progs = new Map<UnixProgramName, Ptr>();
      for (const name of UNIX_PROGRAMS) {
        const prog = bpf.bpf_object__find_program_by_name(obj, name);
        if (!prog) throw new DataPlaneError('open unix guard', `program ${name} not found in ${UNIX_GUARD_OBJECT_PATH}`);
        const type = name === 'cgf_connect_unix' ? types.connect : types.sendmsg;
        intStep('load unix guard', `bpf_program__set_type(${name})`, () => bpf.bpf_program__set_type(prog, UNIX_HOOK_ABI.BPF_PROG_TYPE_CGROUP_SOCK_ADDR));
        intStep('load unix guard', `bpf_program__set_expected_attach_type(${name}, ${type})`, () => bpf.bpf_program__set_expected_attach_type(prog, type));
        progs.set(name, prog);
      }
      intStep(
        'load unix guard',
        'bpf_object__load (the kernel needs BPF_CGROUP_UNIX_CONNECT, Linux 6.7 or later; verifier log above on stderr)',
        () => bpf.bpf_object__load(obj),
      );
      const mapFd = intStep('load unix guard', `bpf_map__fd(${UNIX_MAP})`, () => bpf.bpf_map__fd(paths));
      const guard = new UnixGuard(obj, links, mapFd);
      guard.setPaths(opts.paths);
      try {
        cgroupFd = openSync(opts.cgroupPath, 'r');
      } catch (err) {
        throw new DataPlaneError('attach unix guard', `${opts.cgroupPath}: ${(err as Error).message}`);
      }
      for (const [name, prog] of progs) {
        const pin = join(pinDir, 'links', name);
        if (existsSync(pin)) {
          const link = ptrStep(`adopt ${name}`, `bpf_link__open(${pin})`, () => bpf.bpf_link__open(pin));
          links.set(name, link);
          intStep(`adopt ${name}`, 'bpf_link__update_program', () => bpf.bpf_link__update_program(link, prog));
        } else {
          const link = ptrStep(`attach ${name}`, `bpf_program__attach_cgroup(${opts.cgroupPath})`, () => bpf.bpf_program__attach_cgroup(prog, cgroupFd));
          links.set(name, link);
          intStep(`pin ${name}`, `bpf_link__pin(${pin})`, () => bpf.bpf_link__pin(link, pin));
          created.push(pin);
        }
      }
      return guard;
    } catch (err) {
      for (const pin of created) detachPin(pin);
      for (const link of links.values()) bpf.bpf_link__destroy(link);
      if (!mapPinnedBefore) unlinkQuiet(mapPin);
      bpf.bpf_object__close(obj);
      throw err;
    } finally {
      if (cgroupFd >= 0) closeSync(cgroupFd);
    }
  }

  /** Detaches the guard's pinned links and drops its map pin (the guard turned off). Idempotent. */
  static detach(pinDir: string): void {
    for (const name of UNIX_PROGRAMS) detachPin(join(resolve(pinDir), 'links', name));
    unlinkQuiet(join(resolve(pinDir), 'maps', UNIX_MAP));
  }

  /** Makes `paths` the refused set; paths kept keep their counts and ids. */
  setPaths(paths: readonly string[]): void {
    validateUnixGuardPaths(paths);
    const want = new Map(paths.map((p) => [encodeUnixPath(p).toString('hex'), p]));
    const have = this.entries();
    for (const e of have) {
      if (want.has(e.keyHex)) continue;
      intStep('set unix guard paths', `bpf_map_delete_elem(${UNIX_MAP}, ${e.path})`, () => libbpf().bpf_map_delete_elem(this.mapFd, Buffer.from(e.keyHex, 'hex')));
    }
    const kept = new Set(have.map((e) => e.keyHex));
    let nextId = have.reduce((m, e) => Math.max(m, e.id), 0) + 1;
    for (const [hex, path] of want) {
      if (kept.has(hex)) continue;
      const value = Buffer.alloc(UNIX_GUARD_LAYOUT.VALUE_SIZE);
      value.writeUInt32LE(nextId++, UNIX_GUARD_LAYOUT.VALUE_ID_OFFSET);
      intStep('set unix guard paths', `bpf_map_update_elem(${UNIX_MAP}, ${path})`, () =>
        libbpf().bpf_map_update_elem(this.mapFd, Buffer.from(hex, 'hex'), value, KERNEL_ABI.BPF_ANY),
      );
    }
    this.ids = new Map(this.entries().map((e) => [e.id, e.path]));
  }

  /** Each refused path and its refusals so far (audit mode: would-be refusals). */
  refusals(): Map<string, number> {
    return new Map(this.entries().map((e) => [e.path, e.refusals]));
  }

  /** The path an event's id stands for (the map is read again only for an id not seen yet). */
  pathOfId(id: number): string | undefined {
    if (!this.ids.has(id)) this.ids = new Map(this.entries().map((e) => [e.id, e.path]));
    return this.ids.get(id);
  }

  /** Programs whose links are attached right now. */
  attachedPrograms(): string[] {
    this.assertOpen();
    return attachedLinkNames(this.links);
  }

  /** Frees userspace handles; the links stay pinned. */
  close(): void {
    if (this.closed) return;
    closeObject(this.obj, this.links);
    this.closed = true;
  }

  private entries(): { keyHex: string; path: string; id: number; refusals: number }[] {
    this.assertOpen();
    const L = UNIX_GUARD_LAYOUT;
    const out: { keyHex: string; path: string; id: number; refusals: number }[] = [];
    let prev: Buffer | null = null;
    const next = Buffer.alloc(L.KEY_SIZE);
    const value = Buffer.alloc(L.VALUE_SIZE);
    // At most CGF_UNIX_PATHS_MAX keys: the walk is bounded.
    while (out.length <= L.CGF_UNIX_PATHS_MAX && libbpf().bpf_map_get_next_key(this.mapFd, prev, next) === 0) {
      const key = Buffer.from(next);
      if (libbpf().bpf_map_lookup_elem(this.mapFd, key, value) === 0) {
        out.push({
          keyHex: key.toString('hex'),
          path: decodeUnixPath(key),
          id: value.readUInt32LE(L.VALUE_ID_OFFSET),
          refusals: Number(value.readBigUInt64LE(L.VALUE_REFUSALS_OFFSET)),
        });
      }
      prev = key;
    }
    return out;
  }

  private assertOpen(): void {
    if (this.closed) throw new DataPlaneError('use', 'this unix guard is closed');
  }
}
