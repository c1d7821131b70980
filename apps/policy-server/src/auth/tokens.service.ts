import { Injectable } from '@nestjs/common';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Role, TokenView } from '@cgfence/proto';
import { Clock } from '../common/clock';
import { DomainError } from '../common/errors';
import type { Actor, Principal } from '../common/request-context';
import { CommandHandler } from '../event-store/command-handler.service';
import { TokensReadModel } from '../read-models/tokens/tokens.read-model';
import { hashSecret, newSecret, newTokenId } from './secrets';
import { streamOfToken, tokenDecider } from './token';

export const BOOTSTRAP_TOKEN_FILE = 'admin-token';

/** Issues, revokes and checks API tokens. */
@Injectable()
export class TokensService {
  constructor(
    private readonly commands: CommandHandler,
    private readonly tokens: TokensReadModel,
    private readonly clock: Clock,
  ) {}

  /** Issues a token; the secret is returned once and never stored. */
  async issue(name: string, role: Role, actor: Actor): Promise<{ token: TokenView; secret: string }> {
    const tokenId = newTokenId();
    const secret = newSecret();
    await this.commands.handle(
      streamOfToken(tokenId),
      tokenDecider,
      { type: 'IssueToken', tokenId, name, role, secretHash: hashSecret(secret), now: this.clock.now() },
      actor,
    );
    const token = await this.tokens.get(tokenId);
    if (!token) throw new Error(`token ${tokenId} missing from the read model after issue`);
    return { token, secret };
  }

  async revoke(tokenId: string, actor: Actor): Promise<void> {
    await this.commands.handle(streamOfToken(tokenId), tokenDecider, { type: 'RevokeToken', tokenId, now: this.clock.now() }, actor);
  }

  list(): Promise<TokenView[]> {
    return this.tokens.list();
  }

  /** The principal a bearer secret stands for, or an auth error. */
  async authenticate(secret: string | undefined): Promise<Principal> {
    if (!secret) throw new DomainError('auth.missing_token', 'missing bearer token (Authorization: Bearer cgf_…)');
    const token = await this.tokens.findActiveBySecretHash(hashSecret(secret));
    if (!token) throw new DomainError('auth.invalid_token', 'unknown or revoked token');
    return { tokenId: token.id, name: token.name, role: token.role };
  }

  /**
   * On a store with no token at all, issues an admin token and writes it to
   * STATE_DIR/admin-token (mode 0600). Returns the secret when it made one.
   */
  async bootstrapAdmin(stateDir: string): Promise<string | undefined> {
    if ((await this.tokens.count()) > 0) return undefined;
    const { secret } = await this.issue('bootstrap-admin', 'admin', { actor: 'system:bootstrap', correlationId: 'bootstrap' });
    mkdirSync(stateDir, { recursive: true });
    const file = join(stateDir, BOOTSTRAP_TOKEN_FILE);
    writeFileSync(file, `${secret}\n`, { mode: 0o600 });
    // An older file keeps its mode on overwrite: tighten it either way.
    chmodSync(file, 0o600);
    return secret;
  }
}
