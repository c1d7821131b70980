import type { PolicyMeta } from '../agent/policy-apply';
import type { BlocklistEntry } from './entry-types';
import type { Policy } from './policy';

/** What a reload reports (control socket `reload`, SIGHUP). */
export interface ReloadResult {
  readonly reloaded: boolean;
  readonly error?: string;
}

/**
 * Where the policy comes from: a file (standalone mode) or the policy server
 * (fleet mode). Each composition of the agent provides one.
 */
export abstract class PolicySource {
  /** For status: the file, or the policy server. */
  abstract readonly description: string;
  /** Puts the policy the agent starts with in place (before the proxy and the kernel start). */
  abstract boot(): Promise<void>;
  /** Reads the file again / asks the server again. */
  abstract reload(why: string): Promise<ReloadResult>;
}

/** Something that puts a policy into force (the data plane and the DNS proxy). */
export interface PolicyEnforcer {
  apply(entries: readonly BlocklistEntry[], meta: PolicyMeta | (() => PolicyMeta | undefined)): Promise<Policy | undefined>;
  setMode(mode: 'enforce' | 'audit'): void;
}
