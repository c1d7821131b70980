import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Whom a run's command ran as (issue 14): the uid the agent read from the
 * caller's socket credentials, or the `cgfence run --user` user, and its
 * name. Null for runs summarised by older agents.
 */
export class RunUsers1732000000014 implements MigrationInterface {
  name = 'RunUsers1732000000014';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`alter table runs add column uid integer, add column run_user text`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`alter table runs drop column uid, drop column run_user`);
  }
}
