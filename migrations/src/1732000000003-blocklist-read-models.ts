import { MigrationInterface, QueryRunner } from 'typeorm';

/** Read models of blocklists and their versions (projections of events). */
export class BlocklistReadModels1732000000003 implements MigrationInterface {
  name = 'BlocklistReadModels1732000000003';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      create table rm_blocklists (
        name            text        primary key,
        description     text        not null,
        owner           text        not null,
        created_at      timestamptz not null,
        created_by      text        not null,
        latest_version  integer     not null default 0,
        latest_hash     text,
        updated_at      timestamptz not null
      )`);
    await q.query(`
      create table rm_blocklist_versions (
        blocklist     text        not null references rm_blocklists (name) on delete cascade,
        version       integer     not null,
        content_hash  text        not null,
        entry_count   integer     not null,
        added_count   integer     not null,
        removed_count integer     not null,
        message       text        not null,
        committed_at  timestamptz not null,
        committed_by  text        not null,
        primary key (blocklist, version)
      )`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`drop table rm_blocklist_versions`);
    await q.query(`drop table rm_blocklists`);
  }
}
