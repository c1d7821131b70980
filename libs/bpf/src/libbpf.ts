// koffi bindings to libbpf.so.1 (libbpf 1.x) and the few libc calls the loader
// needs. Loaded lazily on first use so importing @cgfence/bpf never touches
// the native library (the pure helpers stay usable anywhere).
//
// libbpf 1.x error conventions: functions returning a pointer return NULL and
// set errno; functions returning int return a negative errno (and set errno).
import koffi from 'koffi';
import type * as Koffi from 'koffi';
import { constants } from 'node:os';

/** Kernel ABI values from <linux/bpf.h>; checked by layout.int.spec.ts. */
export const KERNEL_ABI = {
  BPF_MAP_TYPE_HASH: 1,
  BPF_MAP_TYPE_ARRAY: 2,
  BPF_MAP_TYPE_LPM_TRIE: 11,
  BPF_ANY: 0,
  BPF_F_NO_PREALLOC: 1,
  BPF_LINK_TYPE_CGROUP: 3,
  /** offsetof(struct bpf_link_info, prog_id) */
  LINK_INFO_PROG_ID_OFFSET: 8,
  /** offsetof(struct bpf_link_info, cgroup.cgroup_id) */
  LINK_INFO_CGROUP_ID_OFFSET: 16,
  /** sizeof(struct bpf_map_create_opts) in libbpf 1.1 */
  MAP_CREATE_OPTS_SIZE: 48,
  /** offsetof(struct bpf_map_create_opts, map_flags) */
  MAP_CREATE_OPTS_FLAGS_OFFSET: 28,
  /** sizeof(struct bpf_map_batch_opts) */
  MAP_BATCH_OPTS_SIZE: 24,
  /** offsetof(struct bpf_map_info, id) */
  MAP_INFO_ID_OFFSET: 4,
  /** offsetof(struct bpf_map_info, key_size) */
  MAP_INFO_KEY_SIZE_OFFSET: 8,
  /** offsetof(struct bpf_map_info, value_size) */
  MAP_INFO_VALUE_SIZE_OFFSET: 12,
  /** offsetof(struct bpf_map_info, max_entries) */
  MAP_INFO_MAX_ENTRIES_OFFSET: 16,
  CLOCK_MONOTONIC: 1,
} as const;

/** An opaque libbpf object pointer (koffi 3 represents pointers as BigInt). */
export type Ptr = bigint;

export interface Libbpf {
  bpf_object__open_file(path: string, opts: null): Ptr | null;
  bpf_object__load(obj: Ptr): number;
  bpf_object__close(obj: Ptr): void;
  bpf_object__find_map_by_name(obj: Ptr, name: string): Ptr | null;
  bpf_object__find_program_by_name(obj: Ptr, name: string): Ptr | null;
  bpf_object__next_program(obj: Ptr, prev: Ptr | null): Ptr | null;
  bpf_object__next_map(obj: Ptr, prev: Ptr | null): Ptr | null;
  bpf_program__name(prog: Ptr): string;
  bpf_program__fd(prog: Ptr): number;
  bpf_program__attach_cgroup(prog: Ptr, cgroupFd: number): Ptr | null;
  bpf_program__set_type(prog: Ptr, type: number): number;
  bpf_program__set_expected_attach_type(prog: Ptr, type: number): number;
  bpf_map__reuse_fd(map: Ptr, fd: number): number;
  bpf_map__name(map: Ptr): string;
  bpf_map__fd(map: Ptr): number;
  bpf_map__type(map: Ptr): number;
  bpf_map__key_size(map: Ptr): number;
  bpf_map__value_size(map: Ptr): number;
  bpf_map__max_entries(map: Ptr): number;
  bpf_map__set_pin_path(map: Ptr, path: string): number;
  bpf_link__pin(link: Ptr, path: string): number;
  bpf_link__open(path: string): Ptr | null;
  bpf_link__update_program(link: Ptr, prog: Ptr): number;
  bpf_link__fd(link: Ptr): number;
  bpf_link__destroy(link: Ptr): number;
  bpf_obj_get(path: string): number;
  bpf_link_detach(linkFd: number): number;
  bpf_link_create(progFd: number, targetFd: number, attachType: number, opts: null): number;
  bpf_link_update(linkFd: number, newProgFd: number, opts: null): number;
  bpf_obj_pin(fd: number, path: string): number;
  bpf_prog_get_fd_by_id(id: number): number;
  bpf_obj_get_info_by_fd(fd: number, info: Buffer, infoLen: Buffer): number;
  bpf_map_create(type: number, name: string, keySize: number, valueSize: number, maxEntries: number, opts: Buffer): number;
  bpf_map_update_elem(fd: number, key: Buffer, value: Buffer, flags: number): number;
  bpf_map_update_batch(fd: number, keys: Buffer, values: Buffer, count: [number], opts: Buffer): number;
  bpf_map_lookup_elem(fd: number, key: Buffer, value: Buffer): number;
  bpf_map_delete_elem(fd: number, key: Buffer): number;
  bpf_map_get_next_key(fd: number, key: Buffer | null, next: Buffer): number;
  bpf_map_lookup_batch(
    fd: number,
    inBatch: Buffer | null,
    outBatch: Buffer,
    keys: Buffer,
    values: Buffer,
    count: [number],
    opts: Buffer,
  ): number;
  bpf_map_get_fd_by_id(id: number): number;
  ring_buffer__new(mapFd: number, cb: bigint, ctx: null, opts: null): Ptr | null;
  ring_buffer__consume(rb: Ptr): number;
  ring_buffer__epoll_fd(rb: Ptr): number;
  ring_buffer__free(rb: Ptr): void;
  libbpf_num_possible_cpus(): number;
}

export interface Libc {
  mount(source: string, target: string, fsType: string, flags: number, data: null): number;
  close(fd: number): number;
  clock_gettime(clock: number, ts: Buffer): number;
  strerror(errnum: number): string;
  /** errno of the last call, as 'ENOENT (No such file or directory)'. */
  errnoName(errnum?: number): string;
}

/** Callback type of ring_buffer__new(). */
let sampleFnType: Koffi.TypeObject | undefined;
let bpf: Libbpf | undefined;
let c: Libc | undefined;

/** Describes an errno value: symbolic name and message. */
export function describeErrno(errnum: number): string {
  const n = Math.abs(errnum);
  const name = Object.entries(constants.errno).find(([, v]) => v === n)?.[0] ?? `errno ${n}`;
  return `${name} (${libc().strerror(n)})`;
}

export function libc(): Libc {
  if (c) return c;
  const lib = koffi.load('libc.so.6');
  const strerror = lib.func('const char *strerror(int errnum)');
  c = {
    mount: lib.func('int mount(const char *source, const char *target, const char *fstype, unsigned long flags, const void *data)'),
    close: lib.func('int close(int fd)'),
    clock_gettime: lib.func('int clock_gettime(int clk, void *ts)'),
    strerror: (n: number) => strerror(n) as string,
    errnoName: (n?: number) => describeErrno(n ?? koffi.errno()),
  };
  return c;
}

export function libbpf(): Libbpf {
  if (bpf) return bpf;
  let lib: Koffi.LibraryHandle;
  try {
    lib = koffi.load('libbpf.so.1');
  } catch (err) {
    throw new Error(`cannot load libbpf.so.1 (install libbpf1 / libbpf-dev): ${(err as Error).message}`);
  }
  for (const t of ['bpf_object', 'bpf_program', 'bpf_map', 'bpf_link', 'ring_buffer']) koffi.opaque(t);
  sampleFnType = koffi.proto('int cgf_ring_buffer_sample_fn(void *ctx, void *data, size_t size)');
  const fns: Record<keyof Libbpf, string> = {
    bpf_object__open_file: 'bpf_object *bpf_object__open_file(const char *path, const void *opts)',
    bpf_object__load: 'int bpf_object__load(bpf_object *obj)',
    bpf_object__close: 'void bpf_object__close(bpf_object *obj)',
    bpf_object__find_map_by_name: 'bpf_map *bpf_object__find_map_by_name(const bpf_object *obj, const char *name)',
    bpf_object__find_program_by_name: 'bpf_program *bpf_object__find_program_by_name(const bpf_object *obj, const char *name)',
    bpf_object__next_program: 'bpf_program *bpf_object__next_program(const bpf_object *obj, bpf_program *prev)',
    bpf_object__next_map: 'bpf_map *bpf_object__next_map(const bpf_object *obj, const bpf_map *prev)',
    bpf_program__name: 'const char *bpf_program__name(const bpf_program *prog)',
    bpf_program__fd: 'int bpf_program__fd(const bpf_program *prog)',
    bpf_program__attach_cgroup: 'bpf_link *bpf_program__attach_cgroup(const bpf_program *prog, int cgroup_fd)',
    bpf_program__set_type: 'int bpf_program__set_type(bpf_program *prog, int type)',
    bpf_program__set_expected_attach_type: 'int bpf_program__set_expected_attach_type(bpf_program *prog, int type)',
    bpf_map__reuse_fd: 'int bpf_map__reuse_fd(bpf_map *map, int fd)',
    bpf_map__name: 'const char *bpf_map__name(const bpf_map *map)',
    bpf_map__fd: 'int bpf_map__fd(const bpf_map *map)',
    bpf_map__type: 'int bpf_map__type(const bpf_map *map)',
    bpf_map__key_size: 'uint32_t bpf_map__key_size(const bpf_map *map)',
    bpf_map__value_size: 'uint32_t bpf_map__value_size(const bpf_map *map)',
    bpf_map__max_entries: 'uint32_t bpf_map__max_entries(const bpf_map *map)',
    bpf_map__set_pin_path: 'int bpf_map__set_pin_path(bpf_map *map, const char *path)',
    bpf_link__pin: 'int bpf_link__pin(bpf_link *link, const char *path)',
    bpf_link__open: 'bpf_link *bpf_link__open(const char *path)',
    bpf_link__update_program: 'int bpf_link__update_program(bpf_link *link, bpf_program *prog)',
    bpf_link__fd: 'int bpf_link__fd(const bpf_link *link)',
    bpf_link__destroy: 'int bpf_link__destroy(bpf_link *link)',
    bpf_obj_get: 'int bpf_obj_get(const char *pathname)',
    bpf_link_detach: 'int bpf_link_detach(int link_fd)',
    bpf_link_create: 'int bpf_link_create(int prog_fd, int target_fd, int attach_type, const void *opts)',
    bpf_link_update: 'int bpf_link_update(int link_fd, int new_prog_fd, const void *opts)',
    bpf_obj_pin: 'int bpf_obj_pin(int fd, const char *pathname)',
    bpf_prog_get_fd_by_id: 'int bpf_prog_get_fd_by_id(uint32_t id)',
    bpf_obj_get_info_by_fd: 'int bpf_obj_get_info_by_fd(int fd, void *info, void *info_len)',
    bpf_map_create:
      'int bpf_map_create(int map_type, const char *map_name, uint32_t key_size, uint32_t value_size, uint32_t max_entries, const void *opts)',
    bpf_map_update_elem: 'int bpf_map_update_elem(int fd, const void *key, const void *value, uint64_t flags)',
    bpf_map_update_batch: 'int bpf_map_update_batch(int fd, const void *keys, const void *values, _Inout_ uint32_t *count, const void *opts)',
    bpf_map_lookup_elem: 'int bpf_map_lookup_elem(int fd, const void *key, void *value)',
    bpf_map_delete_elem: 'int bpf_map_delete_elem(int fd, const void *key)',
    bpf_map_get_next_key: 'int bpf_map_get_next_key(int fd, const void *key, void *next_key)',
    bpf_map_lookup_batch:
      'int bpf_map_lookup_batch(int fd, void *in_batch, void *out_batch, void *keys, void *values, _Inout_ uint32_t *count, const void *opts)',
    bpf_map_get_fd_by_id: 'int bpf_map_get_fd_by_id(uint32_t id)',
    ring_buffer__new: 'ring_buffer *ring_buffer__new(int map_fd, cgf_ring_buffer_sample_fn *sample_cb, void *ctx, const void *opts)',
    ring_buffer__consume: 'int ring_buffer__consume(ring_buffer *rb)',
    ring_buffer__epoll_fd: 'int ring_buffer__epoll_fd(const ring_buffer *rb)',
    ring_buffer__free: 'void ring_buffer__free(ring_buffer *rb)',
    libbpf_num_possible_cpus: 'int libbpf_num_possible_cpus(void)',
  };
  const bound: Partial<Record<keyof Libbpf, unknown>> = {};
  for (const [name, proto] of Object.entries(fns) as [keyof Libbpf, string][]) bound[name] = lib.func(proto);
  bpf = bound as Libbpf;
  return bpf;
}

/** The koffi callback type for ring_buffer__new(); libbpf() must have run. */
export function ringBufferSampleFnType(): Koffi.TypeObject {
  libbpf();
  return koffi.pointer(sampleFnType!);
}

/** Current errno, read right after a failed libbpf/libc call. */
export function lastErrno(): number {
  return koffi.errno();
}
