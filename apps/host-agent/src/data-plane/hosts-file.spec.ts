import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DomainMatcher } from '../policy/domain-matcher';
import { listedHostsEntries } from './hosts-file';

describe(listedHostsEntries.name, () => {
  const matcher = DomainMatcher.compile([
    { kind: 'domain', value: 'github.com' },
    { kind: 'wildcard', value: '*.internal.example' },
  ]);

  it('finds listed names among the aliases, with their line, address and policy entry', () => {
    const text = ['127.0.0.1 localhost', '# 10.0.0.1 github.com (a comment)', '10.0.0.2   mirror gh GitHub.com.  # pinned', '', 'fd00::7\tapi.internal.example', '192.0.2.9 internal.example'].join('\n');
    assert.deepEqual(listedHostsEntries(text, matcher), [
      { line: 3, address: '10.0.0.2', name: 'github.com', entry: 'github.com' },
      { line: 5, address: 'fd00::7', name: 'api.internal.example', entry: '*.internal.example' },
    ]);
  });

  it('skips lines whose first field is not an address (or has a zone), and names alone', () => {
    const text = ['github.com 10.0.0.3', 'fe80::1%eth0 github.com', '10.0.0.4', 'not-an-ip github.com', '\r', '10.0.0.5 github.com\r'].join('\n');
    assert.deepEqual(listedHostsEntries(text, matcher), [{ line: 6, address: '10.0.0.5', name: 'github.com', entry: 'github.com' }]);
  });

  it('finds nothing with an empty policy', () => {
    assert.deepEqual(listedHostsEntries('10.0.0.2 github.com\n', DomainMatcher.empty()), []);
  });
});
