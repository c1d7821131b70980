// Issue 19's prototypes (benchmark rows, not the agent's path): the decision
// both make in JavaScript, with the proxy's own code: the bounded query
// decoder (dns-query.ts), the policy's matcher, the local answers
// (dns-wire.ts) and the answer chain check (dns-answer.ts). What they leave
// out against DnsProxy.decide: attribution (the kernel's port map and
// /proc), fairness shares and the load monitor, audit mode, the learner.
import { normalizeDomainName } from '../../policy/domain-matcher';
import type { Policy } from '../../policy/policy';
import { answersFormerr, parseQuery } from '../../dns/dns-query';
import { EDE_OTHER, screenAnswer } from '../../dns/dns-answer';
import { buildLocalAnswer, EDE, RCODE } from '../../dns/dns-wire';

/** What the prototypes count; the bench reads them to check every path blocked the same share. */
export interface PrototypeCounters {
  queries: number;
  blocked: number;
  malformed: number;
  forwarded: number;
  answersScreened: number;
  answersRefused: number;
}

export const newCounters = (): PrototypeCounters => ({ queries: 0, blocked: 0, malformed: 0, forwarded: 0, answersScreened: 0, answersRefused: 0 });

/** The block event the real proxy emits (without the process details and client, which need attribution). */
export interface PrototypeBlock {
  readonly qname: string;
  readonly entry: string;
  readonly policy: { readonly version: string; readonly hash: string };
}

/** A query's fate: forward it (qname, normalised), answer it locally (reply), or drop it. */
export type QueryVerdict = { readonly forward: true; readonly qname: string } | { readonly forward: false; readonly reply?: Buffer };

const DROP: QueryVerdict = Object.freeze({ forward: false });

export function decideQuery(query: Buffer, policy: Policy, counters: PrototypeCounters, onBlock?: (e: PrototypeBlock) => void): QueryVerdict {
  const parsed = parseQuery(query);
  if (!parsed.ok) {
    counters.malformed++;
    return answersFormerr(parsed.problem) ? { forward: false, reply: buildLocalAnswer(query, parsed.questionEnd, { rcode: RCODE.FORMERR }) } : DROP;
  }
  counters.queries++;
  const dnssecOk = parsed.edns?.dnssecOk;
  const edns = (code: number, text: string) => (dnssecOk !== undefined ? { dnssecOk, ede: { code, text } } : undefined);
  if (parsed.opcode !== 0) {
    return { forward: false, reply: buildLocalAnswer(query, parsed.questionEnd, { rcode: RCODE.NOTIMP, edns: edns(EDE.NOT_SUPPORTED, 'cgfence proxy answers standard queries only') }) };
  }
  const qname = normalizeDomainName(parsed.name);
  const entry = policy.matcher.match(qname);
  if (entry === undefined) {
    counters.forwarded++;
    return { forward: true, qname };
  }
  counters.blocked++;
  onBlock?.({ qname, entry: entry.value, policy: { version: policy.version, hash: policy.hash } });
  return {
    forward: false,
    reply: buildLocalAnswer(query, parsed.questionEnd, { rcode: RCODE.NXDOMAIN, edns: edns(EDE.BLOCKED, `blocked by cgfence policy ${policy.version}: ${entry.value}`) }),
  };
}

/**
 * The chain check on an upstream answer to an allowed name (enforce mode):
 * the answer itself, or a SERVFAIL/NXDOMAIN in its place, built from it.
 */
export function screenUpstreamAnswer(answer: Buffer, policy: Policy, counters: PrototypeCounters, askedName?: string): Buffer {
  counters.answersScreened++;
  const verdict = screenAnswer(answer, policy.matcher, askedName);
  if (verdict.verdict === 'clean') return answer;
  counters.answersRefused++;
  const questionEnd = questionEndOf(answer);
  if (verdict.verdict === 'unreadable') {
    return buildLocalAnswer(answer, questionEnd, { rcode: RCODE.SERVFAIL, edns: { dnssecOk: false, ede: { code: EDE_OTHER, text: `cgfence: upstream answer unreadable (${verdict.problem})` } } });
  }
  return buildLocalAnswer(answer, questionEnd, { rcode: RCODE.NXDOMAIN, edns: { dnssecOk: false, ede: { code: EDE.BLOCKED, text: `blocked by cgfence policy ${policy.version}: ${verdict.entry.value}` } } });
}

/** Where an answer's one question ends (for echoing it in a local answer), or 12 when it cannot be read. */
function questionEndOf(m: Buffer): number {
  if (m.length < 12 || m.readUInt16BE(4) !== 1) return 12;
  let pos = 12;
  for (let hops = 0; pos < m.length && hops < 128; hops++) {
    const l = m[pos];
    if (l === 0) return pos + 5 <= m.length ? pos + 5 : 12;
    if ((l & 0xc0) !== 0) return pos + 6 <= m.length ? pos + 6 : 12;
    pos += 1 + l;
  }
  return 12;
}

/** The question name of a query in lower-case wire form (as the C core keys its cache), or undefined when compressed or unreadable. */
export function wireName(query: Buffer): Buffer | undefined {
  let pos = 12;
  const out: number[] = [];
  while (pos < query.length) {
    const l = query[pos];
    if (l === 0) {
      out.push(0);
      return out.length <= 255 ? Buffer.from(out) : undefined;
    }
    if ((l & 0xc0) !== 0 || pos + 1 + l > query.length) return undefined;
    out.push(l);
    for (let i = 1; i <= l; i++) {
      const c = query[pos + i];
      out.push(c >= 0x41 && c <= 0x5a ? c + 32 : c);
    }
    pos += 1 + l;
  }
  return undefined;
}
