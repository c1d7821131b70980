import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { effectiveUidOf } from './run-start';

describe(effectiveUidOf.name, () => {
  it('reads the effective uid of a live process, and nothing for a pid that does not exist', () => {
    assert.equal(effectiveUidOf(process.pid), process.geteuid?.());
    assert.equal(effectiveUidOf(2 ** 30), undefined);
  });
});
