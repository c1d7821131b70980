/**
 * The enrollment token aggregate (stream 'enroll-token-<id>'): a join token an
 * operator issues so new hosts can enroll themselves. Single- or N-use,
 * expiring, revocable; every use is an event (the audit trail says which host
 * enrolled with which token). Events carry only a SHA-256 of the secret.
 */
import { DomainError } from '../common/errors';
import type { Decider } from '../event-store/decider';

export const streamOfEnrollToken = (tokenId: string): string => `enroll-token-${tokenId}`;

export interface EnrollTokenIssued {
  type: 'EnrollTokenIssued';
  data: { tokenId: string; secretHash: string; labels: Record<string, string>; uses: number; expiresAt: string; description: string | null; issuedAt: string };
}
export interface EnrollTokenUsed {
  type: 'EnrollTokenUsed';
  data: { tokenId: string; hostId: string; natsPublicKey: string; usedAt: string };
}
export interface EnrollTokenRevoked {
  type: 'EnrollTokenRevoked';
  data: { tokenId: string; revokedAt: string };
}
export type EnrollTokenEvent = EnrollTokenIssued | EnrollTokenUsed | EnrollTokenRevoked;

export type EnrollTokenState =
  | { status: 'absent' }
  | { status: 'active' | 'revoked'; tokenId: string; secretHash: string; labels: Record<string, string>; uses: number; used: number; expiresAt: string };

export interface IssueEnrollToken {
  type: 'IssueEnrollToken';
  tokenId: string;
  secretHash: string;
  labels: Record<string, string>;
  uses: number;
  ttlMs: number;
  description: string | null;
  now: Date;
}
export interface UseEnrollToken {
  type: 'UseEnrollToken';
  tokenId: string;
  secretHash: string;
  hostId: string;
  natsPublicKey: string;
  now: Date;
}
export interface RevokeEnrollToken {
  type: 'RevokeEnrollToken';
  tokenId: string;
  now: Date;
}
export type EnrollTokenCommand = IssueEnrollToken | UseEnrollToken | RevokeEnrollToken;

/** One refusal for an unknown token and a wrong secret, so a caller learns nothing about which ids exist. */
const refused = (why: string): DomainError => new DomainError('enroll.token_refused', `the enrollment token was refused: ${why}`);

export const enrollTokenDecider: Decider<EnrollTokenState, EnrollTokenCommand, EnrollTokenEvent> = {
  initialState: { status: 'absent' },
  evolve(s, e) {
    switch (e.type) {
      case 'EnrollTokenIssued':
        return { status: 'active', tokenId: e.data.tokenId, secretHash: e.data.secretHash, labels: e.data.labels, uses: e.data.uses, used: 0, expiresAt: e.data.expiresAt };
      case 'EnrollTokenUsed':
        return s.status === 'absent' ? s : { ...s, used: s.used + 1 };
      case 'EnrollTokenRevoked':
        return s.status === 'absent' ? s : { ...s, status: 'revoked' };
    }
  },
  decide(c, s) {
    switch (c.type) {
      case 'IssueEnrollToken':
        if (s.status !== 'absent') throw new DomainError('stream.conflict', `enrollment token ${c.tokenId} already exists`);
        return [
          {
            type: 'EnrollTokenIssued',
            data: {
              tokenId: c.tokenId,
              secretHash: c.secretHash,
              labels: c.labels,
              uses: c.uses,
              expiresAt: new Date(c.now.getTime() + c.ttlMs).toISOString(),
              description: c.description,
              issuedAt: c.now.toISOString(),
            },
          },
        ];
      case 'UseEnrollToken':
        if (s.status === 'absent' || s.secretHash !== c.secretHash) throw refused('unknown token');
        if (s.status === 'revoked') throw refused('revoked');
        if (c.now.getTime() >= Date.parse(s.expiresAt)) throw refused(`expired at ${s.expiresAt}`);
        if (s.used >= s.uses) throw refused(`already used ${s.used} of ${s.uses} time(s)`);
        return [{ type: 'EnrollTokenUsed', data: { tokenId: c.tokenId, hostId: c.hostId, natsPublicKey: c.natsPublicKey, usedAt: c.now.toISOString() } }];
      case 'RevokeEnrollToken':
        if (s.status === 'absent') throw new DomainError('enroll.token_not_found', `enrollment token ${c.tokenId} does not exist`);
        if (s.status === 'revoked') return [];
        return [{ type: 'EnrollTokenRevoked', data: { tokenId: c.tokenId, revokedAt: c.now.toISOString() } }];
    }
  },
};
