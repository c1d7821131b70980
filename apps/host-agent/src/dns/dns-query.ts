// The proxy's decoder for incoming queries: bounded in every dimension, so a
// message costs the same small amount of work whatever its bytes say.
//
// It reads what a decision needs and nothing more: the header, the one
// question, and the OPT record of the additional section (EDNS, for the DO
// bit and whether to answer with an OPT record). Answer and authority
// records are not decoded: a query carries none (RFC 1035 §4.1.1; UPDATE
// and NOTIFY are other opcodes, answered NOTIMP before their sections
// matter), so any count there is FORMERR.
//
// Caps (see docs/operations.md, "DNS message caps"):
// - message size: QUERY_CAPS.maxMessageBytes;
// - labels per name: QUERY_CAPS.maxLabels, name length 255 (RFC 1035 §2.3.4);
// - compression pointers per name: QUERY_CAPS.maxPointerHops, and each must
//   point strictly backwards, before the previous one's target, so a loop is
//   impossible even below the hop cap;
// - exactly one question;
// - additional records looked at: QUERY_CAPS.maxAdditionals.
// dns-packet (whose name decoder follows pointers without bound) is kept for
// building and checking answers in tests, never for what a client sent.

import { HEADER_BYTES } from './dns-wire';

export const QUERY_CAPS = {
  /** A query is a header, one question and a few additional records: 4 KiB is far more than any real client sends. */
  maxMessageBytes: 4096,
  /** At most 127 labels fit in a 255-byte name; beyond it the name is invalid anyway. */
  maxLabels: 127,
  /** Wire length of a name, RFC 1035 §2.3.4. */
  maxNameBytes: 255,
  /** Compression pointers followed in one name (a query's question normally has none). */
  maxPointerHops: 8,
  /** Additional records walked looking for OPT (OPT, TSIG, a cookie: a handful). */
  maxAdditionals: 4,
} as const;

const TYPE_OPT = 41;
const EDNS_DO = 0x8000;

/** Why a message is not a query the proxy decides on. */
export type QueryProblem =
  /** Shorter than a header: nothing to answer to; dropped. */
  | 'short'
  /** A response (QR set): never answered, or two proxies could bounce packets forever; dropped. */
  | 'response'
  /** Larger than maxMessageBytes: FORMERR from the header alone. */
  | 'too-large'
  /** Question count other than one, or answer/authority records in a QUERY: FORMERR. */
  | 'question-count'
  /** More additional records than maxAdditionals: FORMERR. */
  | 'too-many-additionals'
  /** The question's name breaks a cap (labels, length, pointer hops or direction) or runs off the message: dropped. */
  | 'bad-name'
  /** An additional record runs off the message: dropped. */
  | 'bad-additional';

/** What the proxy does with a rejected message: answer FORMERR, or drop it (counted as malformed). */
export function answersFormerr(problem: QueryProblem): boolean {
  return problem === 'too-large' || problem === 'question-count' || problem === 'too-many-additionals';
}

export interface ParsedQuery {
  readonly ok: true;
  readonly id: number;
  readonly opcode: number;
  /** The question's name as text, labels joined with '.', no trailing dot, as sent (case kept). */
  readonly name: string;
  readonly qtype: number;
  readonly qclass: number;
  /** Offset just past the question (name, type, class). */
  readonly questionEnd: number;
  /** Present when the query carried an OPT record. */
  readonly edns?: { readonly dnssecOk: boolean };
}

export interface RejectedQuery {
  readonly ok: false;
  readonly problem: QueryProblem;
  /** Where the question ends when it could be read (for echoing it in a FORMERR), else HEADER_BYTES. */
  readonly questionEnd: number;
}

export type QueryParse = ParsedQuery | RejectedQuery;

function reject(problem: QueryProblem, questionEnd = HEADER_BYTES): RejectedQuery {
  return { ok: false, problem, questionEnd };
}

interface NameRead {
  /** Offset just past the name where it sits (after its first pointer, if any); -1 when invalid. */
  readonly end: number;
  readonly labels: string[];
}

/**
 * Reads the name at `start`, following at most maxPointerHops pointers, each
 * strictly before the previous target. Work: at most maxNameBytes bytes of
 * labels plus the hops, whatever the message says.
 */
function readName(buf: Buffer, start: number, wantLabels: boolean): NameRead {
  const labels: string[] = [];
  let pos = start;
  let end = -1;
  let hops = 0;
  let limit = start; // a pointer must point before this
  let nameBytes = 1; // the root label
  for (;;) {
    if (pos >= buf.length) return { end: -1, labels };
    const len = buf[pos];
    if (len === 0) {
      if (end < 0) end = pos + 1;
      return { end, labels };
    }
    const kind = len & 0xc0;
    if (kind === 0xc0) {
      if (pos + 1 >= buf.length) return { end: -1, labels };
      const target = ((len & 0x3f) << 8) | buf[pos + 1];
      if (++hops > QUERY_CAPS.maxPointerHops || target < HEADER_BYTES || target >= limit) return { end: -1, labels };
      if (end < 0) end = pos + 2;
      limit = target;
      pos = target;
      continue;
    }
    if (kind !== 0) return { end: -1, labels }; // 0x40/0x80: extended label types, obsolete (RFC 6891 §5)
    nameBytes += 1 + len;
    if (nameBytes > QUERY_CAPS.maxNameBytes || labels.length >= QUERY_CAPS.maxLabels || pos + 1 + len > buf.length) {
      return { end: -1, labels };
    }
    labels.push(wantLabels ? buf.toString('utf8', pos + 1, pos + 1 + len) : '');
    pos += 1 + len;
  }
}

/**
 * Decodes a query as far as the proxy's decision needs, within QUERY_CAPS.
 * Never throws; a message beyond a cap is reported with the reason, after
 * work bounded by the caps (never by what the message claims).
 */
export function parseQuery(buf: Buffer): QueryParse {
  if (buf.length < HEADER_BYTES) return reject('short');
  const flags = buf.readUInt16BE(2);
  if ((flags & 0x8000) !== 0) return reject('response');
  if (buf.length > QUERY_CAPS.maxMessageBytes) return reject('too-large');
  const qdcount = buf.readUInt16BE(4);
  const ancount = buf.readUInt16BE(6);
  const nscount = buf.readUInt16BE(8);
  const arcount = buf.readUInt16BE(10);
  const opcode = (flags >> 11) & 0xf;
  if (qdcount === 0) return reject('question-count');

  const name = readName(buf, HEADER_BYTES, true);
  if (name.end < 0 || name.end + 4 > buf.length) return reject('bad-name');
  const questionEnd = name.end + 4;
  // With several questions the upstream would answer all of them but only the first would be checked.
  if (qdcount !== 1 || (opcode === 0 && (ancount !== 0 || nscount !== 0))) return reject('question-count', questionEnd);
  const qtype = buf.readUInt16BE(name.end);
  const qclass = buf.readUInt16BE(name.end + 2);

  let edns: { dnssecOk: boolean } | undefined;
  if (opcode === 0) {
    if (arcount > QUERY_CAPS.maxAdditionals) return reject('too-many-additionals', questionEnd);
    let pos = questionEnd;
    for (let i = 0; i < arcount; i++) {
      const owner = readName(buf, pos, false);
      if (owner.end < 0 || owner.end + 10 > buf.length) return reject('bad-additional', questionEnd);
      const type = buf.readUInt16BE(owner.end);
      const rdlength = buf.readUInt16BE(owner.end + 8);
      const next = owner.end + 10 + rdlength;
      if (next > buf.length) return reject('bad-additional', questionEnd);
      if (type === TYPE_OPT && edns === undefined) edns = { dnssecOk: (buf.readUInt16BE(owner.end + 6) & EDNS_DO) !== 0 };
      pos = next;
    }
  }
  return { ok: true, id: buf.readUInt16BE(0), opcode, name: name.labels.join('.'), qtype, qclass, questionEnd, ...(edns ? { edns } : {}) };
}
