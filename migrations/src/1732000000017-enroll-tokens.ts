import { MigrationInterface, QueryRunner } from 'typeorm';

/** Read model of host enrollment (join) tokens. Only a SHA-256 of each secret is stored (in the events). */
export class EnrollTokens1732000000017 implements MigrationInterface {
  name = 'EnrollTokens1732000000017';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      create table rm_enroll_tokens (
        id           text        primary key,
        description  text,
        labels       jsonb       not null,
        uses_allowed integer     not null check (uses_allowed > 0),
        used         integer     not null default 0,
        expires_at   timestamptz not null,
        created_at   timestamptz not null,
        created_by   text        not null,
        revoked_at   timestamptz,
        revoked_by   text
      )`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`drop table rm_enroll_tokens`);
  }
}
