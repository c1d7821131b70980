import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import dnsPacket from 'dns-packet';
import { EDE, RCODE, TcpFrameReader, buildLocalAnswer, firstQuestionEnd, qtypeName, firstQuestionType, sameQuestion, tcpFrame } from './dns-wire';

function query(name: string, opts: { rd?: boolean; edns?: boolean; type?: dnsPacket.RecordType; id?: number } = {}): Buffer {
  return dnsPacket.encode({
    type: 'query',
    id: opts.id ?? 0x1234,
    flags: opts.rd === false ? 0 : dnsPacket.RECURSION_DESIRED,
    questions: [{ type: opts.type ?? 'A', name, class: 'IN' }],
    additionals: opts.edns ? [{ type: 'OPT', name: '.', udpPayloadSize: 4096, extendedRcode: 0, ednsVersion: 0, flags: dnsPacket.DNSSEC_OK, flag_do: true, options: [] }] : [],
  });
}

describe(buildLocalAnswer.name, () => {
  it('answers NXDOMAIN with the same id, the question as asked, RD copied and RA set', () => {
    const q = query('GitHub.com');
    const sut = dnsPacket.decode(buildLocalAnswer(q, firstQuestionEnd(q), { rcode: RCODE.NXDOMAIN }));
    assert.equal(sut.id, 0x1234);
    assert.equal(sut.type, 'response');
    assert.equal((sut as unknown as { rcode: string }).rcode, 'NXDOMAIN');
    assert.equal(sut.flag_rd, true);
    assert.equal(sut.flag_ra, true);
    assert.deepEqual(sut.questions, [{ name: 'GitHub.com', type: 'A', class: 'IN' }]);
    assert.equal(sut.answers?.length, 0);
    assert.equal(sut.additionals?.length, 0);
  });

  it('leaves RD clear when the client did not set it', () => {
    const q = query('github.com', { rd: false });
    const sut = dnsPacket.decode(buildLocalAnswer(q, firstQuestionEnd(q), { rcode: RCODE.SERVFAIL }));
    assert.equal(sut.flag_rd, false);
    assert.equal((sut as unknown as { rcode: string }).rcode, 'SERVFAIL');
  });

  it('adds an OPT record with an Extended DNS Error when the client speaks EDNS', () => {
    const q = query('github.com', { edns: true });
    const sut = dnsPacket.decode(
      buildLocalAnswer(q, firstQuestionEnd(q), { rcode: RCODE.NXDOMAIN, edns: { dnssecOk: true, ede: { code: EDE.BLOCKED, text: 'blocked by cgfence' } } }),
    );
    const opt = sut.additionals?.[0];
    assert.ok(opt && opt.type === 'OPT');
    assert.equal(opt.flag_do, true);
    assert.equal(opt.udpPayloadSize, 1232);
    const ede = opt.options[0] as { code: number; data?: Buffer };
    assert.equal(ede.code, 15);
    assert.equal(ede.data?.readUInt16BE(0), EDE.BLOCKED);
    assert.equal(ede.data?.subarray(2).toString(), 'blocked by cgfence');
  });
});

describe(firstQuestionEnd.name, () => {
  it('finds the end of the question and its type, HTTPS included', () => {
    const q = query('a.example', { type: 'UNKNOWN_65' as dnsPacket.RecordType });
    const end = firstQuestionEnd(q);
    assert.equal(end, q.length);
    assert.equal(qtypeName(firstQuestionType(q, end), 'UNKNOWN_65'), 'HTTPS');
  });

  it('reports -1 for every truncation of a query', () => {
    const q = query('www.example.com');
    for (let len = 0; len < q.length; len++) assert.equal(firstQuestionEnd(q.subarray(0, len)), -1, `length ${len}`);
  });
});

describe(sameQuestion.name, () => {
  it('compares the question case-insensitively and nothing else', () => {
    const asked = query('GitHub.com');
    const answer = query('github.COM', { id: 7 });
    const other = query('gitlab.com');
    const question = asked.subarray(12, firstQuestionEnd(asked));
    assert.equal(sameQuestion(answer, question), true);
    assert.equal(sameQuestion(other, question), false);
    assert.equal(sameQuestion(answer.subarray(0, 14), question), false);
  });
});

describe(TcpFrameReader.name, () => {
  it('reassembles messages split and merged across reads', () => {
    const a = query('a.example');
    const b = query('b.example');
    const stream = Buffer.concat([tcpFrame(a), tcpFrame(b)]);
    const sut = new TcpFrameReader();
    const frames: Buffer[] = [];
    for (let i = 0; i < stream.length; i += 5) frames.push(...sut.push(stream.subarray(i, i + 5)));
    assert.deepEqual(frames, [a, b]);
  });
});
