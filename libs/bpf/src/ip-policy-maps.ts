// IP policy maps: the blocked CIDR tries (cgf_block4/6, swapped whole), the
// IPv4 /16 prefilter kept a superset of them, the learned addresses
// (cgf_learned), the drift read-back, and the trie builder thread that builds
// and swaps a policy off the caller's event loop. A policy may carry the name
// backstop's names too: they are built and swapped by the same thread, right
// after the tries (name-backstop.ts).
import { constants } from 'node:os';
import { monotonicNowNs } from './clock';
import { encodeAddrKey, parseAddresses } from './codec';
import { Family } from './addr';
import { DataPlaneError, fail, intStep } from './errors';
import { ipPolicyDigest, IpPolicyDigest, LpmKeys } from './ip-digest';
import { LEARNED_VALUE_SIZE, LPM4_KEY, LPM6_KEY, MapName } from './layout';
import { KERNEL_ABI, libbpf, libc } from './libbpf';
import { readAllEntries } from './map-batch';
import { NameBackstop, NamePolicy } from './name-backstop';
import { addLpm4Slots, emptySlotSet, mappedSlot, readPrefilter, settlePrefilter, slotList, SlotSet, writeSlots } from './prefilter';
import { buildPolicyTries, BuiltTries, closeTries, mapId, swapTrie } from './trie';
import { BuiltOnThread, CommitError, TrieBuilderThread } from './trie-builder';

/** A policy for the kernel: CIDRs per family and, optionally, the names of the backstop (omitted: the names in force stay). */
export interface KernelPolicy {
  v4: readonly string[];
  v6: readonly string[];
  names?: NamePolicy;
}

/** What a policy put into force: distinct CIDRs per family, and distinct names when the policy carried names. */
export interface AppliedCounts {
  v4: number;
  v6: number;
  names?: number;
}

export class IpPolicyMaps {
  private closed = false;
  /** The keys this DataPlane last swapped in, per family (for drift checks). */
  private written: { 4?: LpmKeys; 6?: LpmKeys } = {};
  private writtenDigest?: IpPolicyDigest;
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

  constructor(
    private readonly mapFds: Readonly<Record<MapName, number>>,
    private readonly names: NameBackstop,
  ) {}

  /**
   * Replaces the blocked CIDR sets. Each family's new trie is built completely
   * (sized to the list) before one map update swaps it in, so the kernel sees
   * either the whole old list or the whole new one. On error the old policy
   * stays. Returns how many distinct CIDRs each family now holds. Runs on the
   * calling thread (blocks it for the whole build); prepareIpPolicy() builds
   * on a worker thread instead.
   */
  applyIpPolicy(p: KernelPolicy): AppliedCounts {
    this.assertOpen();
    const counts: AppliedCounts = this.commitTries(buildPolicyTries(p));
    if (p.names) counts.names = this.names.apply(p.names);
    return counts;
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
  prepareIpPolicy(p: KernelPolicy): PreparedIpPolicy {
    this.assertOpen();
    this.builder ??= new TrieBuilderThread({
      outer4Id: mapId(this.mapFds.cgf_block4, 'applyIpPolicy'),
      outer6Id: mapId(this.mapFds.cgf_block6, 'applyIpPolicy'),
      prefilter4Id: mapId(this.mapFds.cgf_prefilter4, 'applyIpPolicy'),
      namesId: mapId(this.mapFds.cgf_names, 'applyIpPolicy'),
    });
    const builder = this.builder;
    const { id, built } = builder.build(p);
    built.catch(() => undefined); // reported through ready and commit()
    const ready = built.then((b) => ({ v4: b.keys4.count, v6: b.keys6.count, names: b.names, buildMs: b.ms, namesMs: b.namesMs }));
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
        const counts: AppliedCounts = { v4: b.keys4.count, v6: b.keys6.count };
        if (b.names !== undefined) counts.names = b.names;
        return counts;
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
    if (b.names !== undefined) this.names.noteApplied(b.names);
    return { b, slots4 };
  }

  /** applyIpPolicy() on the trie builder thread: prepareIpPolicy(), then commit(). */
  async applyIpPolicyAsync(p: KernelPolicy): Promise<AppliedCounts> {
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

  /** Ends the builder thread (it closes whatever it still holds). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.builder?.close();
    this.builder = undefined;
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
    /** Resolves when both tries (and the name map, if any) are built: distinct CIDRs per family, distinct names, and how long the thread took, ms. */
    readonly ready: Promise<{ v4: number; v6: number; names?: number; buildMs: number; namesMs?: number }>,
    private readonly ops: { commit: () => Promise<AppliedCounts>; discard: () => void },
  ) {}

  /**
   * Swaps both tries in, v4 then v6, each atomically, as soon as they are
   * built (on the builder thread; this thread only waits). Resolves with the
   * distinct CIDRs per family now in force; rejects with the build's error or
   * a DataPlaneError if the kernel refuses the swap.
   */
  commit(): Promise<AppliedCounts> {
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
