import { MigrationInterface, QueryRunner } from 'typeorm';

/** Owners (a run-label value → a team) and their notification targets, rebuilt from the owner streams. */
export class OwnersReadModel1733000018003 implements MigrationInterface {
  name = 'OwnersReadModel1733000018003';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      create table rm_owners (
        key        text        not null,
        value      text        not null,
        team       text,
        updated_at timestamptz not null,
        primary key (key, value)
      )`);
    await q.query(`
      create table rm_notification_targets (
        id         text        primary key,
        owner_key  text        not null,
        owner      text        not null,
        url        text        not null,
        format     text        not null,
        triggers   text[]      not null,
        digest     text,
        updated_at timestamptz not null
      )`);
    await q.query(`create index rm_notification_targets_owner on rm_notification_targets (owner_key, owner)`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`drop table rm_notification_targets`);
    await q.query(`drop table rm_owners`);
  }
}
