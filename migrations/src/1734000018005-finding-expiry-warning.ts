import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The acceptance whose coming expiry a finding's owner was warned of (the
 * `until` of FindingAcceptanceExpiring), so the findings tick warns once per
 * acceptance and does not pick the same finding again. Rebuilt from the
 * finding streams like the rest of rm_findings.
 */
export class FindingExpiryWarning1734000018005 implements MigrationInterface {
  name = 'FindingExpiryWarning1734000018005';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`alter table rm_findings add column expiry_warned_until timestamptz`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`alter table rm_findings drop column expiry_warned_until`);
  }
}
