import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { DomainError } from '../common/errors';
import { decideHost, evolveHost, initialHostState, type HostCommand, type HostEvent } from '../hosts/host';
import { enrollTokenDecider, type EnrollTokenCommand, type EnrollTokenEvent } from './enroll-token';

const now = new Date('2026-12-06T10:00:00.000Z');
const later = (ms: number): Date => new Date(now.getTime() + ms);
const KEY_A = `U${'A'.repeat(55)}`;
const KEY_B = `U${'B'.repeat(55)}`;

/** given(events) / when(command) / then(events or error code) */
function given(events: EnrollTokenEvent[]) {
  const state = events.reduce(enrollTokenDecider.evolve, enrollTokenDecider.initialState);
  return {
    when(command: EnrollTokenCommand) {
      const run = () => enrollTokenDecider.decide(command, state);
      return {
        then: (expected: EnrollTokenEvent[]) => assert.deepEqual(run(), expected),
        thenFails: (code: string, message?: RegExp) =>
          assert.throws(run, (e: unknown) => e instanceof DomainError && e.code === code && (message === undefined || message.test(e.message))),
      };
    },
  };
}

const issued: EnrollTokenEvent = {
  type: 'EnrollTokenIssued',
  data: { tokenId: 'enr_1', secretHash: 'h', labels: { cohort: 'web' }, uses: 2, expiresAt: later(3_600_000).toISOString(), description: null, issuedAt: now.toISOString() },
};
const use = (hostId: string, at = now, secretHash = 'h'): EnrollTokenCommand => ({ type: 'UseEnrollToken', tokenId: 'enr_1', secretHash, hostId, natsPublicKey: KEY_A, now: at });
const used = (hostId: string): EnrollTokenEvent => ({ type: 'EnrollTokenUsed', data: { tokenId: 'enr_1', hostId, natsPublicKey: KEY_A, usedAt: now.toISOString() } });

describe('enrollment token decider', () => {
  it('issues a token that expires ttl after now', () =>
    given([])
      .when({ type: 'IssueEnrollToken', tokenId: 'enr_1', secretHash: 'h', labels: { cohort: 'web' }, uses: 2, ttlMs: 3_600_000, description: null, now })
      .then([issued]));

  it('allows as many uses as issued, then refuses', () => {
    given([issued]).when(use('a')).then([used('a')]);
    given([issued, used('a')]).when(use('b')).then([used('b')]);
    given([issued, used('a'), used('b')]).when(use('c')).thenFails('enroll.token_refused', /already used 2 of 2/);
  });

  it('refuses a wrong secret, an unknown token, an expired one and a revoked one', () => {
    given([issued]).when(use('a', now, 'other')).thenFails('enroll.token_refused', /unknown token/);
    given([]).when(use('a')).thenFails('enroll.token_refused', /unknown token/);
    given([issued]).when(use('a', later(3_600_000))).thenFails('enroll.token_refused', /expired/);
    const revoked: EnrollTokenEvent = { type: 'EnrollTokenRevoked', data: { tokenId: 'enr_1', revokedAt: now.toISOString() } };
    given([issued, revoked]).when(use('a')).thenFails('enroll.token_refused', /revoked/);
    given([issued, revoked]).when({ type: 'RevokeEnrollToken', tokenId: 'enr_1', now }).then([]);
    given([]).when({ type: 'RevokeEnrollToken', tokenId: 'enr_1', now }).thenFails('enroll.token_not_found');
  });
});

describe('host decider: enrollment and removal', () => {
  const run = (events: HostEvent[], c: HostCommand) => decideHost(c, events.reduce(evolveHost, initialHostState));
  const enroll = (key: string): HostCommand => ({ type: 'EnrollHost', hostId: 'web-1', natsPublicKey: key, tokenId: 'enr_1', labels: {}, now });
  const enrolled = (key: string): HostEvent => ({ type: 'HostEnrolled', data: { hostId: 'web-1', natsPublicKey: key, tokenId: 'enr_1', labels: {}, enrolledAt: now.toISOString() } });
  const removed = (keys: string[]): HostEvent => ({ type: 'HostRemoved', data: { hostId: 'web-1', revokedKeys: keys, removedAt: now.toISOString() } });

  it('enrolls a new host once; a token cannot take over an enrolled host', () => {
    assert.deepEqual(run([], enroll(KEY_A)), [enrolled(KEY_A)]);
    assert.throws(() => run([enrolled(KEY_A)], enroll(KEY_B)), (e: unknown) => e instanceof DomainError && e.code === 'enroll.host_exists');
  });

  it('removal revokes the enrolled keys; the host may enroll again, not with a revoked key', () => {
    assert.deepEqual(run([enrolled(KEY_A)], { type: 'RemoveHost', hostId: 'web-1', now }), [removed([KEY_A])]);
    assert.deepEqual(run([enrolled(KEY_A), removed([KEY_A])], { type: 'RemoveHost', hostId: 'web-1', now }), []);
    assert.deepEqual(run([enrolled(KEY_A), removed([KEY_A])], enroll(KEY_B)), [enrolled(KEY_B)]);
    assert.throws(() => run([enrolled(KEY_A), removed([KEY_A])], enroll(KEY_A)), (e: unknown) => e instanceof DomainError && e.code === 'enroll.key_revoked');
    assert.throws(() => run([], { type: 'RemoveHost', hostId: 'web-1', now }), (e: unknown) => e instanceof DomainError && e.code === 'host.not_found');
  });
});
