import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The listed name an allowed name's DNS answer led to through a CNAME or
 * DNAME chain (issue 13): `releases.internal.example` was asked, its answer
 * named `objects.githubusercontent.com`, which is listed. Null for every
 * other event and for events of older agents. Timestamped after every migration of main (TypeORM runs
 * pending ones in list order). Added on the partitioned
 * parent, so every partition (existing and future) has it.
 */
export class BlockEventsCnameTarget1734000020013 implements MigrationInterface {
  name = 'BlockEventsCnameTarget1734000020013';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`alter table block_events add column cname_target text`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`alter table block_events drop column cname_target`);
  }
}
