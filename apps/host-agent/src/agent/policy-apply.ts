// Putting a parsed policy into force, kernel first, with the kernel's work off
// the event loop: the CIDR lists go to the DataPlane's trie builder thread at
// once, the DNS name matcher compiles on this thread meanwhile, and the tries
// are swapped in as soon as both are done (on that thread), then the proxy's
// policy (with proxy workers: once they all have it). All or nothing: if the kernel build fails (or the matcher does),
// nothing changes.
import type { KernelPolicy, PreparedIpPolicy } from '@cgfence/bpf';
import type { BlocklistEntry } from '../policy/entry-types';
import { createPolicy, Policy, policyCidrs, policyNames } from '../policy/policy';

/** What applyPolicy needs of the DataPlane. */
export interface IpPolicyPreparer {
  prepareIpPolicy(p: KernelPolicy): Pick<PreparedIpPolicy, 'commit' | 'discard'>;
}

export interface PolicyMeta {
  readonly version: string;
  readonly hash: string;
}

export interface AppliedPolicy {
  readonly policy: Policy;
  /** Distinct CIDRs the kernel now holds per family (and distinct names in the backstop). */
  readonly kernel: { v4: number; v6: number; names?: number };
}

/**
 * Starts the kernel's tries building (worker thread), then names the policy
 * and compiles the matcher on this thread while they build, then swaps the
 * tries in and hands the policy to `install` (the proxy), in that order.
 * `meta` may be a function, called once the build has started (for work
 * that can overlap it, like hashing a file); if it returns undefined the
 * policy is not applied (e.g. unchanged) and this resolves undefined.
 */
export async function applyPolicy(
  plane: IpPolicyPreparer,
  entries: readonly BlocklistEntry[],
  meta: PolicyMeta | (() => PolicyMeta | undefined),
  install: (policy: Policy) => void | Promise<void>,
): Promise<AppliedPolicy | undefined> {
  // The CIDR tries and the name backstop's map: built and swapped together on the builder thread.
  const prepared = plane.prepareIpPolicy({ ...policyCidrs(entries), names: policyNames(entries) });
  let policy: Policy;
  try {
    const m = typeof meta === 'function' ? meta() : meta;
    if (m === undefined) {
      prepared.discard();
      return undefined;
    }
    policy = createPolicy(entries, m);
  } catch (err) {
    prepared.discard();
    throw err;
  }
  const kernel = await prepared.commit();
  await install(policy);
  return { policy, kernel };
}
