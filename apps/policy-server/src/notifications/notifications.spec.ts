import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { renderBody } from './payload';
import { signDelivery, verifyDelivery } from './signature';
import { backoffMs } from './webhook-dispatcher.service';

const notice = { trigger: 'finding.new' as const, subject: 'service=api: new dependency on <api.internal>', occurredAt: '2026-12-01T10:00:00.000Z', actor: 'cgfence', details: { finding: { id: 'f-1', hosts: ['h1', 'h2'], team: null } } };

describe('webhook signature', () => {
  it('is HMAC-SHA256 over id.timestamp.body, as the documented recipe computes it', () => {
    const expected = createHmac('sha256', 'k'.repeat(20)).update('d-1.1700000000.{"a":1}').digest('hex');
    assert.equal(signDelivery('k'.repeat(20), 'd-1', 1700000000, '{"a":1}'), `v1=${expected}`);
  });

  it('verifies only the same secret, id, time and body, within the tolerance', () => {
    const sig = signDelivery('secret-secret-secret', 'd-1', 1000, 'body');
    const h = { delivery: 'd-1', timestamp: '1000', signature: sig };
    assert.ok(verifyDelivery('secret-secret-secret', h, 'body', 1000));
    assert.ok(!verifyDelivery('secret-secret-other', h, 'body', 1000));
    assert.ok(!verifyDelivery('secret-secret-secret', h, 'body!', 1000));
    assert.ok(!verifyDelivery('secret-secret-secret', { ...h, delivery: 'd-2' }, 'body', 1000));
    assert.ok(!verifyDelivery('secret-secret-secret', { ...h, timestamp: '1001' }, 'body', 1001));
    assert.ok(!verifyDelivery('secret-secret-secret', h, 'body', 1000 + 301), 'a replay after the tolerance is refused');
    assert.ok(!verifyDelivery('secret-secret-secret', { ...h, signature: 'v1=00' }, 'body', 1000));
  });
});

describe(renderBody.name, () => {
  it('json: the delivery id, trigger and details in one object', () => {
    const b = JSON.parse(renderBody('json', 'd-1', notice));
    assert.equal(b.deliveryId, 'd-1');
    assert.equal(b.trigger, 'finding.new');
    assert.deepEqual(b.finding.hosts, ['h1', 'h2']);
  });

  it('slack: text and blocks, with mrkdwn control characters escaped', () => {
    const b = JSON.parse(renderBody('slack', 'd-1', notice));
    assert.equal(b.text, '[cgfence] service=api: new dependency on <api.internal>');
    assert.equal(b.blocks[0].text.text, '*service=api: new dependency on &lt;api.internal&gt;*');
    assert.match(b.blocks[1].text.text, /\*hosts\*: h1, h2/);
    assert.match(b.blocks[2].elements[0].text, /delivery d-1/);
  });
});

describe(backoffMs.name, () => {
  it('doubles from the base and stops at an hour', () => {
    assert.deepEqual([1, 2, 3, 4].map((a) => backoffMs(1000, a)), [1000, 2000, 4000, 8000]);
    assert.equal(backoffMs(1000, 50), 3_600_000);
  });
});
