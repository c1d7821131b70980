import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Findings as the API lists them: one row per (owner, listed entry), rebuilt
 * from the finding streams like every read model.
 */
export class FindingsReadModel1733000018001 implements MigrationInterface {
  name = 'FindingsReadModel1733000018001';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      create table rm_findings (
        id             text        primary key,
        owner_key      text        not null,
        owner          text        not null,
        entry          text        not null,
        state          text        not null,
        state_since    timestamptz not null,
        regression     boolean     not null default false,
        first_seen     timestamptz not null,
        last_seen      timestamptz not null,
        blocked        bigint      not null default 0,
        audited        bigint      not null default 0,
        names          text[]      not null default '{}',
        hosts          text[]      not null default '{}',
        cohorts        text[]      not null default '{}',
        runs           text[]      not null default '{}',
        commands       text[]      not null default '{}',
        versions       text[]      not null default '{}',
        fixed_at       timestamptz,
        accepted_until timestamptz,
        opened_at      timestamptz not null,
        updated_at     timestamptz not null
      )`);
    await q.query(`create index rm_findings_owner on rm_findings (owner_key, owner, last_seen desc)`);
    await q.query(`create index rm_findings_state on rm_findings (state, last_seen desc)`);
    await q.query(`create index rm_findings_last_seen on rm_findings (last_seen desc)`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`drop table rm_findings`);
  }
}
