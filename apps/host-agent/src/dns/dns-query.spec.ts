import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import dnsPacket from 'dns-packet';
import { QUERY_CAPS, answersFormerr, parseQuery, type QueryParse } from './dns-query';

function query(name: string, opts: { edns?: boolean; type?: dnsPacket.RecordType; id?: number; questions?: number } = {}): Buffer {
  const q = { type: opts.type ?? 'A', name, class: 'IN' } as const;
  return dnsPacket.encode({
    type: 'query',
    id: opts.id ?? 0x1234,
    flags: dnsPacket.RECURSION_DESIRED,
    questions: Array.from({ length: opts.questions ?? 1 }, () => q),
    additionals: opts.edns ? [{ type: 'OPT', name: '.', udpPayloadSize: 4096, extendedRcode: 0, ednsVersion: 0, flags: dnsPacket.DNSSEC_OK, flag_do: true, options: [] }] : [],
  });
}

function header(qd: number, an = 0, ns = 0, ar = 0, id = 7): Buffer {
  const h = Buffer.alloc(12);
  h.writeUInt16BE(id, 0);
  h.writeUInt16BE(0x0100, 2);
  h.writeUInt16BE(qd, 4);
  h.writeUInt16BE(an, 6);
  h.writeUInt16BE(ns, 8);
  h.writeUInt16BE(ar, 10);
  return h;
}

function problem(p: QueryParse): string {
  return p.ok ? 'ok' : p.problem;
}

describe(parseQuery.name, () => {
  it('reads the id, the name as sent, type, class, where the question ends and the DO bit', () => {
    const q = query('GitHub.com', { edns: true, type: 'AAAA' });
    const sut = parseQuery(q);
    assert.ok(sut.ok);
    assert.equal(sut.id, 0x1234);
    assert.equal(sut.name, 'GitHub.com');
    assert.equal(sut.qtype, 28);
    assert.equal(sut.qclass, 1);
    assert.equal(sut.questionEnd, 12 + 12 + 4);
    assert.deepEqual(sut.edns, { dnssecOk: true });
    const plain = parseQuery(query('github.com'));
    assert.ok(plain.ok);
    assert.equal(plain.edns, undefined);
  });

  it('reads the root name as the empty string', () => {
    const sut = parseQuery(query('.', { type: 'NS' }));
    assert.ok(sut.ok);
    assert.equal(sut.name, '');
  });

  it('drops what is not a query: too short, or a response', () => {
    assert.equal(problem(parseQuery(Buffer.alloc(11))), 'short');
    const r = Buffer.from(dnsPacket.encode({ type: 'response', id: 1, questions: [{ type: 'A', name: 'a.example' }] }));
    assert.equal(problem(parseQuery(r)), 'response');
    assert.equal(answersFormerr('short'), false);
    assert.equal(answersFormerr('response'), false);
  });

  it(`answers FORMERR to a message over ${QUERY_CAPS.maxMessageBytes} bytes without reading past the header`, () => {
    const big = Buffer.concat([query('a.example'), Buffer.alloc(QUERY_CAPS.maxMessageBytes)]);
    const sut = parseQuery(big);
    assert.equal(problem(sut), 'too-large');
    assert.equal(!sut.ok && sut.questionEnd, 12);
    assert.equal(answersFormerr('too-large'), true);
  });

  it('answers FORMERR to no question, to two, and to answer records in a query', () => {
    assert.equal(problem(parseQuery(header(0))), 'question-count');
    assert.equal(problem(parseQuery(query('a.example', { questions: 2 }))), 'question-count');
    const withAnswer = Buffer.from(query('a.example'));
    withAnswer.writeUInt16BE(1, 6);
    assert.equal(problem(parseQuery(withAnswer)), 'question-count');
    assert.equal(answersFormerr('question-count'), true);
  });

  it('refuses any compression pointer in the question: nothing before it is a name', () => {
    // "a" then a pointer into its own label: a loop the old decoder would have walked.
    const own = Buffer.concat([header(1), Buffer.from([1, 0x61, 0xc0, 0x0c, 0, 1, 0, 1])]);
    assert.equal(problem(parseQuery(own)), 'bad-name', 'a pointer back into the same name');
    const self = Buffer.concat([header(1), Buffer.from([0xc0, 0x0c, 0, 1, 0, 1])]);
    assert.equal(problem(parseQuery(self)), 'bad-name', 'a pointer to itself');
    const forward = Buffer.concat([header(1), Buffer.from([0xc0, 0x10, 0, 1, 0, 1, 0])]);
    assert.equal(problem(parseQuery(forward)), 'bad-name', 'a pointer forward');
    const intoHeader = Buffer.concat([header(1), Buffer.from([0xc0, 0x02, 0, 1, 0, 1])]);
    assert.equal(problem(parseQuery(intoHeader)), 'bad-name', 'a pointer into the header');
  });

  it(`follows a chain of backwards pointers of up to ${QUERY_CAPS.maxPointerHops} hops, and no longer`, () => {
    // A TXT record whose data is a chain of pointers (each to the one before,
    // the first to the question's name), then an OPT record whose owner name
    // points at the last of them: reading that name takes `links + 1` hops.
    const withChain = (links: number): Buffer => {
      const q = Buffer.from(query('a.example'));
      q.writeUInt16BE(2, 10);
      const r = q.length + 11; // where the TXT record's data starts
      const txt = Buffer.alloc(11 + 2 * links);
      txt.writeUInt16BE(16, 1); // owner: root; type TXT
      txt.writeUInt16BE(1, 3);
      txt.writeUInt16BE(2 * links, 9);
      for (let k = 0; k < links; k++) txt.writeUInt16BE(0xc000 | (k === 0 ? 12 : r + 2 * (k - 1)), 11 + 2 * k);
      const opt = Buffer.alloc(12);
      opt.writeUInt16BE(0xc000 | (r + 2 * (links - 1)), 0);
      opt.writeUInt16BE(41, 2);
      opt.writeUInt16BE(4096, 4);
      return Buffer.concat([q, txt, opt]);
    };
    const ok = parseQuery(withChain(QUERY_CAPS.maxPointerHops - 1));
    assert.ok(ok.ok, problem(ok));
    assert.deepEqual(ok.edns, { dnssecOk: false });
    assert.equal(problem(parseQuery(withChain(QUERY_CAPS.maxPointerHops))), 'bad-additional');
  });

  it(`refuses a name with more than ${QUERY_CAPS.maxNameBytes} bytes or ${QUERY_CAPS.maxLabels} labels, and one that runs off the message`, () => {
    const long = Buffer.concat([header(1), Buffer.alloc(300, 1), Buffer.from([0, 0, 1, 0, 1])]);
    assert.equal(problem(parseQuery(long)), 'bad-name');
    const runsOff = Buffer.concat([header(1), Buffer.from([0x3f, 0x61])]);
    assert.equal(problem(parseQuery(runsOff)), 'bad-name');
    const noType = Buffer.concat([header(1), Buffer.from([1, 0x61, 0, 0])]);
    assert.equal(problem(parseQuery(noType)), 'bad-name');
    const extended = Buffer.concat([header(1), Buffer.from([0x41, 0, 0, 1, 0, 1])]);
    assert.equal(problem(parseQuery(extended)), 'bad-name', 'extended label type 0x40');
    assert.equal(answersFormerr('bad-name'), false);
  });

  it(`answers FORMERR to more than ${QUERY_CAPS.maxAdditionals} additional records and drops one that runs off`, () => {
    const q = Buffer.from(query('a.example'));
    q.writeUInt16BE(QUERY_CAPS.maxAdditionals + 1, 10);
    assert.equal(problem(parseQuery(q)), 'too-many-additionals');
    const cut = query('a.example', { edns: true });
    assert.equal(problem(parseQuery(cut.subarray(0, cut.length - 3))), 'bad-additional');
  });

  it('costs about the same for a hostile message as for a plain one (bounded work)', () => {
    // 4096 bytes of one-byte labels chained by pointers: the old decoder followed every one.
    const hostile = Buffer.alloc(QUERY_CAPS.maxMessageBytes);
    header(1, 0, 0, 0xffff).copy(hostile);
    for (let p = 12; p + 1 < hostile.length; p += 2) hostile.writeUInt16BE(0xc000 | Math.max(12, p - 2), p);
    const plain = query('a.example');
    const time = (b: Buffer): number => {
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < 20_000; i++) parseQuery(b);
      return Number(process.hrtime.bigint() - t0);
    };
    time(hostile);
    time(plain);
    const ratio = time(hostile) / time(plain);
    assert.ok(ratio < 20, `a hostile message cost ${ratio.toFixed(1)}x a plain one`);
  });
});
