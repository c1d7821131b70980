// Benchmark: the cost of the answer check (dns-answer.ts, screenAnswer) per
// upstream answer, in process, against a 10,000-suffix policy, next to the
// decode every query already costs (parseQuery of the question) measured in
// the same run. Answers: one A record (what most allowed names get), a
// 3-link CNAME chain with 8 A records (a CDN), a chain reaching a listed
// name, and two hostile answers (256 records of one name, a pointer loop).
// Target: a CDN chain's check costs no more than 5 query decodes. The
// end-to-end cost (dnsperf, proxy with and without the check) is in
// dns-proxy.bench.ts.
import dnsPacket from 'dns-packet';
import { printTable, verdict } from '@cgfence/devservices';
import { screenAnswer } from '../dns/dns-answer';
import { parseQuery } from '../dns/dns-query';
import { DomainMatcher } from '../policy/domain-matcher';
import type { BlocklistEntry } from '../policy/entry-types';

const SUFFIXES = 10_000;
const ROUNDS = 5;
const ITERATIONS = 200_000;
const TARGET_RATIO = 5;

type Rr = { name: string; type: 'A' | 'CNAME'; data: string };

/**
 * An answer compressed as resolvers send it (dns-packet does not compress):
 * every name ends in a pointer to the longest suffix already written.
 */
function response(qname: string, answers: Rr[]): Buffer {
  const out: number[] = [0, 1, 0x81, 0x80, 0, 1, answers.length >> 8, answers.length & 0xff, 0, 0, 0, 0];
  const written = new Map<string, number>();
  const name = (n: string): void => {
    const labels = n.split('.');
    for (let i = 0; i < labels.length; i++) {
      const at = written.get(labels.slice(i).join('.'));
      if (at !== undefined) {
        out.push(0xc0 | (at >> 8), at & 0xff);
        return;
      }
      if (out.length < 0x4000) written.set(labels.slice(i).join('.'), out.length);
      out.push(labels[i]!.length, ...Buffer.from(labels[i]!));
    }
    out.push(0);
  };
  name(qname);
  out.push(0, 1, 0, 1);
  for (const rr of answers) {
    name(rr.name);
    out.push(0, rr.type === 'A' ? 1 : 5, 0, 1, 0, 0, 0, 60);
    const lengthAt = out.length;
    out.push(0, 0);
    if (rr.type === 'A') out.push(...rr.data.split('.').map(Number));
    else name(rr.data);
    const len = out.length - lengthAt - 2;
    out[lengthAt] = len >> 8;
    out[lengthAt + 1] = len & 0xff;
  }
  return Buffer.from(out);
}

/** ns per call of fn over `arg`, median of ROUNDS rounds. */
function nsPerCall<T>(fn: (x: T) => unknown, arg: T): number {
  let sink = 0;
  const rounds: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < ITERATIONS; i++) if (fn(arg) !== undefined) sink++;
    rounds.push(Number(process.hrtime.bigint() - t0) / ITERATIONS);
  }
  if (sink < 0) console.log(sink);
  return rounds.sort((a, b) => a - b)[Math.floor(ROUNDS / 2)]!;
}

function main(): void {
  const entries: BlocklistEntry[] = [];
  for (let i = 0; i < SUFFIXES; i++) entries.push({ kind: 'wildcard', value: `*.svc-${i}.blocked.test` });
  entries.push({ kind: 'domain', value: 'objects.githubusercontent.com' });
  const matcher = DomainMatcher.compile(entries);

  const query = Buffer.from(dnsPacket.encode({ type: 'query', id: 1, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: 'A', name: 'host-1.allowed.test' }] }));
  const oneA = response('host-1.allowed.test', [{ type: 'A', name: 'host-1.allowed.test', data: '192.0.2.1' }]);
  const chain = response('www.shop.example', [
    { type: 'CNAME', name: 'www.shop.example', data: 'shop.example.cdn-provider.net' },
    { type: 'CNAME', name: 'shop.example.cdn-provider.net', data: 'e1234.a.cdn-provider.net' },
    { type: 'CNAME', name: 'e1234.a.cdn-provider.net', data: 'edge-7.cdn-provider.net' },
    ...Array.from({ length: 8 }, (_, i): Rr => ({ type: 'A', name: 'edge-7.cdn-provider.net', data: `203.0.113.${i + 1}` })),
  ]);
  const listed = response('releases.internal.example', [
    { type: 'CNAME', name: 'releases.internal.example', data: 'objects.githubusercontent.com' },
    { type: 'A', name: 'objects.githubusercontent.com', data: '185.199.108.133' },
  ]);
  const many = response('big.example', Array.from({ length: 256 }, (_, i): Rr => ({ type: 'A', name: 'big.example', data: `10.0.${i >> 8}.${i & 0xff}` })));
  // The same chain as dns-packet writes it, uncompressed (some upstreams do).
  const flat = Buffer.from(
    dnsPacket.encode({
      type: 'response',
      id: 1,
      questions: [{ type: 'A', name: 'www.shop.example' }],
      answers: [
        { type: 'CNAME', name: 'www.shop.example', ttl: 60, data: 'shop.example.cdn-provider.net' },
        { type: 'CNAME', name: 'shop.example.cdn-provider.net', ttl: 60, data: 'e1234.a.cdn-provider.net' },
        { type: 'CNAME', name: 'e1234.a.cdn-provider.net', ttl: 60, data: 'edge-7.cdn-provider.net' },
        ...Array.from({ length: 8 }, (_, i): dnsPacket.Answer => ({ type: 'A', name: 'edge-7.cdn-provider.net', ttl: 60, data: `203.0.113.${i + 1}` })),
      ],
    }),
  );
  // One record whose owner name is a pointer to itself.
  const loop = Buffer.concat([query, Buffer.from([0xc0, query.length, 0, 1, 0, 1, 0, 0, 0, 60, 0, 0])]);
  loop.writeUInt16BE(0x8180, 2);
  loop.writeUInt16BE(1, 6);

  for (const [name, buf, want] of [['chain', chain, 'clean'], ['flat', flat, 'clean'], ['listed', listed, 'listed'], ['loop', loop, 'unreadable'], ['many', many, 'clean']] as const) {
    const got = screenAnswer(buf, matcher).verdict;
    if (got !== want) throw new Error(`${name}: expected ${want}, got ${got}`);
  }

  const base = nsPerCall(parseQuery, query);
  const rows: [string, number][] = [
    ['parseQuery of the question (baseline)', base],
    ['screenAnswer: 1 A record', nsPerCall((b) => screenAnswer(b, matcher, 'host-1.allowed.test'), oneA)],
    ['screenAnswer: 3 CNAMEs + 8 A (CDN)', nsPerCall((b) => screenAnswer(b, matcher, 'www.shop.example'), chain)],
    ['screenAnswer: the same, uncompressed', nsPerCall((b) => screenAnswer(b, matcher, 'www.shop.example'), flat)],
    ['screenAnswer: CNAME to a listed name', nsPerCall((b) => screenAnswer(b, matcher, 'releases.internal.example'), listed)],
    ['screenAnswer: 256 A records of one name', nsPerCall((b) => screenAnswer(b, matcher, 'big.example'), many)],
    ['screenAnswer: pointer loop (hostile)', nsPerCall((b) => screenAnswer(b, matcher), loop)],
  ];
  const cdn = rows[2]![1];
  printTable({
    title: `Answer check (CNAME/DNAME chains) per upstream answer, ${SUFFIXES.toLocaleString('en-US')}-suffix policy, in process`,
    head: ['work', 'ns per answer', 'x baseline'],
    rows: rows.map(([n, ns]) => [n, Math.round(ns), (ns / base).toFixed(2) + '×']),
    notes: [
      `target: a CDN chain's check <= ${TARGET_RATIO}× the question decode: ${(cdn / base).toFixed(2)}×: ${verdict(cdn / base <= TARGET_RATIO)}`,
      `median of ${ROUNDS} rounds of ${ITERATIONS.toLocaleString('en-US')} calls each, one JS thread, on a machine shared with other work (figures noisy).`,
    ],
  });
}

main();
