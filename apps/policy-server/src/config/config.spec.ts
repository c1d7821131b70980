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

  it('names a missing database URL', () => {
    assert.throws(() => loadConfig({}), /CGFENCE_DATABASE_URL/);
  });
});
