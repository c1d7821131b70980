import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Finding occurrences on their way from ingestion to the finding streams:
 * an ingest batch adds one row per (owner, entry) in the same transaction
 * as its block events, and the findings feeder turns rows into finding
 * events after the commit (claimed with SKIP LOCKED, deleted in the same
 * transaction as the events they become). A crash in between only delays.
 */
export class FindingOccurrences1733000018002 implements MigrationInterface {
  name = 'FindingOccurrences1733000018002';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      create table finding_occurrences (
        id          bigserial   primary key,
        finding_id  text        not null,
        owner_key   text        not null,
        owner       text        not null,
        entry       text        not null,
        first_seen  timestamptz not null,
        last_seen   timestamptz not null,
        blocked     integer     not null,
        audited     integer     not null,
        names       text[]      not null,
        hosts       text[]      not null,
        cohorts     text[]      not null,
        runs        text[]      not null,
        commands    text[]      not null,
        versions    text[]      not null,
        created_at  timestamptz not null default now()
      )`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`drop table finding_occurrences`);
  }
}
