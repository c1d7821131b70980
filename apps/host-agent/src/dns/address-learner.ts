import type { Logger } from 'pino';

/**
 * Blocks addresses at the IP layer for a while (libs/bpf: DataPlane.learnAddresses,
 * through the agent's LearnedAddressBudget). `entry` is the '!resolve' entry
 * as written that the addresses count against ('*.cdn.example'; for a plain
 * entry, the name itself).
 */
export interface AddressBlocker {
  learn(addrs: string[], ttlSeconds: number, entry: string): void;
}

export interface ResolvedAddresses {
  readonly addresses: string[];
  /** Smallest TTL among the answer records; undefined when there were none. */
  readonly ttlSeconds: number | undefined;
}

/** Resolves a name's A and AAAA records through the proxy's own upstream. */
export interface NameResolver {
  resolveAddresses(name: string): Promise<ResolvedAddresses>;
}

export interface AddressLearnerOptions {
  /** Floor for the TTL handed to the blocker: short DNS TTLs would let entries lapse between refreshes. */
  readonly minTtlSeconds?: number;
  /** Ceiling: an address a name moved away from must not stay blocked for days. */
  readonly maxTtlSeconds?: number;
  /**
   * Delay before trying a pinned name again after an error or an empty
   * answer. After a failed refresh of a name whose addresses are blocked, the
   * retry comes sooner, within half their TTL (see refreshPinned).
   */
  readonly retrySeconds?: number;
  /**
   * Added to the kernel TTL of pinned names' addresses: at least the longest
   * a refresh can take to fail (the resolver's A/AAAA lookups, UDP then TCP:
   * twice its timeout), so a refresh that starts at 80% of the TTL and fails
   * still renews the addresses before they lapse. Default 5 s.
   */
  readonly refreshGraceSeconds?: number;
  readonly logger?: Logger;
  readonly now?: () => number;
}

export type LearnOutcome =
  | { readonly status: 'learned'; readonly addresses: string[]; readonly ttlSeconds: number }
  | { readonly status: 'cached' }
  | { readonly status: 'empty' }
  | { readonly status: 'failed'; readonly error: string; readonly kept?: number };

const MAX_REMEMBERED = 10_000;

/**
 * Turns '!resolve' names into blocked addresses: resolves A and AAAA upstream
 * and hands the addresses to the IP layer with the answer's smallest TTL,
 * clamped to [minTtl, maxTtl].
 *
 * Names queried by a blocked process are learned on demand and not again
 * until most of their TTL has passed. Names of the policy itself ("pinned")
 * are learned at load and refreshed at 80% of their TTL, so the kernel entry
 * is renewed before it lapses. A refresh that fails (upstream timeout,
 * SERVFAIL, a refused write) never lets them lapse: the addresses last
 * learned are blocked again for their TTL and the refresh is retried within
 * half of it, until one succeeds. (An answer with no addresses is not a
 * failure: the name has none any more, and the old ones lapse at their TTL.)
 * A pinned name's addresses are blocked for their TTL plus refreshGraceSeconds,
 * so even a refresh that takes its whole timeout to fail renews them in time.
 */
export class AddressLearner {
  private readonly minTtl: number;
  private readonly maxTtl: number;
  private readonly retryMs: number;
  private readonly graceSeconds: number;
  private readonly now: () => number;
  private readonly freshUntil = new Map<string, number>();
  private readonly running = new Map<string, Promise<LearnOutcome>>();
  private readonly pinned = new Map<string, NodeJS.Timeout | undefined>();
  /** Failed refreshes in a row, per pinned name. */
  private readonly failures = new Map<string, number>();
  /** What each pinned name last resolved to: kept blocked while refreshes fail. */
  private readonly lastLearned = new Map<string, { addresses: string[]; ttlSeconds: number }>();
  private closed = false;

  constructor(
    private readonly resolver: NameResolver,
    private readonly blocker: AddressBlocker,
    private readonly options: AddressLearnerOptions = {},
  ) {
    this.minTtl = options.minTtlSeconds ?? 30;
    this.maxTtl = options.maxTtlSeconds ?? 3600;
    this.retryMs = (options.retrySeconds ?? 60) * 1000;
    this.graceSeconds = options.refreshGraceSeconds ?? 5;
    this.now = options.now ?? Date.now;
  }

  clampTtl(ttlSeconds: number | undefined): number {
    return Math.min(this.maxTtl, Math.max(this.minTtl, ttlSeconds ?? this.minTtl));
  }

  /**
   * Learns `name` unless it was learned recently or is being learned now; its
   * addresses count against `entry` (the '!resolve' entry that matched, as
   * written; default the name itself).
   */
  learn(name: string, entry: string = name): Promise<LearnOutcome> {
    const fresh = this.freshUntil.get(name);
    if (fresh !== undefined && fresh > this.now()) return Promise.resolve({ status: 'cached' });
    return this.resolveNow(name, entry);
  }

  /** Replaces the set of names learned at policy load and kept fresh. */
  setPinnedNames(names: readonly string[]): void {
    const wanted = new Set(names);
    for (const [name, timer] of this.pinned) {
      if (!wanted.has(name)) {
        clearTimeout(timer);
        this.pinned.delete(name);
        this.lastLearned.delete(name);
        this.failures.delete(name);
      }
    }
    for (const name of wanted) {
      if (this.pinned.has(name)) continue;
      this.pinned.set(name, undefined);
      this.freshUntil.delete(name); // a new policy may carry a name learned long ago: renew now
      void this.refreshPinned(name);
    }
  }

  close(): void {
    this.closed = true;
    for (const timer of this.pinned.values()) clearTimeout(timer);
    this.pinned.clear();
  }

  private async refreshPinned(name: string): Promise<void> {
    let outcome = await this.resolveNow(name, name, this.graceSeconds);
    if (this.closed || !this.pinned.has(name)) return;
    if (outcome.status === 'learned') this.lastLearned.set(name, { addresses: outcome.addresses, ttlSeconds: outcome.ttlSeconds });
    else if (outcome.status === 'empty') this.lastLearned.delete(name);
    else if (outcome.status === 'failed') outcome = this.keepLast(name, outcome);
    const last = this.lastLearned.get(name);
    const failures = outcome.status === 'failed' ? (this.failures.get(name) ?? 0) + 1 : 0;
    if (failures > 0) this.failures.set(name, failures);
    else this.failures.delete(name);
    // After a failure with addresses kept, retry well before the renewed entries lapse; with none
    // blocked yet (the first lookup failed), retry soon: 1 s, 2 s, 4 s … up to retrySeconds.
    const delay =
      outcome.status === 'learned'
        ? outcome.ttlSeconds * 800
        : outcome.status === 'failed'
          ? Math.min(this.retryMs, last ? last.ttlSeconds * 500 : 1000 * 2 ** Math.min(failures - 1, 16))
          : this.retryMs;
    const timer = setTimeout(() => void this.refreshPinned(name), delay);
    timer.unref();
    this.pinned.set(name, timer);
  }

  /** A failed refresh: the name's last addresses are blocked again for their TTL. */
  private keepLast(name: string, failed: { status: 'failed'; error: string }): LearnOutcome {
    const last = this.lastLearned.get(name);
    if (!last) return failed;
    try {
      this.blocker.learn([...last.addresses], last.ttlSeconds + this.graceSeconds, name);
    } catch (err) {
      this.options.logger?.error({ name, err: (err as Error).message }, 'could not keep the last addresses of a !resolve name blocked');
      return failed;
    }
    this.options.logger?.warn(
      { name, err: failed.error, kept: last.addresses.length, ttlSeconds: last.ttlSeconds },
      'refreshing a !resolve name failed; its last addresses stay blocked until a refresh succeeds',
    );
    return { ...failed, kept: last.addresses.length };
  }

  private resolveNow(name: string, entry: string, graceSeconds = 0): Promise<LearnOutcome> {
    const running = this.running.get(name);
    if (running) return running;
    const work = this.resolveAndLearn(name, entry, graceSeconds).finally(() => this.running.delete(name));
    this.running.set(name, work);
    return work;
  }

  /** `graceSeconds` is added to the kernel TTL only (pinned names: see refreshGraceSeconds). */
  private async resolveAndLearn(name: string, entry: string, graceSeconds: number): Promise<LearnOutcome> {
    let resolved: ResolvedAddresses;
    try {
      resolved = await this.resolver.resolveAddresses(name);
    } catch (err) {
      const error = (err as Error).message;
      this.options.logger?.warn({ name, err: error }, 'could not resolve a !resolve name; its addresses are not blocked');
      return { status: 'failed', error };
    }
    if (this.closed) return { status: 'failed', error: 'closed' };
    if (resolved.addresses.length === 0) return { status: 'empty' };
    const ttlSeconds = this.clampTtl(resolved.ttlSeconds);
    try {
      this.blocker.learn(resolved.addresses, ttlSeconds + graceSeconds, entry);
    } catch (err) {
      const error = (err as Error).message;
      this.options.logger?.error({ name, err: error }, 'address blocker refused learned addresses');
      return { status: 'failed', error };
    }
    this.remember(name, this.now() + ttlSeconds * 800);
    return { status: 'learned', addresses: resolved.addresses, ttlSeconds };
  }

  private remember(name: string, until: number): void {
    this.freshUntil.delete(name);
    if (this.freshUntil.size >= MAX_REMEMBERED) {
      const oldest = this.freshUntil.keys().next().value;
      if (oldest !== undefined) this.freshUntil.delete(oldest);
    }
    this.freshUntil.set(name, until);
  }
}
