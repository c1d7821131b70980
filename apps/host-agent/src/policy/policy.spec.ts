import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { protoBlocklistCodec, type BlocklistCodec } from './entry-types';
import { PolicyStore, compilePolicy, policyNames } from './policy';

const GOOD = [
  '# deploy blocklist',
  'github.com !resolve  # the forge itself',
  '*.githubusercontent.com',
  'GitHub.com',
  '10.0.0.0/8',
  '2001:db8::/32',
  'api.example.net',
].join('\n');

const BAD = ['github.com', 'https://github.com/x', 'ok.example', 'bad..name', ''].join('\n');

describe(compilePolicy.name, () => {
  it('builds a policy: matcher, address ranges, names to resolve, hash and version', () => {
    const result = compilePolicy(protoBlocklistCodec, GOOD, 'v3');
    assert.ok(result.ok, result.ok ? '' : result.message);
    const sut = result.policy;
    assert.equal(sut.version, 'v3');
    assert.match(sut.hash, /^sha256:[0-9a-f]{64}$/);
    assert.equal(result.merged, 1);
    assert.equal(sut.matcher.match('github.com')?.value, 'github.com');
    assert.equal(sut.matcher.match('objects.githubusercontent.com')?.value, '*.githubusercontent.com');
    assert.equal(sut.matcher.match('example.net'), undefined);
    assert.deepEqual(sut.cidrs, { v4: ['10.0.0.0/8'], v6: ['2001:db8::/32'] });
    assert.deepEqual(sut.resolveNames, ['github.com']);
  });

  it('gives the same hash for the same entries written differently', () => {
    const a = compilePolicy(protoBlocklistCodec, 'b.example\na.example\n', 'v1');
    const b = compilePolicy(protoBlocklistCodec, 'A.example.\n\n# c\nb.example', 'v2');
    assert.ok(a.ok && b.ok);
    assert.equal(a.policy.hash, b.policy.hash);
  });

  it('rejects a file with bad lines, listing every one with its line number', () => {
    const result = compilePolicy(protoBlocklistCodec, BAD, 'v4');
    assert.equal(result.ok, false);
    if (result.ok) return;
    assert.deepEqual(
      result.errors.map((e) => [e.line, e.entry]),
      [
        [2, 'https://github.com/x'],
        [4, 'bad..name'],
      ],
    );
    assert.match(result.message, /policy v4 rejected \(2 errors\)/);
    assert.match(result.message, /line 2: "https:\/\/github.com\/x": looks like a URL/);
  });

  it('turns a parser that throws into a rejected file', () => {
    const throwing: BlocklistCodec = {
      parseBlocklistText: () => {
        throw new Error('boom');
      },
      contentHash: () => 'sha256:x',
    };
    const result = compilePolicy(throwing, 'github.com', 'v5');
    assert.equal(result.ok, false);
    assert.match(result.ok ? '' : result.message, /parser failed: boom/);
  });
});

describe(PolicyStore.name, () => {
  it('keeps the previous policy in force when a new file is rejected', () => {
    const sut = new PolicyStore(protoBlocklistCodec);
    const seen: string[] = [];
    sut.onChange((p) => seen.push(p.version));
    assert.ok(sut.load(GOOD, 'v3').ok);
    const rejected = sut.load(BAD, 'v4');
    assert.equal(rejected.ok, false);
    assert.equal(sut.current?.version, 'v3');
    assert.equal(sut.current?.matcher.match('github.com')?.value, 'github.com');
    assert.equal(sut.current?.matcher.match('ok.example'), undefined);
    assert.deepEqual(seen, ['v3']);
  });

  it('swaps to a good new file whole', () => {
    const sut = new PolicyStore(protoBlocklistCodec);
    sut.load(GOOD, 'v3');
    assert.ok(sut.load('ok.example\n', 'v4').ok);
    assert.equal(sut.current?.version, 'v4');
    assert.equal(sut.current?.matcher.match('github.com'), undefined);
    assert.equal(sut.current?.matcher.match('ok.example')?.value, 'ok.example');
  });
});

describe(policyNames.name, () => {
  it('hands the kernel backstop the exact names and the wildcards, nothing else', () => {
    const parsed = protoBlocklistCodec.parseBlocklistText('github.com\n*.github.com\nBlocked.Test\n10.0.0.0/8\n2001:db8::/32\n');
    assert.deepEqual(parsed.errors, []);
    const names = policyNames(parsed.entries);
    assert.deepEqual({ exact: [...names.exact].sort(), wildcard: names.wildcard }, { exact: ['blocked.test', 'github.com'], wildcard: ['*.github.com'] });
  });
});
