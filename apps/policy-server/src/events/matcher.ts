import type { BlocklistEntry } from '@cgfence/proto';

/**
 * The host agent's domain matching (apps/host-agent/src/policy/domain-matcher.ts)
 * for the server's replay: exact names, and `*.suffix` for strict subdomains
 * on label boundaries (not the apex, not `notsuffix`). The exact name wins,
 * then the longest wildcard. Names are compared lower case without the
 * trailing dot; entries are canonical already.
 */
export class SuffixMatcher {
  private constructor(
    private readonly exact: ReadonlyMap<string, string>,
    private readonly wildcards: ReadonlyMap<string, string>,
  ) {}

  static compile(entries: readonly BlocklistEntry[]): SuffixMatcher {
    const exact = new Map<string, string>();
    const wildcards = new Map<string, string>();
    for (const e of entries) {
      if (e.kind === 'domain') exact.set(e.value, e.value);
      else if (e.kind === 'wildcard') wildcards.set(e.value.startsWith('*.') ? e.value.slice(2) : e.value, e.value);
    }
    return new SuffixMatcher(exact, wildcards);
  }

  /** The entry (as written) that blocks the name, or undefined. */
  match(qname: string): string | undefined {
    let name = qname.toLowerCase();
    if (name.endsWith('.')) name = name.slice(0, -1);
    if (name === '') return undefined;
    const hit = this.exact.get(name);
    if (hit !== undefined) return hit;
    for (let dot = name.indexOf('.'); dot !== -1; dot = name.indexOf('.', dot + 1)) {
      const w = this.wildcards.get(name.slice(dot + 1));
      if (w !== undefined) return w;
    }
    return undefined;
  }
}
