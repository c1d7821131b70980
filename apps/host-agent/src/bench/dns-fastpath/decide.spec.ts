import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import dnsPacket from 'dns-packet';
import { contentHash, parseBlocklistText } from '@cgfence/proto';
import { createPolicy } from '../../policy/policy';
import { makeQuery } from '../../dns/testing/dns-client';
import { decideQuery, newCounters, screenUpstreamAnswer, wireName } from './decide';

const policyOf = (text: string) => {
  const parsed = parseBlocklistText(text);
  return createPolicy(parsed.entries, { version: 'v7', hash: contentHash(parsed.entries) });
};

const answerTo = (name: string, answers: dnsPacket.Answer[]): Buffer =>
  dnsPacket.encode({ type: 'response', id: 9, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: 'A', name, class: 'IN' }], answers });

describe('issue 19 prototypes: the JavaScript decision', () => {
  const policy = policyOf('*.bad.test\nexact.test\n');

  it('forwards an allowed name with its normalised form, and counts it', () => {
    const c = newCounters();
    const v = decideQuery(makeQuery('Host.Allowed.TEST', 'A'), policy, c);
    assert.deepEqual(v, { forward: true, qname: 'host.allowed.test' });
    assert.equal(c.forwarded, 1);
    assert.equal(c.queries, 1);
  });

  it('answers a listed name NXDOMAIN with the Blocked EDE naming the entry and policy, and reports the block', () => {
    const c = newCounters();
    const events: unknown[] = [];
    const q = makeQuery('a.bad.test', 'A', { edns: true, id: 4242 });
    const v = decideQuery(q, policy, c, (e) => events.push(e));
    assert.equal(v.forward, false);
    assert.ok(!v.forward && v.reply);
    const reply = dnsPacket.decode(v.reply) as dnsPacket.DecodedPacket & { rcode?: string };
    assert.equal(reply.id, 4242);
    assert.equal(reply.rcode, 'NXDOMAIN');
    assert.match(v.reply.toString('latin1'), /blocked by cgfence policy v7: \*\.bad\.test/);
    assert.deepEqual(events, [{ qname: 'a.bad.test', entry: '*.bad.test', policy: { version: 'v7', hash: policy.hash } }]);
    assert.equal(c.blocked, 1);
  });

  it('drops what is not a query (too short, a response) and answers FORMERR to two questions', () => {
    const c = newCounters();
    assert.deepEqual(decideQuery(Buffer.alloc(5), policy, c), { forward: false });
    assert.deepEqual(decideQuery(answerTo('x.test', []), policy, c), { forward: false });
    const two = dnsPacket.encode({ type: 'query', id: 1, questions: [{ type: 'A', name: 'a.test' }, { type: 'A', name: 'a.bad.test' }] });
    const v = decideQuery(two, policy, c);
    assert.ok(!v.forward && v.reply);
    assert.equal((dnsPacket.decode(v.reply) as { rcode?: string }).rcode, 'FORMERR');
    assert.equal(c.malformed, 3);
  });

  it('passes a clean answer as the same buffer, refuses a chain to a listed name and an unreadable answer', () => {
    const c = newCounters();
    const clean = answerTo('ok.test', [{ type: 'A', name: 'ok.test', data: '192.0.2.1' }]);
    assert.equal(screenUpstreamAnswer(clean, policy, c, 'ok.test'), clean);
    const chain = answerTo('ok.test', [
      { type: 'CNAME', name: 'ok.test', data: 'x.bad.test' },
      { type: 'A', name: 'x.bad.test', data: '192.0.2.1' },
    ]);
    const refused = dnsPacket.decode(screenUpstreamAnswer(chain, policy, c, 'ok.test')) as dnsPacket.DecodedPacket & { rcode?: string };
    assert.equal(refused.rcode, 'NXDOMAIN');
    assert.equal(refused.id, 9);
    assert.equal(refused.answers?.length ?? 0, 0);
    const cut = clean.subarray(0, clean.length - 3);
    assert.equal((dnsPacket.decode(screenUpstreamAnswer(cut, policy, c)) as { rcode?: string }).rcode, 'SERVFAIL');
    assert.deepEqual([c.answersScreened, c.answersRefused], [3, 2]);
  });

  it('keys the C core cache by the lower-cased wire name, and has no key for a compressed or cut question', () => {
    assert.deepEqual(wireName(makeQuery('Ab.C', 'A')), Buffer.from([2, 0x61, 0x62, 1, 0x63, 0]));
    const compressed = Buffer.concat([Buffer.from([0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0]), Buffer.from([0xc0, 12, 0, 1, 0, 1])]);
    assert.equal(wireName(compressed), undefined);
    assert.equal(wireName(makeQuery('abc.test', 'A').subarray(0, 16)), undefined);
  });
});
