// How many learned addresses each '!resolve' entry of the policy may hold in
// the kernel's learned-address map (libs/bpf cgf_learned), so that one entry
// cannot fill the map for the others, and a full quota is said loudly.
//
// The map is a plain hash (an LRU would silently unblock live addresses) of
// LEARNED_MAX_ENTRIES. Its room for '!resolve' addresses (the map less a
// reserve for the hosts file's addresses) is split evenly between the
// policy's '!resolve' entries, each share capped at `maxPerEntry`:
//
//   quota = min(maxPerEntry, floor(capacity / number of '!resolve' entries))
//
// so the quotas never add up to more than the map holds. A wildcard entry
// (`*.cdn.example !resolve`) whose subdomains a process can invent learns
// into its own quota only: a plain entry's addresses are never evicted or
// refused because of it. When an entry's quota is full, its oldest live
// addresses stay blocked (nothing is evicted), the new ones are not learned
// (they stay reachable: the DNS answer for the name is still NXDOMAIN), and
// an alert says which entry and how many addresses it could not block.
// Addresses leave an entry's count when their TTL has run out.

import type { BlocklistEntry } from '../policy/entry-types';

export interface LearnedBudgetOptions {
  /** Room in the kernel map for '!resolve' addresses. */
  readonly capacity: number;
  /** The most addresses one entry may hold, however few entries the policy has. */
  readonly maxPerEntry: number;
  /** At most one alert per entry per this interval (refusals in between are added up). Default 60 s. */
  readonly alertIntervalMs?: number;
  readonly now?: () => number;
}

export interface QuotaAlert {
  /** The '!resolve' entry as written ('*.cdn.example'). */
  readonly entry: string;
  readonly quota: number;
  /** Addresses not learned since the previous alert of this entry. */
  readonly refused: number;
  readonly message: string;
}

/** Where admitted addresses go: DataPlane.learnAddresses. May throw (the kernel map itself full). */
export type LearnSink = (addrs: string[], ttlSeconds: number) => void;

/** The budget capacity: the kernel map less what the hosts file may put there. */
export const HOSTS_FILE_RESERVE = 8192;
/** Default cap of one entry's addresses (`--learned-per-entry`). */
export const DEFAULT_MAX_PER_ENTRY = 4096;

export class LearnedAddressBudget {
  /** Per entry: address → expiry (ms), in insertion order (oldest first). */
  private readonly held = new Map<string, Map<string, number>>();
  private readonly pendingRefusals = new Map<string, { refused: number; lastAlertAt: number }>();
  private entries = 0;
  private readonly alertIntervalMs: number;
  private readonly now: () => number;

  constructor(
    private readonly sink: LearnSink,
    private readonly onAlert: (alert: QuotaAlert) => void,
    private readonly options: LearnedBudgetOptions,
  ) {
    if (!(options.capacity >= 1) || !(options.maxPerEntry >= 1)) throw new RangeError('learned-address capacity and per-entry cap must be at least 1');
    this.alertIntervalMs = options.alertIntervalMs ?? 60_000;
    this.now = options.now ?? Date.now;
  }

  /** The per-entry quota for the current policy. */
  get quota(): number {
    return Math.max(1, Math.min(this.options.maxPerEntry, Math.floor(this.options.capacity / Math.max(1, this.entries))));
  }

  /** Live addresses counted for `entry`. */
  count(entry: string): number {
    this.expire(entry);
    return this.held.get(entry)?.size ?? 0;
  }

  /**
   * Sizes the quotas from a policy's '!resolve' entries (exact and wildcard).
   * Addresses of entries the policy no longer has stop being counted (their
   * kernel entries lapse at their TTL).
   */
  setPolicy(entries: readonly BlocklistEntry[]): { entries: number; quota: number } {
    const resolving = new Set<string>();
    for (const e of entries) if ((e.kind === 'domain' || e.kind === 'wildcard') && e.resolve === true) resolving.add(e.value);
    this.entries = resolving.size;
    for (const entry of this.held.keys()) if (!resolving.has(entry)) this.held.delete(entry);
    return { entries: this.entries, quota: this.quota };
  }

  /**
   * Learns `addrs` for `entry` within its quota: addresses it already holds
   * are renewed, new ones are taken while there is room, the rest refused
   * (and alerted). Returns how many were refused. A sink error (the kernel
   * map full) is alerted and thrown on.
   */
  learn(addrs: readonly string[], ttlSeconds: number, entry: string): number {
    const now = this.now();
    let held = this.held.get(entry);
    if (!held) {
      held = new Map();
      this.held.set(entry, held);
    }
    const quota = this.quota;
    if (held.size >= quota) this.expire(entry, now);
    const until = now + ttlSeconds * 1000;
    const admitted: string[] = [];
    let refused = 0;
    for (const addr of new Set(addrs)) {
      if (held.has(addr)) {
        // Renewed in place: keeps its place among the oldest.
        held.set(addr, Math.max(held.get(addr)!, until));
        admitted.push(addr);
      } else if (held.size < quota) {
        held.set(addr, until);
        admitted.push(addr);
      } else refused++;
    }
    if (admitted.length > 0) {
      try {
        this.sink(admitted, ttlSeconds);
      } catch (err) {
        for (const addr of admitted) if (held.get(addr) === until) held.delete(addr);
        this.onAlert({
          entry,
          quota,
          refused: admitted.length,
          message: `learned-address map full: ${admitted.length} address(es) of !resolve entry ${entry} not blocked (${(err as Error).message})`,
        });
        throw err;
      }
    }
    if (refused > 0) this.refuse(entry, quota, refused, now);
    return refused;
  }

  private refuse(entry: string, quota: number, refused: number, now: number): void {
    const pending = this.pendingRefusals.get(entry) ?? { refused: 0, lastAlertAt: -Infinity };
    pending.refused += refused;
    this.pendingRefusals.set(entry, pending);
    if (now - pending.lastAlertAt < this.alertIntervalMs) return;
    const total = pending.refused;
    pending.refused = 0;
    pending.lastAlertAt = now;
    this.onAlert({
      entry,
      quota,
      refused: total,
      message:
        `learned-address quota full for !resolve entry ${entry} (${quota} addresses): ${total} new address(es) not blocked; ` +
        'its oldest addresses stay blocked and its names still get NXDOMAIN (raise --learned-per-entry or narrow the entry)',
    });
  }

  private expire(entry: string, now = this.now()): void {
    const held = this.held.get(entry);
    if (!held) return;
    for (const [addr, until] of held) if (until <= now) held.delete(addr);
  }
}
