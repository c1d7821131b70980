import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import dnsPacket from 'dns-packet';
import { DomainMatcher } from '../policy/domain-matcher';
import { ANSWER_CAPS, readAnswerChain, screenAnswer, type ChainRead } from './dns-answer';

function response(qname: string, answers: dnsPacket.Answer[], flags = 0): Buffer {
  return Buffer.from(
    dnsPacket.encode({ type: 'response', id: 9, flags: dnsPacket.RECURSION_AVAILABLE | flags, questions: [{ type: 'A', name: qname }], answers }),
  );
}

const cname = (name: string, data: string): dnsPacket.Answer => ({ type: 'CNAME', name, ttl: 60, data });
const a = (name: string, data = '192.0.2.1'): dnsPacket.Answer => ({ type: 'A', name, ttl: 60, data });

/** Header with `an` answer records and one question `\x01a\x00` A IN, then `body`. */
function raw(an: number, body: number[], flags = 0x8180): Buffer {
  const h = Buffer.alloc(12);
  h.writeUInt16BE(1, 0);
  h.writeUInt16BE(flags, 2);
  h.writeUInt16BE(1, 4);
  h.writeUInt16BE(an, 6);
  return Buffer.concat([h, Buffer.from([1, 0x61, 0, 0, 1, 0, 1]), Buffer.from(body)]);
}

/** Record header bytes after an owner name: type, class IN, ttl 60, rdlength. */
function rr(type: number, rdlength: number): number[] {
  return [type >> 8, type & 0xff, 0, 1, 0, 0, 0, 60, rdlength >> 8, rdlength & 0xff];
}

function names(r: ChainRead): readonly string[] | string {
  return r.ok ? r.names : r.problem;
}

const matcher = DomainMatcher.compile([
  { kind: 'domain', value: 'objects.githubusercontent.com' },
  { kind: 'wildcard', value: '*.github.com' },
]);

describe(readAnswerChain.name, () => {
  it('collects owners and CNAME targets of a chain, once each, normalised', () => {
    const msg = response('Releases.Internal.Example', [
      cname('Releases.Internal.Example', 'cdn.example.net'),
      cname('cdn.example.net', 'OBJECTS.githubusercontent.com.'),
      a('objects.githubusercontent.com', '192.0.2.1'),
      a('objects.githubusercontent.com', '192.0.2.2'),
    ]);
    assert.deepEqual(names(readAnswerChain(msg)), ['releases.internal.example', 'cdn.example.net', 'objects.githubusercontent.com']);
  });

  it('reads a DNAME target', () => {
    const msg = response('x.old.example', [{ type: 'DNAME', name: 'old.example', ttl: 60, data: 'github.com' }, cname('x.old.example', 'x.github.com')]);
    assert.deepEqual(names(readAnswerChain(msg)), ['old.example', 'github.com', 'x.old.example', 'x.github.com']);
  });

  it('reads compressed names (dns-packet does not compress; a hand-built pointer to the question)', () => {
    // owner = pointer to the question name (offset 12), CNAME target "\x01b" + pointer to offset 12
    const msg = raw(1, [0xc0, 12, ...rr(5, 4), 1, 0x62, 0xc0, 12]);
    assert.deepEqual(names(readAnswerChain(msg)), ['a', 'b.a']);
  });

  it('refuses a pointer loop, a forward pointer, a self pointer and too many hops, in constant work', () => {
    // owner: a pointer to itself (offset 19)
    assert.equal(names(readAnswerChain(raw(1, [0xc0, 19, ...rr(1, 0)]))), 'bad-name');
    // owner: a pointer forward
    assert.equal(names(readAnswerChain(raw(1, [0xc0, 40, ...rr(1, 0), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]))), 'bad-name');
    // two names pointing at each other: 19 -> 21 -> 19
    assert.equal(names(readAnswerChain(raw(1, [0xc0, 21, 0xc0, 19, ...rr(1, 0)]))), 'bad-name');
    // A chain of backward pointers kept in a NULL record's rdata; the next record's owner enters it at its end.
    const chain = (n: number): Buffer => {
      const base = 19 + 2 + 10;
      const ptrs: number[] = [];
      for (let i = 0; i < n; i++) ptrs.push(0xc0, i === 0 ? 12 : base + 2 * (i - 1));
      return raw(2, [0xc0, 12, ...rr(10, ptrs.length), ...ptrs, 0xc0, base + 2 * (n - 1), ...rr(1, 0)]);
    };
    assert.deepEqual(names(readAnswerChain(chain(ANSWER_CAPS.maxPointerHops - 1))), ['a'], 'at the cap: read');
    assert.equal(names(readAnswerChain(chain(ANSWER_CAPS.maxPointerHops))), 'bad-name', 'one hop past the cap');
  });

  it('refuses a name of more than 255 bytes or 127 labels', () => {
    const long: number[] = [];
    for (let i = 0; i < 130; i++) long.push(1, 0x61);
    long.push(0);
    assert.equal(names(readAnswerChain(raw(1, [...long, ...rr(1, 0)]))), 'bad-name');
  });

  it('refuses more records than the cap from the header alone', () => {
    assert.equal(names(readAnswerChain(raw(ANSWER_CAPS.maxRecords + 1, []))), 'too-many-records');
    assert.equal(names(readAnswerChain(raw(0xffff, []))), 'too-many-records');
  });

  it('refuses more distinct names than the cap', () => {
    const answers = Array.from({ length: ANSWER_CAPS.maxNames + 1 }, (_, i) => a(`n${i}.example`));
    assert.equal(names(readAnswerChain(response('n0.example', answers))), 'too-many-names');
    const fine = Array.from({ length: ANSWER_CAPS.maxRecords }, () => a('n0.example'));
    assert.deepEqual(names(readAnswerChain(response('n0.example', fine))), ['n0.example'], 'many records of one name are fine');
  });

  it('refuses records that run off the message, a count larger than the records present, and a CNAME target overrunning its rdata', () => {
    const msg = response('a.example', [cname('a.example', 'b.example'), a('b.example')]);
    for (let cut = 12; cut < msg.length; cut += 3) {
      const r = readAnswerChain(msg.subarray(0, cut));
      assert.equal(r.ok, false, `cut at ${cut}`);
    }
    assert.equal(names(readAnswerChain(raw(2, [0xc0, 12, ...rr(1, 4), 1, 2, 3, 4]))), 'bad-name');
    // CNAME whose rdlength says 2 but whose name needs 4 bytes
    assert.equal(names(readAnswerChain(raw(1, [0xc0, 12, ...rr(5, 2), 1, 0x62, 0xc0, 12]))), 'bad-record');
    assert.equal(names(readAnswerChain(Buffer.alloc(11))), 'bad-header');
    const two = raw(0, []);
    two.writeUInt16BE(2, 4);
    assert.equal(names(readAnswerChain(two)), 'bad-header');
  });

  it('reads a truncated (TC) answer as far as whole records go', () => {
    const msg = response('a.example', [cname('a.example', 'b.example'), a('b.example')], dnsPacket.TRUNCATED_RESPONSE);
    const cut = msg.subarray(0, msg.length - 3);
    assert.deepEqual(names(readAnswerChain(cut)), ['a.example', 'b.example']);
  });

  it('never throws on random bytes', () => {
    let seed = 7;
    const rand = (): number => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) & 0xff;
    for (let i = 0; i < 5000; i++) {
      const len = 12 + (rand() % 200);
      const buf = Buffer.from(Array.from({ length: len }, rand));
      buf.writeUInt16BE(1 + (rand() % 4), 6);
      buf.writeUInt16BE(1, 4);
      assert.doesNotThrow(() => readAnswerChain(buf));
    }
  });
});

describe(screenAnswer.name, () => {
  it('finds the listed name a chain leads to, exact or by wildcard', () => {
    const exact = screenAnswer(response('releases.internal.example', [cname('releases.internal.example', 'objects.githubusercontent.com'), a('objects.githubusercontent.com')]), matcher);
    assert.equal(exact.verdict, 'listed');
    assert.ok(exact.verdict === 'listed');
    assert.equal(exact.name, 'objects.githubusercontent.com');
    assert.equal(exact.entry.value, 'objects.githubusercontent.com');
    const wild = screenAnswer(response('docs.example', [cname('docs.example', 'Pages.GitHub.com')]), matcher);
    assert.ok(wild.verdict === 'listed');
    assert.equal(wild.name, 'pages.github.com');
    assert.equal(wild.entry.value, '*.github.com');
  });

  it('finds a listed owner name even without a CNAME record pointing at it', () => {
    const r = screenAnswer(response('allowed.example', [a('api.github.com')]), matcher);
    assert.ok(r.verdict === 'listed');
    assert.equal(r.name, 'api.github.com');
  });

  it('passes clean chains, the apex of a wildcard, look-alikes, and answers without records', () => {
    assert.equal(screenAnswer(response('a.example', [cname('a.example', 'github.com'), a('github.com')]), matcher).verdict, 'clean');
    assert.equal(screenAnswer(response('a.example', [cname('a.example', 'notgithub.com')]), matcher).verdict, 'clean');
    assert.equal(screenAnswer(response('a.example', []), matcher).verdict, 'clean');
  });

  it('says why an answer is unreadable', () => {
    assert.deepEqual(screenAnswer(raw(1, [0xc0, 19, ...rr(1, 0)]), matcher), { verdict: 'unreadable', problem: 'bad-name' });
  });
});
