import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Applied } from '@cgfence/proto';
import { claimedRevision, evaluateDesired, Evaluation, EvaluationContext } from './evaluate';
import { anHourAgo, makeBundle, makeDesired, makeMessage, ringOf, signingKey } from './testing/fleet-fixtures';

const server = signingKey();
const stranger = signingKey();
const ring = ringOf(server);
const v1 = makeBundle(server, { text: 'evil.example\n', version: 1 });
const v2 = makeBundle(server, { text: 'evil.example\nworse.example\n', version: 2 });
const canary = makeBundle(server, { text: 'canary.example\n', version: 3 });

const appliedOf = (b: typeof v1, revision: number): Applied => ({
  revision,
  blocklistId: b.header.blocklistId,
  name: b.header.name,
  version: b.header.version,
  hash: b.header.hash,
  appliedAt: new Date().toISOString(),
});

function ctx(over: Partial<EvaluationContext> = {}): EvaluationContext {
  return { ring, now: new Date(), host: { hostId: 'web-1', cohort: 'canary' }, seenRevision: null, applied: null, ...over };
}

function rejection(ev: Evaluation): { reason: string; final: boolean; revision: number | null } {
  assert.equal(ev.kind, 'reject', JSON.stringify(ev));
  const e = (ev as Extract<Evaluation, { kind: 'reject' }>).error;
  return { reason: e.reason, final: e.final, revision: e.revision };
}

describe(evaluateDesired.name, () => {
  it('applies the baseline with its inline content', () => {
    const d = makeDesired(server, { revision: 1, baseline: v1 });
    const ev = evaluateDesired(makeMessage(d.signed, [v1]), ctx());

    assert.equal(ev.kind, 'apply');
    const a = ev as Extract<Evaluation, { kind: 'apply' }>;
    assert.equal(a.revision, 1);
    assert.equal(a.header.hash, v1.header.hash);
    assert.deepEqual(Buffer.from(a.inline!), v1.encoded, 'the encoded (gzip) bytes, as they travelled');
    assert.equal(a.target.reason, 'baseline');
    assert.equal(a.target.audit, false);
  });

  it('leaves content to fetch when it is not inline', () => {
    const d = makeDesired(server, { revision: 1, baseline: v1 });
    const ev = evaluateDesired(makeMessage(d.signed, [v1], { inline: false }), ctx());

    assert.equal(ev.kind, 'apply');
    assert.equal((ev as Extract<Evaluation, { kind: 'apply' }>).inline, undefined);
  });

  it('picks the cohort assignment and its audit mode', () => {
    const d = makeDesired(server, { revision: 4, baseline: v1, assignments: [{ cohorts: ['canary'], bundle: canary, mode: 'audit', reason: 'rollout r1 stage 1' }] });
    const ev = evaluateDesired(makeMessage(d.signed, [v1, canary]), ctx());

    assert.equal(ev.kind, 'apply');
    const a = ev as Extract<Evaluation, { kind: 'apply' }>;
    assert.equal(a.header.version, 3);
    assert.deepEqual({ audit: a.target.audit, reason: a.target.reason }, { audit: true, reason: 'rollout r1 stage 1' });
  });

  it('ignores the revision it has already acted on', () => {
    const d = makeDesired(server, { revision: 7, baseline: v1 });
    assert.equal(evaluateDesired(makeMessage(d.signed, [v1]), ctx({ seenRevision: 7 })).kind, 'ignore');
  });

  it('ignores an older revision arriving late', () => {
    const d = makeDesired(server, { revision: 6, baseline: v1 });
    const ev = evaluateDesired(makeMessage(d.signed, [v1]), ctx({ seenRevision: 7 }));

    assert.deepEqual({ kind: ev.kind, revision: (ev as { revision?: number }).revision }, { kind: 'ignore', revision: 6 });
  });

  it('keeps the bundle in force when a new revision names it again (a mode change)', () => {
    const d = makeDesired(server, { revision: 8, baseline: v1, audit: { fleet: true } });
    const ev = evaluateDesired(makeMessage(d.signed, [v1]), ctx({ seenRevision: 7, applied: appliedOf(v1, 7) }));

    assert.equal(ev.kind, 'keep');
    assert.equal((ev as Extract<Evaluation, { kind: 'keep' }>).target.audit, true);
  });

  it('keeps the bundle in force even after its own header expired', () => {
    const old = makeBundle(server, { text: 'evil.example\n', version: 1, expiresAt: anHourAgo() });
    const d = makeDesired(server, { revision: 8, baseline: old });
    assert.equal(evaluateDesired(makeMessage(d.signed, [old]), ctx({ seenRevision: 7, applied: appliedOf(old, 7) })).kind, 'keep');
  });

  it('keeps whatever is in force when no bundle is assigned', () => {
    const d = makeDesired(server, { revision: 2, baseline: null });
    const ev = evaluateDesired(makeMessage(d.signed, []), ctx({ seenRevision: 1, applied: appliedOf(v1, 1) }));

    assert.equal(ev.kind, 'keep');
    assert.equal((ev as Extract<Evaluation, { kind: 'keep' }>).header, null);
  });

  describe('rejections', () => {
    it('unsigned', () => {
      const d = makeDesired(server, { revision: 1, baseline: v1 });
      assert.deepEqual(rejection(evaluateDesired(makeMessage({ ...d.signed, signature: '' }, [v1]), ctx())), { reason: 'unsigned', final: false, revision: null });
    });

    it('bad signature (payload altered after signing)', () => {
      const d = makeDesired(server, { revision: 1, baseline: v1 });
      const altered = { ...d.signed, payload: d.signed.payload.replace('"revision":1', '"revision":2') };
      assert.equal(rejection(evaluateDesired(makeMessage(altered, [v1]), ctx())).reason, 'bad-signature');
    });

    it('signed by a key the agent does not trust', () => {
      const d = makeDesired(stranger, { revision: 1, baseline: v1 });
      assert.equal(rejection(evaluateDesired(makeMessage(d.signed, [v1]), ctx())).reason, 'unknown-key');
    });

    it('a bundle header signed by a stranger inside a good document', () => {
      const forged = makeBundle(stranger, { text: 'evil.example\n', version: 9 });
      const d = makeDesired(server, { revision: 3, baseline: forged });
      assert.deepEqual(rejection(evaluateDesired(makeMessage(d.signed, [forged]), ctx())), { reason: 'unknown-key', final: true, revision: 3 });
    });

    it('expired document, with its (verified) revision', () => {
      const d = makeDesired(server, { revision: 5, baseline: v1, expiresAt: anHourAgo() });
      assert.deepEqual(rejection(evaluateDesired(makeMessage(d.signed, [v1]), ctx())), { reason: 'expired', final: false, revision: 5 });
    });

    it('expired bundle', () => {
      const old = makeBundle(server, { text: 'evil.example\n', version: 4, expiresAt: anHourAgo() });
      const d = makeDesired(server, { revision: 5, baseline: old });
      assert.deepEqual(rejection(evaluateDesired(makeMessage(d.signed, [old]), ctx())), { reason: 'expired', final: true, revision: 5 });
    });

    it('older version without a rollback order', () => {
      const d = makeDesired(server, { revision: 3, baseline: v1 });
      const ev = evaluateDesired(makeMessage(d.signed, [v1]), ctx({ seenRevision: 2, applied: appliedOf(v2, 2) }));
      assert.deepEqual(rejection(ev), { reason: 'older-version', final: true, revision: 3 });
    });

    it('not the message schema', () => {
      assert.equal(rejection(evaluateDesired({ hello: 'world' }, ctx())).reason, 'malformed');
    });
  });

  it('accepts an older version the signed document orders a rollback to', () => {
    const d = makeDesired(server, { revision: 3, baseline: v1, rollback: { blocklistId: 'bl-1', toVersion: 1 } });
    assert.equal(evaluateDesired(makeMessage(d.signed, [v1]), ctx({ seenRevision: 2, applied: appliedOf(v2, 2) })).kind, 'apply');
  });
});

describe(claimedRevision.name, () => {
  it('reads the revision without verifying, and -1 for anything else', () => {
    const d = makeDesired(server, { revision: 12, baseline: v1 });
    assert.equal(claimedRevision(makeMessage(d.signed, [])), 12);
    assert.equal(claimedRevision({ desired: { payload: 'not json' } }), -1);
    assert.equal(claimedRevision(null), -1);
  });
});
