import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { decideHost, evolveHost, HostEvent, initialHostState, RecordReport } from './host';

const NOW = new Date('2026-12-01T10:00:00.000Z');
const registered: HostEvent = {
  type: 'HostRegistered',
  data: { hostId: 'h1', hostname: 'h1', labels: {}, kernel: '6.1', agentVersion: '1', capabilities: [], registeredAt: NOW.toISOString() },
};
const report = (over: Partial<RecordReport> = {}): RecordReport => ({ type: 'RecordReport', hostId: 'h1', applied: null, rejection: null, drift: null, now: NOW, ...over });
const drift = (drifted: boolean) => ({ drifted, detail: 'maps differ' });
const rejection = (at: string) => ({ revision: 2, reason: 'signature', message: 'does not verify', at });
const applied = (revision: number) => ({ revision, blocklist: 'core', version: revision, contentHash: `sha256:${revision}`, appliedAt: NOW.toISOString() });

/** given(events) / when(report) / then the conditions it changes (`drifted:true`). */
function changes(given: HostEvent[], when: RecordReport): string[] {
  return decideHost(when, given.reduce(evolveHost, initialHostState))
    .filter((e) => e.type === 'HostConditionChanged')
    .map((e) => (e.type === 'HostConditionChanged' ? `${e.data.condition}:${String(e.data.on)}` : ''));
}

describe('host decider: conditions', () => {
  it('enters and leaves "drifted" once per change, and a report that did not check changes nothing', () => {
    assert.deepEqual(changes([registered], report({ drift: drift(true) })), ['drifted:true']);
    const drifted: HostEvent = { type: 'HostConditionChanged', data: { hostId: 'h1', condition: 'drifted', on: true, detail: null, at: NOW.toISOString() } };
    assert.deepEqual(changes([registered, drifted], report({ drift: drift(true) })), []);
    assert.deepEqual(changes([registered, drifted], report({ drift: null })), []);
    assert.deepEqual(changes([registered, drifted], report({ drift: drift(false) })), ['drifted:false']);
  });

  it('enters "rejected" on the first rejection and leaves it on the next apply, not on further rejections', () => {
    const first = decideHost(report({ rejection: rejection('t1') }), [registered].reduce(evolveHost, initialHostState));
    assert.deepEqual(first.map((e) => e.type), ['PolicyRejected', 'HostConditionChanged']);
    const after = [registered, ...first];
    assert.deepEqual(changes(after, report({ rejection: rejection('t2') })), []);
    assert.deepEqual(changes(after, report({ applied: applied(3) })), ['rejected:false']);
    // An apply then a rejection in one report leaves it rejected.
    assert.deepEqual(changes([registered], report({ applied: applied(3), rejection: rejection('t3') })), ['rejected:true']);
  });
});

describe('host decider: NATS keys adopted from nkeys', () => {
  const KEY = `U${'A'.repeat(55)}`;
  const OTHER = `U${'B'.repeat(55)}`;
  const adopt = (natsPublicKey = KEY) => ({ type: 'AdoptNatsKey' as const, hostId: 'h1', natsPublicKey, now: NOW });
  const state = (events: HostEvent[]) => events.reduce(evolveHost, initialHostState);

  it('records an adopted key once, as one of the host\'s keys, registered or not', () => {
    const first = decideHost(adopt(), state([registered]));
    assert.deepEqual(first.map((e) => e.type), ['HostNatsKeyAdopted']);
    assert.deepEqual(state([registered, ...first]).natsKeys, [KEY]);
    assert.deepEqual(decideHost(adopt(), state([registered, ...first])), [], 'a migration run again adds nothing');
    assert.deepEqual(decideHost(adopt(), state([])).map((e) => e.type), ['HostNatsKeyAdopted'], 'a host that has not registered since the migration');
  });

  it('revokes an adopted key at removal, and refuses to adopt it again after', () => {
    const adopted = decideHost(adopt(), state([]));
    const removed = decideHost({ type: 'RemoveHost', hostId: 'h1', now: NOW }, state(adopted));
    assert.deepEqual(removed.map((e) => (e.type === 'HostRemoved' ? e.data.revokedKeys : [])), [[KEY]]);
    assert.throws(() => decideHost(adopt(), state([...adopted, ...removed])), (e: Error & { code?: string }) => e.code === 'enroll.key_revoked');
    assert.deepEqual(decideHost(adopt(OTHER), state([...adopted, ...removed])).map((e) => e.type), ['HostNatsKeyAdopted'], 'a new key is fine');
  });

  it('a host with an adopted key is enrolled: a join token cannot take it over', () => {
    const adopted = decideHost(adopt(), state([registered]));
    assert.throws(
      () => decideHost({ type: 'EnrollHost', hostId: 'h1', natsPublicKey: OTHER, tokenId: 't', labels: {}, now: NOW }, state([registered, ...adopted])),
      (e: Error & { code?: string }) => e.code === 'enroll.host_exists',
    );
  });
});
