import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Immutable, content-addressed blocklist contents. Version events refer to a
 * content hash; the canonical text lives here once, however many versions or
 * blocklists share it. Not a projection: rebuilding read models keeps it.
 */
export class BlocklistContents1732000000002 implements MigrationInterface {
  name = 'BlocklistContents1732000000002';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      create table blocklist_contents (
        content_hash text        primary key,
        canonical    text        not null,
        entry_count  integer     not null,
        created_at   timestamptz not null default now()
      )`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`drop table blocklist_contents`);
  }
}
