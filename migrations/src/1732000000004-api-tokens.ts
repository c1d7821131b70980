import { MigrationInterface, QueryRunner } from 'typeorm';

/** Read model of API tokens. Only a SHA-256 of each secret is ever stored. */
export class ApiTokens1732000000004 implements MigrationInterface {
  name = 'ApiTokens1732000000004';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      create table rm_api_tokens (
        id          text        primary key,
        name        text        not null,
        role        text        not null check (role in ('viewer', 'operator', 'admin')),
        secret_hash text        not null unique,
        created_at  timestamptz not null,
        created_by  text        not null,
        revoked_at  timestamptz,
        revoked_by  text
      )`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`drop table rm_api_tokens`);
  }
}
