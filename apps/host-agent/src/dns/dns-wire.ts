// Byte-level helpers for the few things the proxy does without a full
// encode/decode round trip: answering with the client's own question bytes,
// and rewriting transaction ids. Queries are decoded by dns-query.ts (bounded);
// dns-packet decodes only the upstream's answers of '!resolve' lookups.
import { toString as dnsTypeToString } from 'dns-packet/types';

export const HEADER_BYTES = 12;

export const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 } as const;

const FLAG_QR = 0x8000;
const FLAG_RD = 0x0100;
const FLAG_RA = 0x0080;
const FLAG_CD = 0x0010;
const OPCODE_MASK = 0x7800;
const TYPE_OPT = 41;
const EDNS_DO = 0x8000;
const OPTION_EDE = 15;

/** Extended DNS Error info codes (RFC 8914) the proxy uses. */
export const EDE = { BLOCKED: 15, NETWORK_ERROR: 23, NOT_SUPPORTED: 21 } as const;

/** The UDP payload size the proxy advertises in its own answers (the DNS Flag Day 2020 value). */
export const ADVERTISED_UDP_SIZE = 1232;

/**
 * Offset just past the first question (name, type, class), or -1 when the
 * packet is too short to hold it. Names in a question are normally
 * uncompressed; a compression pointer ends the name.
 */
export function firstQuestionEnd(buf: Buffer): number {
  let pos = HEADER_BYTES;
  for (;;) {
    if (pos >= buf.length) return -1;
    const len = buf[pos];
    if (len === 0) {
      pos += 1;
      break;
    }
    if ((len & 0xc0) === 0xc0) {
      pos += 2;
      break;
    }
    if ((len & 0xc0) !== 0) return -1;
    pos += 1 + len;
  }
  pos += 4;
  return pos <= buf.length ? pos : -1;
}

/** Type number of the first question; call only after firstQuestionEnd succeeded. */
export function firstQuestionType(buf: Buffer, questionEnd: number): number {
  return buf.readUInt16BE(questionEnd - 4);
}

const EXTRA_TYPE_NAMES: Readonly<Record<number, string>> = { 64: 'SVCB', 65: 'HTTPS' };

/** dns-packet's mnemonic for a type number ('A', 'AAAA', 'UNKNOWN_65'). */
export function typeName(typeNumber: number): string {
  return dnsTypeToString(typeNumber);
}

/** Mnemonic for a query type; dns-packet 5 does not know SVCB/HTTPS and says UNKNOWN_65. */
export function qtypeName(typeNumber: number, decodedName: string): string {
  return EXTRA_TYPE_NAMES[typeNumber] ?? decodedName;
}

export interface LocalAnswerOptions {
  rcode: number;
  /** Include an EDNS OPT record (do so when the query carried one, RFC 6891 §7). */
  edns?: { dnssecOk: boolean; ede?: { code: number; text: string } };
}

/**
 * A response built from the query's own bytes: same id and opcode, RD and CD
 * copied, RA set, the first question echoed byte for byte (so 0x20 case
 * randomisation survives), no answer records.
 */
export function buildLocalAnswer(query: Buffer, questionEnd: number, opts: LocalAnswerOptions): Buffer {
  const question = questionEnd > HEADER_BYTES ? query.subarray(HEADER_BYTES, questionEnd) : Buffer.alloc(0);
  const opt = opts.edns ? encodeOpt(opts.edns.dnssecOk, opts.edns.ede) : Buffer.alloc(0);
  const out = Buffer.alloc(HEADER_BYTES + question.length + opt.length);
  const qflags = query.readUInt16BE(2);
  const flags = FLAG_QR | (qflags & OPCODE_MASK) | (qflags & FLAG_RD) | FLAG_RA | (qflags & FLAG_CD) | (opts.rcode & 0xf);
  out.writeUInt16BE(query.readUInt16BE(0), 0);
  out.writeUInt16BE(flags, 2);
  out.writeUInt16BE(question.length > 0 ? 1 : 0, 4);
  out.writeUInt16BE(0, 6);
  out.writeUInt16BE(0, 8);
  out.writeUInt16BE(opt.length > 0 ? 1 : 0, 10);
  question.copy(out, HEADER_BYTES);
  opt.copy(out, HEADER_BYTES + question.length);
  return out;
}

function encodeOpt(dnssecOk: boolean, ede: { code: number; text: string } | undefined): Buffer {
  const text = ede ? Buffer.from(ede.text, 'utf8').subarray(0, 200) : Buffer.alloc(0);
  const rdata = ede ? Buffer.alloc(4 + 2 + text.length) : Buffer.alloc(0);
  if (ede) {
    rdata.writeUInt16BE(OPTION_EDE, 0);
    rdata.writeUInt16BE(2 + text.length, 2);
    rdata.writeUInt16BE(ede.code, 4);
    text.copy(rdata, 6);
  }
  const out = Buffer.alloc(11 + rdata.length);
  out[0] = 0; // root owner name
  out.writeUInt16BE(TYPE_OPT, 1);
  out.writeUInt16BE(ADVERTISED_UDP_SIZE, 3); // class = UDP payload size
  out.writeUInt8(0, 5); // extended rcode
  out.writeUInt8(0, 6); // EDNS version
  out.writeUInt16BE(dnssecOk ? EDNS_DO : 0, 7);
  out.writeUInt16BE(rdata.length, 9);
  rdata.copy(out, 11);
  return out;
}

/** A copy of `packet` with its transaction id replaced. */
export function withId(packet: Buffer, id: number): Buffer {
  const copy = Buffer.from(packet);
  copy.writeUInt16BE(id, 0);
  return copy;
}

/**
 * Whether a response's first question is the one that was asked, comparing
 * the name case-insensitively (ASCII only, as DNS does). Protects the id
 * remapping against stray or spoofed answers landing on a reused id. The
 * asked question is `askedQuestion[askedStart, askedEnd)` (default: all of it).
 */
export function sameQuestion(response: Buffer, askedQuestion: Buffer, askedStart = 0, askedEnd = askedQuestion.length): boolean {
  const length = askedEnd - askedStart;
  if (response.length < HEADER_BYTES + length) return false;
  for (let i = 0; i < length; i++) {
    let a = response[HEADER_BYTES + i];
    let b = askedQuestion[askedStart + i];
    if (a >= 0x41 && a <= 0x5a) a |= 0x20;
    if (b >= 0x41 && b <= 0x5a) b |= 0x20;
    if (a !== b) return false;
  }
  return true;
}

/** Prefixes a message with its 2-byte length, as DNS over TCP frames it. */
export function tcpFrame(message: Buffer): Buffer {
  const out = Buffer.alloc(2 + message.length);
  out.writeUInt16BE(message.length, 0);
  message.copy(out, 2);
  return out;
}

/**
 * Splits a TCP byte stream into DNS messages. Keeps at most one partial
 * message; a frame can be at most 65535 bytes, so memory per connection is
 * bounded.
 */
export class TcpFrameReader {
  private buffered: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): Buffer[] {
    this.buffered = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk]);
    const frames: Buffer[] = [];
    let pos = 0;
    while (this.buffered.length - pos >= 2) {
      const len = this.buffered.readUInt16BE(pos);
      if (this.buffered.length - pos - 2 < len) break;
      frames.push(this.buffered.subarray(pos + 2, pos + 2 + len));
      pos += 2 + len;
    }
    this.buffered = pos === this.buffered.length ? Buffer.alloc(0) : this.buffered.subarray(pos);
    return frames;
  }
}
