import { createHash } from 'node:crypto';
import { looksLikeIPv4, parseCidr } from './address';
import { canonicalDomain, canonicalWildcard } from './domain';

/**
 * The blocklist entry grammar, shared by the policy server (REST and CLI
 * input) and the host agent (policy files). Pure: no I/O, no clock.
 *
 * One entry, as a line of text:
 *
 *     value [!resolve] [# comment]
 *
 * - value: a domain ('github.com'), a wildcard ('*.githubusercontent.com'), an
 *   IPv4 or IPv6 address or range ('10.0.0.0/8', '2001:db8::1'). See domain.ts
 *   and address.ts for the rules of each and their canonical forms.
 * - '!resolve' (domain and wildcard entries only): the agent also blocks the
 *   addresses the name resolves to. Flags may stand anywhere among the words
 *   before the comment.
 * - '#' starts the comment: everything after the first '#' (no value can
 *   contain one), trimmed. An empty comment is no comment.
 *
 * A blocklist file is one entry per line; blank lines and lines whose first
 * non-blank character is '#' are ignored. Line numbers in errors are the
 * file's own, counted from 1.
 *
 * Canonical lists: entries that are equal after canonicalisation are merged,
 * not refused (the first non-empty comment is kept, and '!resolve' on any of
 * them wins). Overlapping entries are not merged: '*.github.com' and
 * 'api.github.com', or '10.0.0.0/8' and '10.1.0.0/16', are distinct entries.
 * Every bad entry is reported, not just the first.
 */

export type EntryKind = 'domain' | 'wildcard' | 'cidr4' | 'cidr6';

export interface BlocklistEntry {
  kind: EntryKind;
  /** Canonical: 'github.com', '*.githubusercontent.com', '10.0.0.0/8', '2001:db8::/32'; single addresses as /32 or /128. */
  value: string;
  /** Free text, trimmed, on one line; omitted when empty. */
  comment?: string;
  /** '!resolve': also block the addresses the name resolves to (domain and wildcard entries only). Omitted when false. */
  resolve?: boolean;
}

/** One refused entry. `line` counts from 1; `entry` is the raw text as given. */
export interface EntryError {
  line: number;
  entry: string;
  reason: string;
}

export interface EntryInput {
  /** The value only: no comment, no flags (they have their own fields). */
  value: string;
  comment?: string;
  resolve?: boolean;
}

export interface CanonicalResult {
  /** Sorted by compareEntries, one per value. */
  entries: BlocklistEntry[];
  errors: EntryError[];
  /** How many inputs were folded into an equal entry given before them. */
  merged: number;
}

export const MAX_ENTRIES_PER_VERSION = 1_000_000;

export const RESOLVE_FLAG = '!resolve';

type Failure = { ok: false; reason: string };

/** A parsed entry with its sort key: the kind's rank then a key whose string order is the value order. */
interface Keyed {
  entry: BlocklistEntry;
  key: string;
}

type Parsed = { ok: true; keyed: Keyed } | Failure;

const KIND_RANK: Record<EntryKind, string> = { domain: '0', wildcard: '1', cidr4: '2', cidr6: '3' };

/** Characters a one-line comment may not hold: they would break the line format. */
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const COMMENT_CONTROL = /[\u0000-\u0008\u000a-\u001f\u007f\u0085\u2028\u2029]/;
const WHITESPACE = /\s/;
const WHITESPACE_RUN = /\s+/;

function q(text: string): string {
  return JSON.stringify(text.length > 48 ? `${text.slice(0, 45)}...` : text);
}

function makeEntry(kind: EntryKind, value: string, comment: string, resolve: boolean): BlocklistEntry {
  const entry: BlocklistEntry = { kind, value };
  if (comment !== '') entry.comment = comment;
  if (resolve) entry.resolve = true;
  return entry;
}

interface Value {
  kind: EntryKind;
  value: string;
  key: string;
}

/** Classifies and canonicalises a bare value (already trimmed). */
function parseValueKeyed(text: string): ({ ok: true } & Value) | Failure {
  if (text === '') return { ok: false, reason: 'empty entry' };
  if (text.includes('://')) return { ok: false, reason: 'looks like a URL: give only the host name ("github.com")' };
  if (WHITESPACE.test(text)) return { ok: false, reason: `value ${q(text)} contains whitespace` };
  if (text.includes('*')) {
    const name = canonicalWildcard(text);
    return name.ok ? { ok: true, kind: 'wildcard', value: name.value, key: KIND_RANK.wildcard + name.value } : name;
  }
  if (text.includes(':')) {
    // IPv6 always has at least two colons; one colon is a host:port.
    if (text.indexOf(':') === text.lastIndexOf(':')) {
      return { ok: false, reason: `${q(text)}: a port cannot be blocked; give only the host name or address` };
    }
  } else if (!text.includes('/') && !looksLikeIPv4(text)) {
    const name = canonicalDomain(text);
    return name.ok ? { ok: true, kind: 'domain', value: name.value, key: KIND_RANK.domain + name.value } : name;
  }
  const cidr = parseCidr(text);
  if (!cidr.ok) return cidr;
  const kind: EntryKind = cidr.family === 4 ? 'cidr4' : 'cidr6';
  return { ok: true, kind, value: cidr.value, key: KIND_RANK[kind] + cidr.sortKey };
}

/**
 * Canonicalises a bare value (no comment, no flags): its kind and canonical
 * text, or why it is not a valid entry. The DNS proxy and the CLI use this to
 * compare what a user typed with what a list holds.
 */
export function parseEntryValue(value: string): { ok: true; kind: EntryKind; value: string } | Failure {
  const parsed = parseValueKeyed(value.trim());
  return parsed.ok ? { ok: true, kind: parsed.kind, value: parsed.value } : parsed;
}

function checkComment(comment: string): Failure | undefined {
  return COMMENT_CONTROL.test(comment) ? { ok: false, reason: 'comment contains a line break or control character' } : undefined;
}

function withFlags(value: Value, comment: string, resolve: boolean, flagName: string): Parsed {
  if (resolve && (value.kind === 'cidr4' || value.kind === 'cidr6')) {
    return { ok: false, reason: `${flagName} applies only to domain and wildcard entries, not to an address range` };
  }
  return { ok: true, keyed: { entry: makeEntry(value.kind, value.value, comment, resolve), key: value.key } };
}

/** Parses one line: value, flags, comment. */
function parseLine(raw: string): Parsed {
  const hash = raw.indexOf('#');
  const body = (hash >= 0 ? raw.slice(0, hash) : raw).trim();
  const comment = hash >= 0 ? raw.slice(hash + 1).trim() : '';
  if (body === '') return { ok: false, reason: hash >= 0 ? 'no entry before the "#" comment' : 'empty entry' };
  const bad = checkComment(comment);
  if (bad) return bad;

  let value: string | undefined;
  let resolve = false;
  for (const word of WHITESPACE.test(body) ? body.split(WHITESPACE_RUN) : [body]) {
    if (word === RESOLVE_FLAG) {
      resolve = true;
    } else if (word.startsWith('!')) {
      return { ok: false, reason: `unknown flag ${q(word)} (the only flag is "${RESOLVE_FLAG}")` };
    } else if (value === undefined) {
      value = word;
    } else {
      return { ok: false, reason: `unexpected text ${q(word)} after ${q(value)}: one entry per line, comments start with "#"` };
    }
  }
  if (value === undefined) return { ok: false, reason: `"${RESOLVE_FLAG}" without an entry` };
  const parsed = parseValueKeyed(value);
  if (!parsed.ok) return parsed;
  return withFlags(parsed, comment, resolve, `"${RESOLVE_FLAG}"`);
}

/** Parses an EntryInput object; its value must be bare. Checked at run time too: REST bodies end up here. */
function parseInput(input: EntryInput): Parsed {
  const value = input.value.trim();
  if (value.includes('#') || value.split(WHITESPACE_RUN).some((word) => word.startsWith('!'))) {
    return { ok: false, reason: 'give only the value in "value": the comment and the resolve flag have their own fields' };
  }
  let comment = '';
  if (input.comment !== undefined && input.comment !== null) {
    if (typeof input.comment !== 'string') return { ok: false, reason: 'comment must be a string' };
    comment = input.comment.trim();
    const bad = checkComment(comment);
    if (bad) return bad;
  }
  if (input.resolve !== undefined && input.resolve !== null && typeof input.resolve !== 'boolean') {
    return { ok: false, reason: 'resolve must be true or false' };
  }
  const parsed = parseValueKeyed(value);
  if (!parsed.ok) return parsed;
  return withFlags(parsed, comment, input.resolve === true, 'resolve');
}

function isEntryInput(input: unknown): input is EntryInput {
  return typeof input === 'object' && input !== null && typeof (input as { value?: unknown }).value === 'string';
}

function rawText(input: unknown): string {
  if (typeof input === 'string') return input;
  if (isEntryInput(input)) return input.value;
  try {
    return String(JSON.stringify(input));
  } catch {
    return String(input);
  }
}

function parseAny(input: unknown): Parsed {
  if (typeof input === 'string') return parseLine(input);
  if (isEntryInput(input)) return parseInput(input);
  return { ok: false, reason: 'an entry must be a string or an object with a string "value"' };
}

/**
 * Parses one entry line: 'value [!resolve] [# comment]'.
 * A bare value is a valid line too.
 */
export function parseEntry(raw: string): { ok: true; entry: BlocklistEntry } | { ok: false; reason: string } {
  const parsed = parseLine(raw);
  return parsed.ok ? { ok: true, entry: parsed.keyed.entry } : parsed;
}

/** Sort key of an entry that did not come through the parser (compareEntries, canonicalText, a base version). */
function keyOf(entry: BlocklistEntry): string {
  const rank = KIND_RANK[entry.kind] ?? '9';
  if (entry.kind === 'cidr4' || entry.kind === 'cidr6') {
    const cidr = parseCidr(entry.value);
    // Not canonical input; sorts after every valid range of its kind rather than throwing.
    return cidr.ok ? rank + cidr.sortKey : `${rank}~${entry.value}`;
  }
  return rank + entry.value;
}

function tieBreak(a: BlocklistEntry, b: BlocklistEntry): number {
  if (a.value !== b.value) return a.value < b.value ? -1 : 1;
  const ra = a.resolve === true;
  const rb = b.resolve === true;
  if (ra !== rb) return ra ? 1 : -1;
  const ca = a.comment ?? '';
  const cb = b.comment ?? '';
  if (ca !== cb) return ca < cb ? -1 : 1;
  return 0;
}

function compareKeyed(a: Keyed, b: Keyed): number {
  if (a.key !== b.key) return a.key < b.key ? -1 : 1;
  return tieBreak(a.entry, b.entry);
}

/**
 * The one order entries are kept in: by kind (domain, wildcard, cidr4, cidr6),
 * then domains and wildcards by their canonical text (code-unit order, which
 * for A-labels is byte order), then ranges numerically by network address and
 * then prefix length ('9.0.0.0/8' before '10.0.0.0/8', '10.0.0.0/8' before
 * '10.0.0.0/16'). Entries with the same value order by flag, then comment, so
 * the order is total.
 */
export function compareEntries(a: BlocklistEntry, b: BlocklistEntry): number {
  const ka = keyOf(a);
  const kb = keyOf(b);
  if (ka !== kb) return ka < kb ? -1 : 1;
  return tieBreak(a, b);
}

function sortEntries(entries: readonly BlocklistEntry[]): BlocklistEntry[] {
  return entries
    .map((entry): Keyed => ({ entry, key: keyOf(entry) }))
    .sort(compareKeyed)
    .map((keyed) => keyed.entry);
}

/** Collects parsed entries, merging equal values, and reports the result sorted. */
class EntrySet {
  private readonly byValue = new Map<string, Keyed>();
  private merged = 0;
  readonly errors: EntryError[] = [];

  /** Takes ownership of keyed.entry: a later duplicate may change its comment or flag. */
  add(keyed: Keyed): void {
    const existing = this.byValue.get(keyed.entry.value);
    if (existing === undefined) {
      this.byValue.set(keyed.entry.value, keyed);
      return;
    }
    this.merged++;
    if (existing.entry.comment === undefined && keyed.entry.comment !== undefined) existing.entry.comment = keyed.entry.comment;
    if (keyed.entry.resolve === true) existing.entry.resolve = true;
  }

  addInput(input: unknown, line: number): void {
    const parsed = parseAny(input);
    if (parsed.ok) this.add(parsed.keyed);
    else this.errors.push({ line, entry: rawText(input), reason: parsed.reason });
  }

  result(): CanonicalResult {
    const keyed = [...this.byValue.values()].sort(compareKeyed);
    const errors = [...this.errors];
    if (keyed.length > MAX_ENTRIES_PER_VERSION) {
      errors.push({ line: 0, entry: '', reason: `too many entries: ${keyed.length} (limit ${MAX_ENTRIES_PER_VERSION})` });
    }
    return { entries: keyed.map((k) => k.entry), errors, merged: this.merged };
  }
}

/**
 * Canonicalises a list of entries given one by one (REST body, CLI arguments).
 * A string is an entry line and may carry '!resolve' and '# comment'; an
 * EntryInput carries them in their own fields. Errors count lines from 1 in
 * the order given. More than MAX_ENTRIES_PER_VERSION entries after merging is
 * reported as one error on line 0; the entries are still returned.
 */
export function canonicalise(inputs: readonly (string | EntryInput)[]): CanonicalResult {
  const set = new EntrySet();
  for (let i = 0; i < inputs.length; i++) set.addInput(inputs[i], i + 1);
  return set.result();
}

/**
 * Parses a blocklist file (see the module comment for the format). Accepts
 * '\n' and '\r\n' line ends and a leading byte order mark.
 */
export function parseBlocklistText(text: string): CanonicalResult {
  const set = new EntrySet();
  const lines = (text.startsWith('\ufeff') ? text.slice(1) : text).split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].endsWith('\r') ? lines[i].slice(0, -1) : lines[i];
    const trimmed = line.trim();
    if (trimmed === '' || trimmed.startsWith('#')) continue;
    set.addInput(line, i + 1);
  }
  return set.result();
}

/** One entry as a line of canonical text: 'value[ !resolve][  # comment]'. */
export function formatEntry(entry: BlocklistEntry): string {
  let line = entry.value;
  if (entry.resolve === true) line += ` ${RESOLVE_FLAG}`;
  if (entry.comment !== undefined && entry.comment !== '') line += `  # ${entry.comment}`;
  return line;
}

/**
 * The canonical serialisation: one formatEntry line per entry, sorted by
 * compareEntries, each ending in '\n' (so '' for no entries). It is what
 * contentHash hashes and what policy files hold; parseBlocklistText reads it
 * back to the same entries. Expects canonical entries (from canonicalise or
 * parseBlocklistText); it sorts but does not re-validate them.
 */
export function canonicalText(entries: readonly BlocklistEntry[]): string {
  const sorted = sortEntries(entries);
  let text = '';
  const chunk: string[] = [];
  // Joined in chunks: one string of a million pieces is slower than a few of ten thousand.
  for (let i = 0; i < sorted.length; i++) {
    chunk.push(formatEntry(sorted[i]));
    if (chunk.length === 10_000 || i === sorted.length - 1) {
      text += `${chunk.join('\n')}\n`;
      chunk.length = 0;
    }
  }
  return text;
}

/** 'sha256:' and the lower-case hex SHA-256 of canonicalText(entries) as UTF-8. */
export function contentHash(entries: readonly BlocklistEntry[]): string {
  return `sha256:${createHash('sha256').update(canonicalText(entries), 'utf8').digest('hex')}`;
}

/**
 * What changed from one list to another. Entries are compared whole (value,
 * flag and comment), so a changed comment or flag shows as the old entry
 * removed and the new one added. Both lists come back sorted.
 */
export function diffEntries(
  from: readonly BlocklistEntry[],
  to: readonly BlocklistEntry[],
): { added: BlocklistEntry[]; removed: BlocklistEntry[] } {
  const fromLines = new Set(from.map(formatEntry));
  const toLines = new Set(to.map(formatEntry));
  const only = (list: readonly BlocklistEntry[], other: Set<string>) => {
    const seen = new Set<string>();
    return sortEntries(
      list.filter((entry) => {
        const line = formatEntry(entry);
        if (other.has(line) || seen.has(line)) return false;
        seen.add(line);
        return true;
      }),
    );
  };
  return { added: only(to, fromLines), removed: only(from, toLines) };
}

/**
 * A new list from a base list and a change: `remove` first, then `add`.
 * Removals name values (canonicalised first, so 'GitHub.com.' removes
 * 'github.com'); removing a value the base does not hold is an error
 * {entry, reason: 'not in the base version'}. To change an entry's comment or
 * flag, remove it and add it again. An added entry equal to one the base keeps
 * is merged with it like any duplicate (the base's comment stays, '!resolve'
 * wins). Errors count lines from 1 within their own list: added entries
 * first, then removals.
 */
export function applyDiff(
  base: readonly BlocklistEntry[],
  add: readonly (string | EntryInput)[],
  remove: readonly string[],
): CanonicalResult {
  const baseValues = new Set(base.map((entry) => entry.value));
  const removed = new Set<string>();
  const removeErrors: EntryError[] = [];
  for (let i = 0; i < remove.length; i++) {
    const raw = remove[i];
    const parsed = typeof raw === 'string' ? parseValueKeyed(raw.trim()) : { ok: false as const, reason: 'a removal must be a string' };
    if (!parsed.ok) removeErrors.push({ line: i + 1, entry: rawText(raw), reason: parsed.reason });
    else if (!baseValues.has(parsed.value)) removeErrors.push({ line: i + 1, entry: raw, reason: 'not in the base version' });
    else removed.add(parsed.value);
  }

  const set = new EntrySet();
  for (const entry of base) {
    if (!removed.has(entry.value)) set.add({ entry: { ...entry }, key: keyOf(entry) });
  }
  for (let i = 0; i < add.length; i++) set.addInput(add[i], i + 1);
  for (const error of removeErrors) set.errors.push(error);
  return set.result();
}
