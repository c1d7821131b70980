// The proxy's check of upstream answers to allowed names: does the answer's
// chain lead to a listed name? (`releases.internal.example CNAME
// objects.githubusercontent.com`: the asked name is allowed, the name whose
// address the client gets is listed.)
//
// The reader is bounded like the question decoder (dns-query.ts): it walks
// the header, the echoed question and the answer section, and reads only
// names: the owner name of every answer record and the target of every CNAME
// and DNAME record. Caps (docs/operations.md, "DNS answer caps"):
// - answer records walked: ANSWER_CAPS.maxRecords (beyond it: unreadable);
// - distinct names collected: ANSWER_CAPS.maxNames (beyond it: unreadable);
// - per name: ANSWER_CAPS.maxLabels labels, 255 bytes, and
//   ANSWER_CAPS.maxPointerHops compression pointers, each pointing strictly
//   before the previous one's target (so a loop is impossible);
// - the message itself is at most 65535 bytes (UDP or a TCP frame).
// Work is bounded by the caps, never by what the counts in the header say.
//
// An answer the reader cannot read (a count or a name past a cap, a record
// running off the message, a CNAME whose target overruns its rdata) cannot be
// shown to be clean: in enforce mode the proxy answers SERVFAIL (fail closed:
// a listed name could hide in what was not read), in audit mode it passes the
// answer and counts it. A truncated answer (TC set) is read as far as whole
// records go: the client retries over TCP, and that answer is checked whole.

import { normalizeDomainName } from '../policy/domain-matcher';
import type { BlocklistEntry } from '../policy/entry-types';
import { HEADER_BYTES } from './dns-wire';

export const ANSWER_CAPS = {
  /**
   * Answer records walked. A CNAME chain (resolvers stop following at 8 to
   * 16 links) plus a CDN's address records is a few dozen at most.
   */
  maxRecords: 256,
  /** Distinct names (owners and targets): a chain's links plus the asked name. */
  maxNames: 32,
  /** Compression pointers followed in one name: a compressor needs one per name, a chain of suffixes a few. */
  maxPointerHops: 16,
  maxLabels: 127,
  maxNameBytes: 255,
} as const;

/** Extended DNS Error "Other" (RFC 8914 §4.1): the SERVFAIL for an answer the check could not read. */
export const EDE_OTHER = 0;

const TYPE_CNAME = 5;
const TYPE_DNAME = 39;
const FLAG_TC = 0x0200;

export type AnswerProblem =
  /** Shorter than a header, or more than one question. */
  | 'bad-header'
  /** A name breaks a cap (labels, length, pointer hops or direction) or runs off the message. */
  | 'bad-name'
  /** A record runs off the message, or a CNAME/DNAME target overruns its rdata. */
  | 'bad-record'
  /** More answer records than ANSWER_CAPS.maxRecords. */
  | 'too-many-records'
  /** More distinct names than ANSWER_CAPS.maxNames. */
  | 'too-many-names';

export type ChainRead =
  | {
      readonly ok: true;
      /** Distinct names of the answer section (owners, CNAME/DNAME targets), normalised, in order of appearance. */
      readonly names: readonly string[];
    }
  | { readonly ok: false; readonly problem: AnswerProblem };

interface NameRead {
  /** Offset just past the name where it sits; -1 when invalid. */
  readonly end: number;
  readonly name: string;
}

const BAD_NAME: NameRead = { end: -1, name: '' };

/**
 * Reads the name at `start` within `buf[0, limitEnd)` (labels in place must
 * end before limitEnd; pointers may go anywhere earlier in the message).
 * Work: at most maxNameBytes bytes plus maxPointerHops hops.
 */
function readName(buf: Buffer, start: number, limitEnd: number): NameRead {
  let name = '';
  let pos = start;
  let end = -1;
  let hops = 0;
  let before = start; // the next pointer must point before this
  let nameBytes = 1; // the root label
  let labels = 0;
  let bound = limitEnd; // in place, labels must stay inside the record; after a pointer, inside the message
  for (;;) {
    if (pos >= bound) return BAD_NAME;
    const len = buf[pos];
    if (len === 0) {
      if (end < 0) end = pos + 1;
      return { end, name };
    }
    const kind = len & 0xc0;
    if (kind === 0xc0) {
      if (pos + 1 >= bound) return BAD_NAME;
      const target = ((len & 0x3f) << 8) | buf[pos + 1];
      if (++hops > ANSWER_CAPS.maxPointerHops || target < HEADER_BYTES || target >= before) return BAD_NAME;
      if (end < 0) end = pos + 2;
      before = target;
      pos = target;
      bound = buf.length;
      continue;
    }
    if (kind !== 0) return BAD_NAME; // 0x40/0x80: extended label types, obsolete (RFC 6891 §5)
    nameBytes += 1 + len;
    if (nameBytes > ANSWER_CAPS.maxNameBytes || ++labels > ANSWER_CAPS.maxLabels || pos + 1 + len > bound) return BAD_NAME;
    name += (labels > 1 ? '.' : '') + buf.toString('utf8', pos + 1, pos + 1 + len);
    pos += 1 + len;
  }
}

/**
 * Offset just past the part of the name at `start` that sits there (its
 * labels up to the root label or the first pointer), or -1 when that part
 * breaks a cap or leaves [start, bound). Pointers are not followed: readName
 * checks them.
 */
function inPlaceEnd(buf: Buffer, start: number, bound: number): number {
  let pos = start;
  let nameBytes = 1;
  let labels = 0;
  for (;;) {
    if (pos >= bound) return -1;
    const len = buf[pos];
    if (len === 0) return pos + 1;
    if ((len & 0xc0) === 0xc0) return pos + 2 <= bound ? pos + 2 : -1;
    if ((len & 0xc0) !== 0) return -1;
    nameBytes += 1 + len;
    if (nameBytes > ANSWER_CAPS.maxNameBytes || ++labels > ANSWER_CAPS.maxLabels) return -1;
    pos += 1 + len;
  }
}

/**
 * The distinct names of an answer's answer section: owner names of every
 * record and the targets of CNAME and DNAME records. Never throws; work is
 * bounded by ANSWER_CAPS whatever the message says.
 */
export function readAnswerChain(buf: Buffer): ChainRead {
  if (buf.length < HEADER_BYTES) return { ok: false, problem: 'bad-header' };
  const truncated = (buf.readUInt16BE(2) & FLAG_TC) !== 0;
  const qdcount = buf.readUInt16BE(4);
  const ancount = buf.readUInt16BE(6);
  if (qdcount > 1) return { ok: false, problem: 'bad-header' };
  if (ancount > ANSWER_CAPS.maxRecords) return { ok: false, problem: 'too-many-records' };
  let pos = HEADER_BYTES;
  const names = new Set<string>();
  const add = (name: string): boolean => {
    if (names.has(name)) return true;
    if (names.size >= ANSWER_CAPS.maxNames) return false;
    names.add(name);
    return true;
  };
  // A name's bytes where it sits (labels up to its end or first pointer) fix
  // the whole name: the same bytes again (the owner of every A record of a
  // CDN, compressed or not) cost a short walk, a hash and a byte compare.
  const seen = new Map<number, { start: number; end: number; name: string }>();
  // Names decoded so far by where they start: a name that is only a pointer
  // (the usual owner, 0xc00c: the question) to one of them is that name.
  const byStart = new Map<number, string>();
  const nameAt = (start: number, bound: number): NameRead => {
    const end = inPlaceEnd(buf, start, bound);
    if (end < 0) return BAD_NAME;
    if (end === start + 2) {
      const known = byStart.get(((buf[start] & 0x3f) << 8) | buf[start + 1]);
      if (known !== undefined) return { end, name: known };
    }
    let hash = 0x811c9dc5;
    for (let j = start; j < end; j++) hash = Math.imul(hash ^ buf[j], 0x01000193);
    const hit = seen.get(hash);
    if (hit !== undefined && hit.end - hit.start === end - start && sameBytes(buf, hit.start, start, end - start)) return { end, name: hit.name };
    const read = readName(buf, start, bound);
    if (read.end < 0) return BAD_NAME;
    const name = normalizeDomainName(read.name);
    if (hit === undefined && seen.size < 2 * ANSWER_CAPS.maxNames) seen.set(hash, { start, end, name });
    if (byStart.size < 2 * ANSWER_CAPS.maxNames) byStart.set(start, name);
    return { end: read.end, name };
  };
  if (qdcount === 1) {
    const q = nameAt(pos, buf.length);
    if (q.end < 0 || q.end + 4 > buf.length) return truncated && ancount === 0 ? { ok: true, names: [] } : { ok: false, problem: 'bad-name' };
    pos = q.end + 4;
  }
  for (let i = 0; i < ancount; i++) {
    const owner = nameAt(pos, buf.length);
    if (owner.end < 0 || owner.end + 10 > buf.length) return truncated ? done(names) : { ok: false, problem: owner.end < 0 ? 'bad-name' : 'bad-record' };
    const type = buf.readUInt16BE(owner.end);
    const rdlength = buf.readUInt16BE(owner.end + 8);
    const rdata = owner.end + 10;
    const next = rdata + rdlength;
    if (next > buf.length) return truncated ? done(names) : { ok: false, problem: 'bad-record' };
    if (!add(owner.name)) return { ok: false, problem: 'too-many-names' };
    if (type === TYPE_CNAME || type === TYPE_DNAME) {
      const target = nameAt(rdata, next);
      if (target.end < 0) return { ok: false, problem: 'bad-record' };
      if (!add(target.name)) return { ok: false, problem: 'too-many-names' };
    }
    pos = next;
  }
  return done(names);
}

function sameBytes(buf: Buffer, a: number, b: number, length: number): boolean {
  for (let k = 0; k < length; k++) if (buf[a + k] !== buf[b + k]) return false;
  return true;
}

function done(names: Set<string>): ChainRead {
  return { ok: true, names: [...names] };
}

/** What the policy says about an upstream answer to an allowed name. */
export type AnswerVerdict =
  | { readonly verdict: 'clean' }
  /** A name of the answer's chain is listed: `name` (normalised) matched `entry`. */
  | { readonly verdict: 'listed'; readonly name: string; readonly entry: BlocklistEntry }
  | { readonly verdict: 'unreadable'; readonly problem: AnswerProblem };

export interface NameMatcher {
  match(name: string): BlocklistEntry | undefined;
}

const CLEAN: AnswerVerdict = { verdict: 'clean' };

/**
 * Checks an upstream answer for an allowed name: the first name of its answer
 * section that the matcher lists (the same exact and wildcard matching as
 * questions), or why it could not be read. `askedName` (normalised), already
 * matched as the question, is not matched again. An answer with no answer records
 * (NXDOMAIN, NODATA, a local SERVFAIL) is clean after reading the header.
 */
export function screenAnswer(answer: Buffer, matcher: NameMatcher, askedName?: string): AnswerVerdict {
  if (answer.length >= HEADER_BYTES && answer.readUInt16BE(6) === 0) return CLEAN;
  const chain = readAnswerChain(answer);
  if (!chain.ok) return { verdict: 'unreadable', problem: chain.problem };
  for (const name of chain.names) {
    if (name === askedName) continue; // the question itself was matched before it was forwarded
    const entry = matcher.match(name);
    if (entry !== undefined) return { verdict: 'listed', name, entry };
  }
  return CLEAN;
}
