// The IPv4 /16 prefilter (cgf_prefilter4): one byte per /16, indexed by the
// top 16 bits of the address (host order). The kernel's blocked4() returns
// "not blocked" at once for a /16 whose slot is 0, without the LPM trie walk
// and the learned-address lookup. So a slot may only be 0 while no blocked
// CIDR and no learned address touches that /16; the rules that keep it so
// (userspace's side):
//   - a CIDR shorter than /16 marks every /16 it covers (/8: 256 slots, /0: all);
//   - a policy's /16s are marked BEFORE its trie is swapped in, and marks are
//     cleared only AFTER the swap, for what neither the policy in force nor
//     any learned address still needs (settle), never while another swap is
//     under way;
//   - a learned IPv4 address marks its /16 BEFORE it is inserted.
// Marking only ever sets slots, so it can happen on any thread at any time;
// clearing happens on the DataPlane's own thread, computed synchronously from
// the kernel's cgf_learned, so no learn can slip in between. The DataPlane
// keeps a record of every slot it may have set, so clearing never has to
// read the 65,536 slots back.
// IPv6 has no prefilter (the v6 path always does the full check).
import { parseIp } from './addr';
import { LpmKeys } from './ip-digest';
import { readAllEntries, updateBatch } from './map-batch';
import { ADDR_KEY, CONSTANTS, LEARNED_MAX_ENTRIES, LEARNED_VALUE_SIZE, LPM4_KEY, PREFILTER4_KEY_SIZE, PREFILTER4_VALUE_SIZE } from './layout';

export const PREFILTER4_SLOTS = CONSTANTS.CGF_PREFILTER4_SLOTS;
const SHIFT = CONSTANTS.CGF_PREFILTER4_SHIFT;

/** One byte per /16 slot: 1 = needed (must be marked), 0 = not. */
export type SlotSet = Uint8Array;

export function emptySlotSet(): SlotSet {
  return new Uint8Array(PREFILTER4_SLOTS);
}

/** The slot of an IPv4 address, e.g. '127.1.0.1' -> 0x7f01. */
export function prefilterSlotOf(address: string): number {
  let ip: ReturnType<typeof parseIp> | undefined;
  try {
    ip = parseIp(address);
  } catch {
    // named below
  }
  if (ip?.family !== 4) throw new RangeError(`not a dotted IPv4 address: ${address}`);
  return ip.bytes[0]! * 256 + ip.bytes[1]!;
}

/** Adds the slots every v4 LPM key (encodePolicyKeys() form) covers to `into`. */
export function addLpm4Slots(into: SlotSet, { keys, count }: LpmKeys): SlotSet {
  const size = LPM4_KEY.size;
  const prefixAt = LPM4_KEY.fields.prefixlen.offset;
  const addrAt = LPM4_KEY.fields.addr.offset;
  for (let i = 0; i < count; i++) {
    const prefix = keys.readUInt32LE(i * size + prefixAt);
    const slot = keys.readUInt32BE(i * size + addrAt) >>> SHIFT;
    if (prefix >= 32 - SHIFT) {
      into[slot] = 1;
    } else {
      // Shorter than /16: every /16 inside it (/8 -> 256 slots, /0 -> all).
      const span = 2 ** (32 - SHIFT - prefix);
      const first = slot - (slot % span);
      into.fill(1, first, first + span);
    }
  }
  return into;
}

/** The slot of a 16-byte learned-address key if it is ::ffff:a.b.c.d (what blocked4() looks up), else -1. */
export function mappedSlot(key: Uint8Array, at = 0): number {
  for (let i = 0; i < 10; i++) if (key[at + i] !== 0) return -1;
  if (key[at + 10] !== 0xff || key[at + 11] !== 0xff) return -1;
  return key[at + 12]! * 256 + key[at + 13]!;
}

/**
 * Adds the slots of the IPv4 entries of cgf_learned that are not yet
 * expired (`nowNs`: CLOCK_MONOTONIC, the clock of the expiry values; an
 * expired entry is ignored by the kernel, so it needs no mark).
 */
export function addLearnedSlots(into: SlotSet, learnedFd: number, nowNs: bigint, step: string): SlotSet {
  const { keys, values, count } = readAllEntries(learnedFd, ADDR_KEY.size, LEARNED_VALUE_SIZE, LEARNED_MAX_ENTRIES, step);
  for (let i = 0; i < count; i++) {
    const slot = mappedSlot(keys, i * ADDR_KEY.size + ADDR_KEY.fields.addr.offset);
    if (slot >= 0 && values.readBigUInt64LE(i * LEARNED_VALUE_SIZE) > nowNs) into[slot] = 1;
  }
  return into;
}

/** The kernel's prefilter as a slot set (one lookup batch). */
export function readPrefilter(fd: number, step: string): SlotSet {
  const { keys, values, count } = readAllEntries(fd, PREFILTER4_KEY_SIZE, PREFILTER4_VALUE_SIZE, PREFILTER4_SLOTS, step);
  const out = emptySlotSet();
  for (let i = 0; i < count; i++) if (values[i] !== 0) out[keys.readUInt32LE(i * PREFILTER4_KEY_SIZE)] = 1;
  return out;
}

/** Writes `value` into the given slots with one bpf_map_update_batch. */
export function writeSlots(fd: number, slots: readonly number[] | Uint32Array, value: 0 | 1, step: string): void {
  const n = slots.length;
  if (n === 0) return;
  const keys = Buffer.alloc(n * PREFILTER4_KEY_SIZE);
  for (let i = 0; i < n; i++) keys.writeUInt32LE(slots[i]!, i * PREFILTER4_KEY_SIZE);
  updateBatch(fd, keys, Buffer.alloc(n * PREFILTER4_VALUE_SIZE, value), n, step, 'cgf_prefilter4');
}

/** The slots a set holds, ascending. */
export function slotList(set: SlotSet): Uint32Array {
  let n = 0;
  for (let i = 0; i < set.length; i++) n += set[i]!;
  const out = new Uint32Array(n);
  for (let i = 0, j = 0; i < set.length; i++) if (set[i]) out[j++] = i;
  return out;
}

/** Marks every slot (fail safe: every lookup takes the full path). */
export function markAll(fd: number, step: string): void {
  writeSlots(fd, slotList(emptySlotSet().fill(1)), 1, step);
}

/**
 * After a swap: narrows the prefilter to what the policy in force (its slots:
 * `policySlots`) and the live learned addresses need, with one batch update
 * that writes 0 to every slot `marked` says may be set but nothing needs (and
 * 1 to a needed slot `marked` does not know of: there should be none). What is
 * needed is computed here, synchronously, from cgf_learned; `marked` (the
 * caller's record of every slot it or its builder thread may have set: a
 * superset of the kernel's marks) only picks the slots to write, so nothing
 * is read back from the 65,536-slot map. The caller guarantees no swap is
 * under way. Returns the needed set (the caller's new record) and how many
 * slots it cleared.
 */
export function settlePrefilter(
  fds: { prefilter: number; learned: number },
  policySlots: SlotSet,
  marked: SlotSet,
  nowNs: bigint,
  step: string,
): { needed: SlotSet; cleared: number } {
  const needed = addLearnedSlots(Uint8Array.from(policySlots), fds.learned, nowNs, step);
  const change: number[] = [];
  for (let i = 0; i < PREFILTER4_SLOTS; i++) if (needed[i] !== marked[i]) change.push(i);
  const keys = Buffer.alloc(change.length * PREFILTER4_KEY_SIZE);
  const values = Buffer.alloc(change.length * PREFILTER4_VALUE_SIZE);
  let cleared = 0;
  change.forEach((slot, j) => {
    keys.writeUInt32LE(slot, j * PREFILTER4_KEY_SIZE);
    values[j * PREFILTER4_VALUE_SIZE] = needed[slot]!;
    if (!needed[slot]) cleared++;
  });
  updateBatch(fds.prefilter, keys, values, change.length, step, 'cgf_prefilter4');
  return { needed, cleared };
}
