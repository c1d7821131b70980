import { Injectable } from '@nestjs/common';
import { DataSource, EntityManager } from 'typeorm';
import type { EnrollTokenView } from '@cgfence/proto';
import type { StoredEvent } from '../event-store/event-store';
import { ReadModel } from '../read-models/read-model';
import type { EnrollTokenEvent } from './enroll-token';

const HANDLES = new Set(['EnrollTokenIssued', 'EnrollTokenUsed', 'EnrollTokenRevoked']);

interface Row {
  id: string;
  description: string | null;
  labels: Record<string, string>;
  uses_allowed: number;
  used: number;
  expires_at: Date;
  created_at: Date;
  created_by: string;
  revoked_at: Date | null;
}

const view = (r: Row, now: Date): EnrollTokenView => ({
  id: r.id,
  description: r.description,
  labels: r.labels,
  usesAllowed: r.uses_allowed,
  used: r.used,
  expiresAt: r.expires_at.toISOString(),
  createdAt: r.created_at.toISOString(),
  createdBy: r.created_by,
  revokedAt: r.revoked_at ? r.revoked_at.toISOString() : null,
  status: r.revoked_at ? 'revoked' : r.used >= r.uses_allowed ? 'exhausted' : r.expires_at.getTime() <= now.getTime() ? 'expired' : 'active',
});

/** Enrollment tokens as operators list them (the aggregate decides; this only shows). */
@Injectable()
export class EnrollTokensReadModel implements ReadModel {
  readonly name = 'enroll-tokens';
  readonly tables = ['rm_enroll_tokens'] as const;

  constructor(private readonly db: DataSource) {}

  async apply(stored: StoredEvent, m: EntityManager): Promise<void> {
    if (!HANDLES.has(stored.type)) return;
    const e = { type: stored.type, data: stored.data } as EnrollTokenEvent;
    switch (e.type) {
      case 'EnrollTokenIssued':
        await m.query(
          `insert into rm_enroll_tokens (id, description, labels, uses_allowed, expires_at, created_at, created_by) values ($1, $2, $3, $4, $5, $6, $7)`,
          [e.data.tokenId, e.data.description, JSON.stringify(e.data.labels), e.data.uses, e.data.expiresAt, e.data.issuedAt, stored.metadata.actor],
        );
        return;
      case 'EnrollTokenUsed':
        await m.query(`update rm_enroll_tokens set used = used + 1 where id = $1`, [e.data.tokenId]);
        return;
      case 'EnrollTokenRevoked':
        await m.query(`update rm_enroll_tokens set revoked_at = $2, revoked_by = $3 where id = $1`, [e.data.tokenId, e.data.revokedAt, stored.metadata.actor]);
        return;
    }
  }

  async get(id: string, now: Date): Promise<EnrollTokenView | undefined> {
    const rows: Row[] = await this.db.query(`select * from rm_enroll_tokens where id = $1`, [id]);
    return rows[0] ? view(rows[0], now) : undefined;
  }

  async list(now: Date): Promise<EnrollTokenView[]> {
    const rows: Row[] = await this.db.query(`select * from rm_enroll_tokens order by created_at, id`);
    return rows.map((r) => view(r, now));
  }
}
