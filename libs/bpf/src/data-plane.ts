// The loader: opens cgfence.bpf.o with libbpf (through koffi), loads it,
// attaches its programs to a cgroup with bpf links, pins links and maps so
// enforcement outlives this process, and exposes the maps to the agent.
import koffi from 'koffi';
import type * as Koffi from 'koffi';
import { constants } from 'node:os';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, rmdirSync, statSync, unlinkSync } from 'node:fs';
import { join, resolve } from 'node:path';
import {
  counterNames,
  DataPlaneConfig,
  DataPlaneCounters,
  decodeEvent,
  encodeAddrKey,
  encodeConfig,
  KernelEvent,
  parseAddresses,
  ProcessInfo,
  sumPerCpu,
  validateConfig,
} from './codec';
import { Family } from './addr';
import { lookupDnsOriginIn } from './dns-attribution';
import { DataPlaneError, fail, intStep, ptrStep } from './errors';
import { ipPolicyDigest, IpPolicyDigest, LpmKeys } from './ip-digest';
import { COUNTERS, LEARNED_VALUE_SIZE, LPM4_KEY, LPM6_KEY, MapName, PINNED_MAPS, PROGRAMS, ProgramName } from './layout';
import { readAllEntries } from './map-batch';
import { addLpm4Slots, emptySlotSet, mappedSlot, markAll, readPrefilter, settlePrefilter, slotList, SlotSet, writeSlots } from './prefilter';
import { describeErrno, KERNEL_ABI, lastErrno, libbpf, libc, Ptr, ringBufferSampleFnType } from './libbpf';
import { findCgroup2Root, parseMounts } from './mounts';
import { buildPolicyTries, BuiltTries, closeTries, mapId, swapTrie } from './trie';
import { BuiltOnThread, CommitError, TrieBuilderThread } from './trie-builder';

export { DataPlaneError } from './errors';

/** The compiled object, next to the compiled loader: dist/src/*.js -> dist/bpf/. */
export const BPF_OBJECT_PATH = join(__dirname, '..', 'bpf', 'cgfence.bpf.o');

function monotonicNowNs(): bigint {
  const ts = Buffer.alloc(16);
  if (libc().clock_gettime(KERNEL_ABI.CLOCK_MONOTONIC, ts) !== 0) fail('clock', 'clock_gettime(CLOCK_MONOTONIC)', lastErrno());
  return ts.readBigInt64LE(0) * 1_000_000_000n + ts.readBigInt64LE(8);
}

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

/** Reads the (type, prog id, cgroup id) of a bpf link fd. */
function linkInfo(fd: number): { type: number; progId: number; cgroupId: bigint } {
  const info = Buffer.alloc(64);
  const len = Buffer.alloc(4);
  len.writeUInt32LE(info.length);
  intStep('link info', 'bpf_obj_get_info_by_fd', () => libbpf().bpf_obj_get_info_by_fd(fd, info, len));
  return {
    type: info.readUInt32LE(0),
    progId: info.readUInt32LE(KERNEL_ABI.LINK_INFO_PROG_ID_OFFSET),
    cgroupId: info.readBigUInt64LE(KERNEL_ABI.LINK_INFO_CGROUP_ID_OFFSET),
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

export interface AttachOptions {
  cgroupPath: string;
  pinDir: string;
  config: DataPlaneConfig;
}

export class DataPlane {
  private closed = false;
  private config: DataPlaneConfig;
  private heartbeatNs: bigint;
  private listeners: ((e: KernelEvent) => void)[] = [];
  private ring?: { rb: Ptr; cb: bigint; poll: Koffi.node.PollHandle; pending: KernelEvent[] };
  /** The keys this DataPlane last swapped in, per family (for drift checks). */
  private written: { 4?: LpmKeys; 6?: LpmKeys } = {};
  private writtenDigest?: IpPolicyDigest;
  private readonly cpus: number;
  private builder?: TrieBuilderThread;
  /** Applies started (sync or async commits), and async commits not yet back: the prefilter is settled only by the last. */
  private applySeq = 0;
  private commitsInFlight = 0;
  private prefilterState: { settled: boolean; error?: string } = { settled: false };
  /**
   * Every prefilter slot this DataPlane (or its builder thread) may have set
   * since the last settle: a superset of the kernel's marks, so settling
   * knows what to clear without reading the 65,536 slots back. attach()
   * marked all of them.
   */
  private prefilterMarked: SlotSet = emptySlotSet().fill(1);

  private constructor(
    private readonly obj: Ptr,
    private readonly mapFds: Record<MapName, number>,
    private readonly links: Map<ProgramName, Ptr>,
    readonly adopted: boolean,
    readonly cgroupPath: string,
    readonly pinDir: string,
    config: DataPlaneConfig,
    heartbeatNs: bigint,
  ) {
    this.config = { ...config };
    this.heartbeatNs = heartbeatNs;
    this.cpus = libbpf().libbpf_num_possible_cpus();
  }

  /**
   * Attaches the data plane to `cgroupPath`, or adopts the links and maps
   * already pinned in `pinDir` (a restarted agent): open -> pin paths -> load
   * (reusing pinned maps) -> set config -> attach or adopt each link -> pin.
   * Adopted links are switched atomically to the freshly loaded programs, so
   * the cgroup never runs without them and never runs them twice.
   */
  static attach(opts: AttachOptions): DataPlane {
    validateConfig(opts.config);
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

      // Fail safe until the first apply settles it: every /16 marked, so every
      // lookup takes the full path. The pinned prefilter may be new next to
      // an older agent's policy and learned addresses (an upgrade: libbpf
      // created and pinned it just now, all zeros), or stale (pins kept
      // through a downgrade to an agent that did not maintain it).
      markAll(mapFds.cgf_prefilter4, 'prefilter');

      const heartbeatNs = monotonicNowNs();
      const cfg = encodeConfig(opts.config, heartbeatNs);
      intStep('set config', 'bpf_map_update_elem(cgf_config)', () =>
        bpf.bpf_map_update_elem(mapFds.cgf_config, Buffer.alloc(4), cfg, KERNEL_ABI.BPF_ANY),
      );

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
      return new DataPlane(obj, mapFds, links, adopted, cgroupPath, pinDir, opts.config, heartbeatNs);
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

  setConfig(c: DataPlaneConfig): void {
    validateConfig(c);
    this.writeConfig(c, this.heartbeatNs, 'setConfig');
    this.config = { ...c };
  }

  /** Stamps "proxy alive now" (CLOCK_MONOTONIC, the clock of bpf_ktime_get_ns). */
  heartbeat(): void {
    const now = monotonicNowNs();
    this.writeConfig(this.config, now, 'heartbeat');
    this.heartbeatNs = now;
  }

  /**
   * Replaces the blocked CIDR sets. Each family's new trie is built completely
   * (sized to the list) before one map update swaps it in, so the kernel sees
   * either the whole old list or the whole new one. On error the old policy
   * stays. Returns how many distinct CIDRs each family now holds. Runs on the
   * calling thread (blocks it for the whole build); prepareIpPolicy() builds
   * on a worker thread instead.
   */
  applyIpPolicy(p: { v4: readonly string[]; v6: readonly string[] }): { v4: number; v6: number } {
    this.assertOpen();
    return this.commitTries(buildPolicyTries(p));
  }

  /**
   * Starts building (encoding, creating and filling) both tries of a policy
   * on the trie builder thread, a worker thread this DataPlane keeps for it,
   * and returns at once: this thread's event loop stays free. Nothing changes
   * in the kernel until commit() on the result, which swaps both in as
   * applyIpPolicy() does (on that thread too: each swap waits for an RCU grace
   * period), as soon as the build is done; discard() drops them. If a list is
   * bad or the kernel refuses it, `ready` and commit() reject with the error
   * applyIpPolicy() would throw and nothing changes. Commits apply in the
   * order they are called; do not mix them with applyIpPolicy() in flight.
   */
  prepareIpPolicy(p: { v4: readonly string[]; v6: readonly string[] }): PreparedIpPolicy {
    this.assertOpen();
    this.builder ??= new TrieBuilderThread({
      outer4Id: mapId(this.mapFds.cgf_block4, 'applyIpPolicy'),
      outer6Id: mapId(this.mapFds.cgf_block6, 'applyIpPolicy'),
      prefilter4Id: mapId(this.mapFds.cgf_prefilter4, 'applyIpPolicy'),
    });
    const builder = this.builder;
    const { id, built } = builder.build(p);
    built.catch(() => undefined); // reported through ready and commit()
    const ready = built.then((b) => ({ v4: b.keys4.count, v6: b.keys6.count, buildMs: b.ms }));
    ready.catch(() => undefined); // awaiting ready is optional: its rejection must not go unhandled
    return new PreparedIpPolicy(ready, {
      commit: async () => {
        const seq = ++this.applySeq;
        this.commitsInFlight++;
        let done: { b: BuiltOnThread; slots4: SlotSet };
        try {
          done = await this.commitOnThread(builder, id, built);
        } finally {
          this.commitsInFlight--;
        }
        const { b, slots4 } = done;
        // Same tick as the thread's answer: no learn and no other commit in between.
        this.settlePrefilterAfter(seq, slots4);
        return { v4: b.keys4.count, v6: b.keys6.count };
      },
      discard: () => builder.discard(id),
    });
  }

  /**
   * Has the builder thread mark the prefilter for the v4 list and swap both
   * tries in as soon as they are built; resolves with the build and the
   * prefilter slots of its v4 list once swapped.
   */
  private async commitOnThread(
    builder: TrieBuilderThread,
    id: number,
    built: Promise<BuiltOnThread>,
  ): Promise<{ b: BuiltOnThread; slots4: SlotSet }> {
    // Sent now: the thread swaps the moment the build is done, no round trip in between.
    const committed = builder.commit(id);
    let b: BuiltOnThread;
    try {
      b = await built;
    } catch (err) {
      await committed.catch(() => undefined); // answers with the same build error
      throw err;
    }
    // The thread marks these before its swap (whether or not the swap then succeeds).
    const slots4 = addLpm4Slots(emptySlotSet(), b.keys4);
    this.noteMarked(slots4);
    try {
      await committed;
    } catch (err) {
      if (!(err instanceof CommitError)) throw err;
      if (err.swapped4) this.noteWritten(b.keys4, undefined);
      throw err.cause;
    }
    this.noteWritten(b.keys4, b.keys6);
    return { b, slots4 };
  }

  /** applyIpPolicy() on the trie builder thread: prepareIpPolicy(), then commit(). */
  async applyIpPolicyAsync(p: { v4: readonly string[]; v6: readonly string[] }): Promise<{ v4: number; v6: number }> {
    return this.prepareIpPolicy(p).commit();
  }

  /** Marks the prefilter, swaps both built tries in (v4, then v6), closes this process's fds of them, settles the prefilter. */
  private commitTries(t: BuiltTries): { v4: number; v6: number } {
    const seq = ++this.applySeq;
    let slots4: SlotSet;
    try {
      this.assertOpen();
      // Before the swap: the prefilter must already pass every /16 the new trie lists.
      slots4 = addLpm4Slots(emptySlotSet(), t.keys4);
      this.noteMarked(slots4);
      writeSlots(this.mapFds.cgf_prefilter4, slotList(slots4), 1, 'applyIpPolicy prefilter');
      swapTrie(this.mapFds.cgf_block4, 'cgf_block4', t.fd4, t.keys4.count);
      this.noteWritten(t.keys4, undefined);
      swapTrie(this.mapFds.cgf_block6, 'cgf_block6', t.fd6, t.keys6.count);
      this.noteWritten(t.keys4, t.keys6);
    } finally {
      // The outer maps hold their own references; ours are no longer needed.
      closeTries(t);
    }
    this.settlePrefilterAfter(seq, slots4);
    return { v4: t.keys4.count, v6: t.keys6.count };
  }

  private noteMarked(slots: SlotSet): void {
    const marked = this.prefilterMarked;
    for (let i = 0; i < slots.length; i++) if (slots[i]) marked[i] = 1;
  }

  /**
   * After a successful swap of a v4 list whose slots are `slots4`: clears the
   * prefilter slots neither that list nor a live learned address needs. Only when no other apply was
   * started since and no commit is still on its way (it may have marked its
   * /16s already and be about to swap): then the prefilter stays a superset
   * until the next apply settles it. Runs on this thread and reads
   * cgf_learned synchronously, so no learnAddresses() can interleave. A
   * failure here only leaves the prefilter a superset (safe, slower): it is
   * kept for ipPrefilterStatus(), not thrown, as the policy is in force.
   */
  private settlePrefilterAfter(seq: number, slots4: SlotSet): void {
    if (this.closed || this.commitsInFlight > 0 || seq !== this.applySeq) {
      this.prefilterState = { settled: false };
      return;
    }
    try {
      const fds = { prefilter: this.mapFds.cgf_prefilter4, learned: this.mapFds.cgf_learned };
      // On error the record stays as it was: still a superset of the marks.
      this.prefilterMarked = settlePrefilter(fds, slots4, this.prefilterMarked, monotonicNowNs(), 'applyIpPolicy prefilter').needed;
      this.prefilterState = { settled: true };
    } catch (err) {
      this.prefilterState = { settled: false, error: (err as Error).message };
    }
  }

  /**
   * The IPv4 /16 prefilter: how many of its 65,536 slots are marked (read
   * from the kernel), and whether the last apply settled it to exactly what
   * the policy and the learned addresses need (false: a superset, e.g. right
   * after attach, while applies overlap, or after `error`).
   */
  ipPrefilterStatus(): { markedSlots: number; settled: boolean; error?: string } {
    this.assertOpen();
    const marks = readPrefilter(this.mapFds.cgf_prefilter4, 'ipPrefilterStatus');
    let markedSlots = 0;
    for (const m of marks) markedSlots += m;
    return { markedSlots, ...this.prefilterState };
  }

  private noteWritten(v4: LpmKeys, v6: LpmKeys | undefined): void {
    this.written[4] = v4;
    if (v6) this.written[6] = v6;
    this.writtenDigest = undefined;
  }

  /**
   * What this DataPlane last wrote with applyIpPolicy(), as a digest of the
   * sorted trie keys; undefined before the first apply. Computed on first
   * use and cached, so applying stays as fast as before.
   */
  appliedIpPolicyDigest(): IpPolicyDigest | undefined {
    const { 4: v4, 6: v6 } = this.written;
    if (!v4 || !v6) return undefined;
    this.writtenDigest ??= ipPolicyDigest(v4, v6);
    return this.writtenDigest;
  }

  /**
   * Reads the blocked CIDR sets back from the kernel: the inner LPM tries the
   * pinned outer maps point at right now, whoever put them there. Compare
   * with appliedIpPolicyDigest() (compareIpPolicy) to detect drift.
   */
  ipPolicyDigest(): IpPolicyDigest {
    this.assertOpen();
    return ipPolicyDigest(this.readTrieKeys('cgf_block4', 4), this.readTrieKeys('cgf_block6', 6));
  }

  /** Blocks single addresses (v4 or v6) until now + ttlSeconds. */
  learnAddresses(addrs: string[], ttlSeconds: number): void {
    this.assertOpen();
    if (!(ttlSeconds > 0) || !Number.isFinite(ttlSeconds)) throw new RangeError(`ttlSeconds must be > 0, got ${ttlSeconds}`);
    const keys = parseAddresses(addrs).map((a) => encodeAddrKey(a.family, a.bytes));
    // Before any insert: the prefilter must pass the /16 of every IPv4 (and
    // v4-mapped) address, or blocked4() would never look it up.
    const slots = [...new Set(keys.map((k) => mappedSlot(k)).filter((slot) => slot >= 0))];
    for (const slot of slots) this.prefilterMarked[slot] = 1;
    writeSlots(this.mapFds.cgf_prefilter4, slots, 1, 'learnAddresses');
    const value = Buffer.alloc(LEARNED_VALUE_SIZE);
    value.writeBigUInt64LE(monotonicNowNs() + BigInt(Math.round(ttlSeconds * 1e9)));
    const bpf = libbpf();
    let pruned = false;
    for (const key of keys) {
      let rc = bpf.bpf_map_update_elem(this.mapFds.cgf_learned, key, value, KERNEL_ABI.BPF_ANY);
      if (rc === -constants.errno.E2BIG /* map full */ && !pruned) {
        this.pruneLearned();
        pruned = true;
        rc = bpf.bpf_map_update_elem(this.mapFds.cgf_learned, key, value, KERNEL_ABI.BPF_ANY);
      }
      if (rc < 0) fail('learnAddresses', 'bpf_map_update_elem(cgf_learned)', rc);
    }
  }

  /** Who sent the DNS query that reached the proxy from `clientPort` with this id. */
  lookupDnsOrigin(clientPort: number, dnsId: number): ProcessInfo | undefined {
    this.assertOpen();
    return lookupDnsOriginIn(this.mapFds.cgf_dns_attr, clientPort, dnsId);
  }

  /** Every counter, summed over CPUs. */
  counters(): DataPlaneCounters {
    this.assertOpen();
    const out: DataPlaneCounters = {};
    const value = Buffer.alloc(8 * this.cpus);
    const key = Buffer.alloc(4);
    counterNames().forEach((name, idx) => {
      key.writeUInt32LE(idx);
      intStep('counters', 'bpf_map_lookup_elem(cgf_counters)', () => libbpf().bpf_map_lookup_elem(this.mapFds.cgf_counters, key, value));
      out[name] = sumPerCpu(value, this.cpus);
    });
    return out;
  }

  /**
   * Delivers kernel events to `cb`. The ring buffer's epoll fd is watched by
   * the Node event loop (koffi.node.poll), and ring_buffer__consume() only
   * reads what is already there, so nothing ever blocks the loop.
   */
  onEvent(cb: (e: KernelEvent) => void): void {
    this.assertOpen();
    this.listeners.push(cb);
    if (this.ring) return;
    const bpf = libbpf();
    const pending: KernelEvent[] = [];
    const cbPtr = koffi.register((_ctx: unknown, data: bigint, size: number | bigint) => {
      // Runs inside ring_buffer__consume(): copy out, dispatch afterwards.
      const e = decodeEvent(Buffer.from(new Uint8Array(koffi.view(data, Number(size))).slice()));
      if (e) pending.push(e);
      return 0;
    }, ringBufferSampleFnType());
    const rb = bpf.ring_buffer__new(this.mapFds.cgf_events, cbPtr, null, null);
    if (!rb) {
      const errnum = lastErrno();
      koffi.unregister(cbPtr);
      fail('onEvent', 'ring_buffer__new(cgf_events)', errnum);
    }
    const epollFd = bpf.ring_buffer__epoll_fd(rb);
    const poll = koffi.node.poll(epollFd, { readable: true }, () => this.drainEvents());
    poll.unref();
    this.ring = { rb, cb: cbPtr, poll, pending };
    this.drainEvents();
  }

  /** Names of the programs whose links are attached to the cgroup right now. */
  attachedPrograms(): string[] {
    this.assertOpen();
    const out: string[] = [];
    for (const [name, link] of this.links) {
      const info = linkInfo(libbpf().bpf_link__fd(link));
      if (info.cgroupId !== 0n) out.push(name);
    }
    return out;
  }

  /** Stops consuming events and frees userspace handles. Pins (and so enforcement) stay. */
  close(): void {
    if (this.closed) return;
    if (this.ring) {
      this.drainEvents();
      this.ring.poll.close();
      libbpf().ring_buffer__free(this.ring.rb);
      koffi.unregister(this.ring.cb);
      this.ring = undefined;
    }
    this.builder?.close();
    this.builder = undefined;
    for (const link of this.links.values()) libbpf().bpf_link__destroy(link);
    this.links.clear();
    libbpf().bpf_object__close(this.obj);
    this.listeners = [];
    this.closed = true;
  }

  private drainEvents(): void {
    const ring = this.ring;
    if (!ring) return;
    const rc = libbpf().ring_buffer__consume(ring.rb);
    const batch = ring.pending.splice(0);
    for (const e of batch) {
      for (const l of this.listeners) {
        try {
          l(e);
        } catch {
          // A listener's failure must not stop delivery to the others.
        }
      }
    }
    if (rc < 0 && Math.abs(rc) !== constants.errno.EINTR) {
      // Nothing sensible to throw into the event loop; the counter
      // ringbuf_lost and the next drain will show if events go missing.
    }
  }

  private writeConfig(c: DataPlaneConfig, heartbeatNs: bigint, step: string): void {
    this.assertOpen();
    intStep(step, 'bpf_map_update_elem(cgf_config)', () =>
      libbpf().bpf_map_update_elem(this.mapFds.cgf_config, Buffer.alloc(4), encodeConfig(c, heartbeatNs), KERNEL_ABI.BPF_ANY),
    );
  }

  /** Every key of the trie the outer map `outer` holds at index 0. */
  private readTrieKeys(outer: MapName, family: Family): LpmKeys {
    const bpf = libbpf();
    const step = `ipPolicyDigest v${family}`;
    const id = Buffer.alloc(4);
    const rc = bpf.bpf_map_lookup_elem(this.mapFds[outer], Buffer.alloc(4), id);
    if (rc === -constants.errno.ENOENT) return { keys: Buffer.alloc(0), count: 0 }; // no policy swapped in yet
    if (rc < 0) fail(step, `bpf_map_lookup_elem(${outer})`, rc);
    const fd = intStep(step, `bpf_map_get_fd_by_id(${id.readUInt32LE(0)})`, () => bpf.bpf_map_get_fd_by_id(id.readUInt32LE(0)));
    try {
      const info = Buffer.alloc(96);
      const len = Buffer.alloc(4);
      len.writeUInt32LE(info.length);
      intStep(step, 'bpf_obj_get_info_by_fd(trie)', () => bpf.bpf_obj_get_info_by_fd(fd, info, len));
      const keySize = info.readUInt32LE(KERNEL_ABI.MAP_INFO_KEY_SIZE_OFFSET);
      const valueSize = info.readUInt32LE(KERNEL_ABI.MAP_INFO_VALUE_SIZE_OFFSET);
      const maxEntries = info.readUInt32LE(KERNEL_ABI.MAP_INFO_MAX_ENTRIES_OFFSET);
      const want = family === 4 ? LPM4_KEY.size : LPM6_KEY.size;
      if (keySize !== want) throw new DataPlaneError(step, `inner map of ${outer} has ${keySize}-byte keys, expected ${want}`);
      const { keys, count } = readAllEntries(fd, keySize, valueSize, maxEntries, step);
      return { keys, count };
    } finally {
      libc().close(fd);
    }
  }

  private pruneLearned(): void {
    const bpf = libbpf();
    const fd = this.mapFds.cgf_learned;
    const now = monotonicNowNs();
    const expired: Buffer[] = [];
    let key: Buffer | null = null;
    const value = Buffer.alloc(LEARNED_VALUE_SIZE);
    for (;;) {
      const next = Buffer.alloc(16);
      if (bpf.bpf_map_get_next_key(fd, key, next) < 0) break;
      if (bpf.bpf_map_lookup_elem(fd, next, value) === 0 && value.readBigUInt64LE(0) <= now) expired.push(next);
      key = next;
    }
    for (const k of expired) bpf.bpf_map_delete_elem(fd, k);
  }

  private assertOpen(): void {
    if (this.closed) throw new DataPlaneError('use', 'this DataPlane is closed');
  }
}

/**
 * Both tries of a policy, built by DataPlane.prepareIpPolicy() on the trie
 * builder thread and not yet in force. Exactly one of commit() or discard()
 * should follow: until then the thread holds two kernel maps open (it closes
 * them when the DataPlane closes).
 */
export class PreparedIpPolicy {
  private done = false;

  constructor(
    /** Resolves when both tries are built: distinct CIDRs per family and how long the thread took, ms. */
    readonly ready: Promise<{ v4: number; v6: number; buildMs: number }>,
    private readonly ops: { commit: () => Promise<{ v4: number; v6: number }>; discard: () => void },
  ) {}

  /**
   * Swaps both tries in, v4 then v6, each atomically, as soon as they are
   * built (on the builder thread; this thread only waits). Resolves with the
   * distinct CIDRs per family now in force; rejects with the build's error or
   * a DataPlaneError if the kernel refuses the swap.
   */
  commit(): Promise<{ v4: number; v6: number }> {
    if (this.done) return Promise.reject(new DataPlaneError('applyIpPolicy', 'this prepared policy was already committed or discarded'));
    this.done = true;
    return this.ops.commit();
  }

  /** Drops the tries; the policy in force stays. */
  discard(): void {
    if (this.done) return;
    this.done = true;
    this.ops.discard();
  }
}

function rmdirQuiet(path: string): void {
  try {
    rmdirSync(path);
  } catch {
    // not empty (pins from before this call) or already gone
  }
}

function unlinkQuiet(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // already gone
  }
}

/** Counter names in kernel index order (for dashboards and tests). */
export const COUNTER_NAMES: readonly string[] = COUNTERS.map(([, name]) => name);
