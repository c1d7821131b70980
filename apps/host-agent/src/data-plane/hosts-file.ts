import { isIP } from 'node:net';
import type { DomainMatcher } from '../policy/domain-matcher';
import { normalizeDomainName } from '../policy/domain-matcher';

/**
 * The largest hosts file read (bytes). A bigger one is read up to here and
 * the rest ignored, with an alert: /etc/hosts files are a few KB; ad-blocking
 * hosts files reach a few MB.
 */
export const HOSTS_FILE_MAX_BYTES = 4 * 1024 * 1024;

/** One name of the hosts file that the policy lists, with the address it maps to. */
export interface ListedHostsEntry {
  /** 1-based line of the hosts file. */
  readonly line: number;
  readonly address: string;
  /** The name as written in the file (lower-cased). */
  readonly name: string;
  /** The policy entry that lists it (exact name or '*.suffix'). */
  readonly entry: string;
}

/**
 * The entries of a hosts file (hosts(5): an address, then one or more names,
 * '#' starts a comment) whose names the policy lists. Addresses that are not
 * IPv4/IPv6 (or carry a zone, e.g. fe80::1%eth0) and unreadable names are skipped.
 */
export function listedHostsEntries(text: string, matcher: DomainMatcher): ListedHostsEntry[] {
  const out: ListedHostsEntry[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const hash = lines[i].indexOf('#');
    const fields = (hash >= 0 ? lines[i].slice(0, hash) : lines[i]).trim().split(/\s+/);
    if (fields.length < 2 || isIP(fields[0]) === 0 || fields[0].includes('%')) continue;
    for (const raw of fields.slice(1)) {
      let name: string;
      try {
        name = normalizeDomainName(raw);
      } catch {
        continue;
      }
      const e = matcher.match(name);
      if (e) out.push({ line: i + 1, address: fields[0], name, entry: e.value });
    }
  }
  return out;
}
