import { Injectable } from '@nestjs/common';
import { DataSource, EntityManager } from 'typeorm';
import type { Role, TokenView } from '@cgfence/proto';
import type { TokenEvent } from '../../auth/token';
import type { StoredEvent } from '../../event-store/event-store';
import { ReadModel } from '../read-model';

const HANDLES = new Set(['TokenIssued', 'TokenRevoked']);

interface TokenRow {
  id: string;
  name: string;
  role: Role;
  secret_hash: string;
  created_at: Date;
  created_by: string;
  revoked_at: Date | null;
}

const view = (r: TokenRow): TokenView => ({
  id: r.id,
  name: r.name,
  role: r.role,
  createdAt: r.created_at.toISOString(),
  createdBy: r.created_by,
  revokedAt: r.revoked_at ? r.revoked_at.toISOString() : null,
});

/** API tokens: who may call, with which role. */
@Injectable()
export class TokensReadModel implements ReadModel {
  readonly name = 'tokens';
  readonly tables = ['rm_api_tokens'] as const;

  constructor(private readonly db: DataSource) {}

  async apply(stored: StoredEvent, m: EntityManager): Promise<void> {
    if (!HANDLES.has(stored.type)) return;
    const e = { type: stored.type, data: stored.data } as TokenEvent;
    switch (e.type) {
      case 'TokenIssued':
        await m.query(
          `insert into rm_api_tokens (id, name, role, secret_hash, created_at, created_by) values ($1, $2, $3, $4, $5, $6)`,
          [e.data.tokenId, e.data.name, e.data.role, e.data.secretHash, e.data.issuedAt, stored.metadata.actor],
        );
        return;
      case 'TokenRevoked':
        await m.query(`update rm_api_tokens set revoked_at = $2, revoked_by = $3 where id = $1`, [e.data.tokenId, e.data.revokedAt, stored.metadata.actor]);
        return;
    }
  }

  async findActiveBySecretHash(hash: string): Promise<TokenView | undefined> {
    const rows: TokenRow[] = await this.db.query(`select * from rm_api_tokens where secret_hash = $1 and revoked_at is null`, [hash]);
    return rows[0] ? view(rows[0]) : undefined;
  }

  async get(id: string): Promise<TokenView | undefined> {
    const rows: TokenRow[] = await this.db.query(`select * from rm_api_tokens where id = $1`, [id]);
    return rows[0] ? view(rows[0]) : undefined;
  }

  async list(): Promise<TokenView[]> {
    const rows: TokenRow[] = await this.db.query(`select * from rm_api_tokens order by created_at, id`);
    return rows.map(view);
  }

  async count(): Promise<number> {
    const rows: { n: string }[] = await this.db.query(`select count(*) as n from rm_api_tokens`);
    return Number(rows[0]?.n ?? 0);
  }
}
