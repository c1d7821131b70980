import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError, loadConfig } from './config';

describe('loadConfig', () => {
  it('applies defaults to a minimal environment', () => {
    const sut = loadConfig({ CGFENCE_DATABASE_URL: 'postgres://u@127.0.0.1:5/db' });
    assert.equal(sut.httpPort, 28080);
    assert.equal(sut.bootstrapAdmin, true);
  });

  it('stops with a message naming each bad variable', () => {
    assert.throws(
      () => loadConfig({ CGFENCE_DATABASE_URL: 'mysql://x', CGFENCE_HTTP_PORT: 'eighty' }),
      (err: unknown) => err instanceof ConfigError && /CGFENCE_DATABASE_URL/.test(err.message) && /CGFENCE_HTTP_PORT/.test(err.message),
    );
  });

  it('reads the findings and webhook settings, and names a bad one', () => {
    const db = { CGFENCE_DATABASE_URL: 'postgres://u@127.0.0.1:5/db' };
    const sut = loadConfig({ ...db, CGFENCE_FINDINGS_QUIET: '2h', CGFENCE_FINDINGS_OWNER_LABEL: 'team' });
    assert.equal(sut.findingsQuietMs, 7_200_000);
    assert.equal(sut.findingsFixQuietMs, 86_400_000);
    assert.equal(sut.findingsOwnerLabel, 'team');
    assert.equal(sut.findings, true);
    assert.throws(() => loadConfig({ ...db, CGFENCE_FINDINGS_QUIET: 'two weeks' }), /CGFENCE_FINDINGS_QUIET/);
    assert.throws(() => loadConfig({ ...db, CGFENCE_FINDINGS_OWNER_LABEL: 'a b' }), /CGFENCE_FINDINGS_OWNER_LABEL/);
    assert.throws(() => loadConfig({ ...db, CGFENCE_WEBHOOK_MAX_ATTEMPTS: '0' }), /CGFENCE_WEBHOOK_MAX_ATTEMPTS/);
  });

  it('names a missing database URL', () => {
    assert.throws(() => loadConfig({}), /CGFENCE_DATABASE_URL/);
  });
});
