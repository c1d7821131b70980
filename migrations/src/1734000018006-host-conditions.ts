import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The conditions a host is in ('rejected', 'drifted'), as its
 * HostConditionChanged events left them: report batches decide the next
 * change from the locked row, so a condition is entered once per change
 * (one notification), not once per report. Rebuilt from the host streams.
 */
export class HostConditions1734000018006 implements MigrationInterface {
  name = 'HostConditions1734000018006';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`alter table rm_hosts add column conditions text[] not null default '{}'`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`alter table rm_hosts drop column conditions`);
  }
}
