import { DomainMatcher } from './domain-matcher';
import type { BlocklistCodec, BlocklistEntry, BlocklistParseError } from './entry-types';

/** One compiled blocklist version, immutable once built. */
export interface Policy {
  /** Human label of the version, e.g. 'v3'. */
  readonly version: string;
  /** Content hash of the canonical entries ('sha256:…'). */
  readonly hash: string;
  readonly entries: readonly BlocklistEntry[];
  readonly matcher: DomainMatcher;
  readonly cidrs: { readonly v4: readonly string[]; readonly v6: readonly string[] };
  /** Exact names flagged '!resolve': resolved at load time, their addresses blocked at the IP layer. */
  readonly resolveNames: readonly string[];
}

export type PolicyLoadResult =
  | { readonly ok: true; readonly policy: Policy; readonly merged: number }
  | { readonly ok: false; readonly errors: readonly BlocklistParseError[]; readonly message: string };

/**
 * The CIDR lists of parsed entries, per family: what the kernel needs, known
 * before (and without) compiling the name matcher, so the kernel's tries can
 * be built while the matcher compiles.
 */
export function policyCidrs(entries: readonly BlocklistEntry[]): { v4: string[]; v6: string[] } {
  const v4: string[] = [];
  const v6: string[] = [];
  for (const e of entries) {
    if (e.kind === 'cidr4') v4.push(e.value);
    else if (e.kind === 'cidr6') v6.push(e.value);
  }
  return { v4, v6 };
}

/**
 * The listed names for the kernel's name backstop (fail open keeps them
 * blocked): exact names and wildcard suffixes, as the entries hold them.
 */
export function policyNames(entries: readonly BlocklistEntry[]): { exact: string[]; wildcard: string[] } {
  const exact: string[] = [];
  const wildcard: string[] = [];
  for (const e of entries) {
    if (e.kind === 'domain' && e.value !== '') exact.push(e.value);
    else if (e.kind === 'wildcard' && e.value !== '' && e.value !== '*.') wildcard.push(e.value);
  }
  return { exact, wildcard };
}

/** Builds a Policy from entries that are already parsed and canonical. */
export function createPolicy(entries: readonly BlocklistEntry[], meta: { version: string; hash: string }): Policy {
  // The policy owns its list from here on (callers pass what the parser
  // returned); freezing the list, not copying 200,000 entries, keeps a swap cheap.
  const frozen = Object.isFrozen(entries) ? entries : Object.freeze([...entries]);
  const { v4, v6 } = policyCidrs(frozen);
  const resolveNames: string[] = [];
  for (const e of frozen) if (e.kind === 'domain' && e.resolve === true) resolveNames.push(e.value);
  return Object.freeze({
    version: meta.version,
    hash: meta.hash,
    entries: frozen,
    matcher: DomainMatcher.compile(frozen),
    cidrs: Object.freeze({ v4: Object.freeze(v4), v6: Object.freeze(v6) }),
    resolveNames: Object.freeze(resolveNames),
  });
}

/**
 * Parses and compiles a policy file. All or nothing: any line the parser
 * rejects makes the whole file rejected, with every {line, entry, reason}.
 */
export function compilePolicy(codec: BlocklistCodec, text: string, version: string): PolicyLoadResult {
  let parsed: ReturnType<BlocklistCodec['parseBlocklistText']>;
  try {
    parsed = codec.parseBlocklistText(text);
  } catch (err) {
    const errors = [{ line: 0, entry: '', reason: `parser failed: ${(err as Error).message}` }];
    return { ok: false, errors, message: formatPolicyErrors(version, errors) };
  }
  if (parsed.errors.length > 0) {
    return { ok: false, errors: parsed.errors, message: formatPolicyErrors(version, parsed.errors) };
  }
  const policy = createPolicy(parsed.entries, { version, hash: codec.contentHash(parsed.entries) });
  return { ok: true, policy, merged: parsed.merged };
}

export function formatPolicyErrors(version: string, errors: readonly BlocklistParseError[]): string {
  const shown = errors.slice(0, 20).map((e) => `  line ${e.line}: ${JSON.stringify(e.entry)}: ${e.reason}`);
  const more = errors.length > shown.length ? [`  … and ${errors.length - shown.length} more`] : [];
  return [`policy ${version} rejected (${errors.length} error${errors.length === 1 ? '' : 's'}):`, ...shown, ...more].join('\n');
}

export type PolicyListener = (policy: Policy, previous: Policy | undefined) => void;

/**
 * Holds the policy in force. `load` swaps in a new one only when the whole
 * file compiled; on failure the previous policy stays, untouched.
 */
export class PolicyStore {
  private policy: Policy | undefined;
  private readonly listeners = new Set<PolicyListener>();

  constructor(private readonly codec: BlocklistCodec) {}

  get current(): Policy | undefined {
    return this.policy;
  }

  load(text: string, version: string): PolicyLoadResult {
    const result = compilePolicy(this.codec, text, version);
    if (result.ok) this.apply(result.policy);
    return result;
  }

  /** Swaps in an already compiled policy (e.g. one restored from disk). */
  apply(policy: Policy): void {
    const previous = this.policy;
    this.policy = policy;
    for (const listener of this.listeners) listener(policy, previous);
  }

  onChange(listener: PolicyListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}
