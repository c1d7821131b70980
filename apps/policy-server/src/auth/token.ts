import type { Role } from '@cgfence/proto';
import { DomainError } from '../common/errors';
import type { Decider } from '../event-store/decider';

/** The API token aggregate. Events carry only a SHA-256 of the secret. */
export interface TokenIssued {
  type: 'TokenIssued';
  data: { tokenId: string; name: string; role: Role; secretHash: string; issuedAt: string };
}
export interface TokenRevoked {
  type: 'TokenRevoked';
  data: { tokenId: string; revokedAt: string };
}
export type TokenEvent = TokenIssued | TokenRevoked;

export type TokenState = { status: 'absent' } | { status: 'active'; tokenId: string } | { status: 'revoked'; tokenId: string };

export interface IssueToken {
  type: 'IssueToken';
  tokenId: string;
  name: string;
  role: Role;
  secretHash: string;
  now: Date;
}
export interface RevokeToken {
  type: 'RevokeToken';
  tokenId: string;
  now: Date;
}
export type TokenCommand = IssueToken | RevokeToken;

export const streamOfToken = (tokenId: string): string => `token-${tokenId}`;

export const tokenDecider: Decider<TokenState, TokenCommand, TokenEvent> = {
  initialState: { status: 'absent' },
  evolve(state, event) {
    switch (event.type) {
      case 'TokenIssued':
        return { status: 'active', tokenId: event.data.tokenId };
      case 'TokenRevoked':
        return { status: 'revoked', tokenId: event.data.tokenId };
    }
  },
  decide(command, state) {
    switch (command.type) {
      case 'IssueToken':
        if (state.status !== 'absent') throw new DomainError('stream.conflict', `token ${command.tokenId} already exists`);
        return [
          {
            type: 'TokenIssued',
            data: { tokenId: command.tokenId, name: command.name, role: command.role, secretHash: command.secretHash, issuedAt: command.now.toISOString() },
          },
        ];
      case 'RevokeToken':
        if (state.status === 'absent') throw new DomainError('token.not_found', `token ${command.tokenId} does not exist`);
        if (state.status === 'revoked') return [];
        return [{ type: 'TokenRevoked', data: { tokenId: command.tokenId, revokedAt: command.now.toISOString() } }];
    }
  },
};
