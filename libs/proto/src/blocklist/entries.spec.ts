import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import {
  applyDiff,
  BlocklistEntry,
  canonicalise,
  canonicalText,
  compareEntries,
  contentHash,
  diffEntries,
  EntryInput,
  parseBlocklistText,
  parseEntry,
  parseEntryValue,
} from './entries';

function entriesOf(inputs: readonly (string | EntryInput)[]): BlocklistEntry[] {
  const result = canonicalise(inputs);
  assert.deepEqual(result.errors, []);
  return result.entries;
}

function values(entries: readonly BlocklistEntry[]): string[] {
  return entries.map((entry) => entry.value);
}

/** Deterministic shuffle (a fixed-seed LCG), so a failure can be reproduced. */
function shuffled<T>(items: readonly T[], seed: number): T[] {
  const out = [...items];
  let state = seed;
  for (let i = out.length - 1; i > 0; i--) {
    state = (state * 1103515245 + 12345) % 2147483648;
    const j = state % (i + 1);
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

const MIXED = [
  'github.com',
  'api.github.com !resolve  # the API',
  '*.githubusercontent.com # raw files',
  '_dmarc.example.com',
  'bücher.example',
  '10.1.2.3/8',
  '192.0.2.7 # one host',
  '9.9.9.9',
  '2001:db8::/32',
  '::ffff:192.0.2.1',
  'fe80::1/10  # link local ## with hashes',
  '*.example.org !resolve',
];

describe(parseEntry.name, () => {
  const sut = parseEntry;

  it('reads a bare value of each kind', () => {
    assert.deepEqual(sut('GitHub.com'), { ok: true, entry: { kind: 'domain', value: 'github.com' } });
    assert.deepEqual(sut('*.Example.com'), { ok: true, entry: { kind: 'wildcard', value: '*.example.com' } });
    assert.deepEqual(sut('10.1.2.3/8'), { ok: true, entry: { kind: 'cidr4', value: '10.0.0.0/8' } });
    assert.deepEqual(sut('2001:DB8::1'), { ok: true, entry: { kind: 'cidr6', value: '2001:db8::1/128' } });
  });

  it('reads the flag and the comment, trimming both sides', () => {
    assert.deepEqual(sut('  github.com   !resolve   #   deploys fetch releases here  '), {
      ok: true,
      entry: { kind: 'domain', value: 'github.com', resolve: true, comment: 'deploys fetch releases here' },
    });
    assert.deepEqual(sut('!resolve *.github.com'), { ok: true, entry: { kind: 'wildcard', value: '*.github.com', resolve: true } });
    assert.deepEqual(sut('github.com#no space needed'), { ok: true, entry: { kind: 'domain', value: 'github.com', comment: 'no space needed' } });
  });

  it('omits an empty comment', () => {
    assert.deepEqual(sut('github.com #   '), { ok: true, entry: { kind: 'domain', value: 'github.com' } });
  });

  it('keeps everything after the first "#" as the comment', () => {
    assert.deepEqual(sut('github.com # see #123 # really'), {
      ok: true,
      entry: { kind: 'domain', value: 'github.com', comment: 'see #123 # really' },
    });
  });

  it('refuses !resolve on an address range', () => {
    const result = sut('10.0.0.0/8 !resolve');
    assert.ok(!result.ok);
    assert.match(result.reason, /"!resolve" applies only to domain and wildcard entries/);
  });

  it('refuses unknown flags, extra words, and lines without a value', () => {
    const reasons = ['github.com !block', 'github.com gitlab.com', '!resolve', '# only a comment', '', '   '].map((line) => {
      const result = sut(line);
      assert.ok(!result.ok, line);
      return result.reason;
    });
    assert.match(reasons[0], /unknown flag "!block"/);
    assert.match(reasons[1], /unexpected text "gitlab.com" after "github.com"/);
    assert.match(reasons[2], /without an entry/);
    assert.match(reasons[3], /no entry before the "#" comment/);
    assert.equal(reasons[4], 'empty entry');
    assert.equal(reasons[5], 'empty entry');
  });

  it('refuses URLs and ports with a hint', () => {
    const url = sut('https://github.com/org/repo');
    assert.ok(!url.ok);
    assert.match(url.reason, /looks like a URL/);
    const port = sut('github.com:443');
    assert.ok(!port.ok);
    assert.match(port.reason, /a port cannot be blocked/);
  });

  it('refuses a comment with a line break in it', () => {
    const result = sut('github.com # one\ntwo');
    assert.ok(!result.ok);
    assert.match(result.reason, /line break/);
  });
});

describe(parseEntryValue.name, () => {
  const sut = parseEntryValue;

  it('canonicalises a bare value and refuses one with a comment', () => {
    assert.deepEqual(sut(' GitHub.com. '), { ok: true, kind: 'domain', value: 'github.com' });
    assert.equal(sut('github.com # x').ok, false);
  });

  it('tells names that look alike apart on label boundaries', () => {
    const a = sut('notgithub.com');
    const b = sut('github.com');
    assert.ok(a.ok && b.ok);
    assert.notEqual(a.value, b.value);
  });
});

describe(canonicalise.name, () => {
  const sut = canonicalise;

  it('keeps notgithub.com and github.com as two entries', () => {
    assert.deepEqual(values(entriesOf(['notgithub.com', 'github.com'])), ['github.com', 'notgithub.com']);
  });

  it('keeps overlapping entries apart: only equal values merge', () => {
    const entries = entriesOf(['*.github.com', 'github.com', 'api.github.com', '10.0.0.0/8', '10.1.0.0/16']);
    assert.equal(entries.length, 5);
  });

  it('merges duplicates after canonicalisation and counts them', () => {
    const result = sut(['GitHub.com', 'github.com.', 'GITHUB.COM', '10.1.2.3/8', '10.0.0.0/8', 'bücher.example', 'xn--bcher-kva.example']);
    assert.deepEqual(result.errors, []);
    assert.equal(result.merged, 4);
    assert.deepEqual(values(result.entries), ['github.com', 'xn--bcher-kva.example', '10.0.0.0/8']);
  });

  it('keeps the first non-empty comment and lets !resolve win when merging', () => {
    const result = sut(['github.com', 'GitHub.com # first reason', { value: 'github.com.', comment: 'second reason', resolve: true }, 'github.com']);
    assert.deepEqual(result.entries, [{ kind: 'domain', value: 'github.com', comment: 'first reason', resolve: true }]);
    assert.equal(result.merged, 3);
  });

  it('takes objects with the comment and flag in their own fields', () => {
    assert.deepEqual(entriesOf([{ value: ' *.GitHub.com ', comment: '  why  ', resolve: true }, { value: '10.0.0.1', comment: '' }]), [
      { kind: 'wildcard', value: '*.github.com', comment: 'why', resolve: true },
      { kind: 'cidr4', value: '10.0.0.1/32' },
    ]);
  });

  it('refuses an object whose value carries a comment or a flag', () => {
    const result = sut([{ value: 'github.com # why' }, { value: 'github.com !resolve' }]);
    assert.equal(result.errors.length, 2);
    for (const error of result.errors) assert.match(error.reason, /own fields/);
  });

  it('refuses resolve on an address range given as an object', () => {
    const result = sut([{ value: '10.0.0.0/8', resolve: true }]);
    assert.equal(result.errors.length, 1);
    assert.match(result.errors[0].reason, /resolve applies only to domain and wildcard entries/);
  });

  it('reports malformed inputs that slipped past the type system', () => {
    // A REST body that skipped validation: the shapes TypeScript would not allow.
    const inputs = [42, null, { value: 7 }, { value: 'github.com', comment: 5 }, { value: 'github.com', resolve: 'yes' }] as unknown as EntryInput[];
    const result = sut(inputs);
    assert.deepEqual(
      result.errors.map((error) => error.line),
      [1, 2, 3, 4, 5],
    );
    assert.equal(result.errors[0].entry, '42');
    assert.match(result.errors[3].reason, /comment must be a string/);
    assert.match(result.errors[4].reason, /resolve must be true or false/);
    assert.deepEqual(result.entries, []);
  });

  it('reports every bad entry with its 1-based position and its raw text, and keeps the good ones', () => {
    const result = sut(['github.com', '-bad.com', 'a.*.com', '10.0.0.0/33', 'gitlab.com', '300.1.1.1', '  *foo.com  ']);
    assert.deepEqual(
      result.errors.map(({ line, entry }) => ({ line, entry })),
      [
        { line: 2, entry: '-bad.com' },
        { line: 3, entry: 'a.*.com' },
        { line: 4, entry: '10.0.0.0/33' },
        { line: 6, entry: '300.1.1.1' },
        { line: 7, entry: '  *foo.com  ' },
      ],
    );
    assert.equal(result.errors[0].reason, 'label "-bad" starts with a hyphen');
    assert.deepEqual(values(result.entries), ['github.com', 'gitlab.com']);
  });

  it('sorts by kind, then value, with ranges in numeric order', () => {
    const entries = entriesOf(shuffled(['10.0.0.0/16', '2001:db8::/32', '*.b.example', 'b.example', '9.0.0.0/8', '::1', 'a.example', '10.0.0.0/8', '*.a.example'], 7));
    assert.deepEqual(values(entries), [
      'a.example',
      'b.example',
      '*.a.example',
      '*.b.example',
      '9.0.0.0/8',
      '10.0.0.0/8',
      '10.0.0.0/16',
      '::1/128',
      '2001:db8::/32',
    ]);
  });
});

describe(parseBlocklistText.name, () => {
  const sut = parseBlocklistText;

  it('skips blank lines and full-line comments, and counts real file lines', () => {
    const text = [
      '# Deploy-path dependencies', // 1
      '', // 2
      'github.com !resolve  # releases', // 3
      '   # indented comment', // 4
      '\t', // 5
      '-bad.example', // 6
      '*.githubusercontent.com', // 7
      'a.*.example  # misplaced wildcard', // 8
      '10.0.0.1', // 9
      '',
    ].join('\n');
    const result = sut(text);
    assert.deepEqual(result.entries, [
      { kind: 'domain', value: 'github.com', resolve: true, comment: 'releases' },
      { kind: 'wildcard', value: '*.githubusercontent.com' },
      { kind: 'cidr4', value: '10.0.0.1/32' },
    ]);
    assert.deepEqual(
      result.errors.map(({ line, entry }) => ({ line, entry })),
      [
        { line: 6, entry: '-bad.example' },
        { line: 8, entry: 'a.*.example  # misplaced wildcard' },
      ],
    );
  });

  it('accepts CRLF line ends and a byte order mark', () => {
    const result = sut('\ufeffgithub.com # a\r\n\r\nbad!.com\r\n');
    assert.deepEqual(result.entries, [{ kind: 'domain', value: 'github.com', comment: 'a' }]);
    assert.deepEqual(result.errors, [{ line: 3, entry: 'bad!.com', reason: 'invalid character "!" in label "bad!"' }]);
  });

  it('reads an empty file as an empty list', () => {
    assert.deepEqual(sut(''), { entries: [], errors: [], merged: 0 });
    assert.deepEqual(sut('# nothing yet\n\n'), { entries: [], errors: [], merged: 0 });
  });

  it('merges duplicate lines', () => {
    const result = sut('github.com\nGITHUB.com # reason\n');
    assert.deepEqual(result.entries, [{ kind: 'domain', value: 'github.com', comment: 'reason' }]);
    assert.equal(result.merged, 1);
  });
});

describe(canonicalText.name, () => {
  const sut = canonicalText;

  it('writes one sorted line per entry with the flag and comment, ending in a newline', () => {
    const entries = entriesOf(['10.0.0.0/8', 'github.com # why', '*.example.com !resolve', 'api.github.com !resolve # two  spaces']);
    assert.equal(sut(entries), ['api.github.com !resolve  # two  spaces', 'github.com  # why', '*.example.com !resolve', '10.0.0.0/8', ''].join('\n'));
  });

  it('writes nothing for an empty list', () => {
    assert.equal(sut([]), '');
  });

  it('round-trips through parseBlocklistText', () => {
    const entries = entriesOf(MIXED);
    const again = parseBlocklistText(sut(entries));
    assert.deepEqual(again, { entries, errors: [], merged: 0 });
    assert.equal(sut(again.entries), sut(entries));
  });

  it('does not depend on the order it is given', () => {
    const entries = entriesOf(MIXED);
    assert.equal(sut(shuffled(entries, 3)), sut(entries));
  });
});

describe(contentHash.name, () => {
  const sut = contentHash;

  it('is the SHA-256 of the canonical text', () => {
    const entries = entriesOf(MIXED);
    const expected = createHash('sha256').update(canonicalText(entries)).digest('hex');
    assert.equal(sut(entries), `sha256:${expected}`);
    assert.match(sut([]), /^sha256:[0-9a-f]{64}$/);
  });

  it('is the same whatever order and spelling the entries were given in', () => {
    const spelledOtherwise = ['GITHUB.com.', 'API.github.com. !resolve # the API', '*.GitHubUserContent.com # raw files', '_DMARC.example.com', 'xn--bcher-kva.example'];
    assert.equal(sut(entriesOf(shuffled(spelledOtherwise, 11))), sut(entriesOf(MIXED.slice(0, 5))));
    assert.equal(sut(canonicalise(shuffled(MIXED, 5)).entries), sut(canonicalise(MIXED).entries));
  });

  it('changes when a comment or flag changes', () => {
    const base = sut(entriesOf(['github.com']));
    assert.notEqual(sut(entriesOf(['github.com # why'])), base);
    assert.notEqual(sut(entriesOf(['github.com !resolve'])), base);
  });
});

describe(compareEntries.name, () => {
  const sut = compareEntries;

  it('orders kinds domain, wildcard, cidr4, cidr6', () => {
    const [domain, wildcard, cidr4, cidr6] = entriesOf(['z.example', '*.a.example', '1.1.1.1', '::1']);
    assert.ok(sut(domain, wildcard) < 0);
    assert.ok(sut(wildcard, cidr4) < 0);
    assert.ok(sut(cidr4, cidr6) < 0);
    assert.ok(sut(cidr6, domain) > 0);
  });

  it('orders ranges numerically, then by prefix', () => {
    const [nine, ten8, ten16] = entriesOf(['9.0.0.0/8', '10.0.0.0/8', '10.0.0.0/16']);
    assert.ok(sut(nine, ten8) < 0);
    assert.ok(sut(ten8, ten16) < 0);
    assert.ok(sut(ten16, nine) > 0);
  });

  it('is total: same value orders by flag, then comment, and equal entries compare 0', () => {
    const plain: BlocklistEntry = { kind: 'domain', value: 'github.com' };
    const flagged: BlocklistEntry = { ...plain, resolve: true };
    const commented: BlocklistEntry = { ...plain, comment: 'a' };
    assert.ok(sut(plain, flagged) < 0);
    assert.ok(sut(plain, commented) < 0);
    assert.equal(sut(plain, { ...plain }), 0);
  });
});

describe(diffEntries.name, () => {
  const sut = diffEntries;

  it('lists what was added and what was removed, sorted', () => {
    const from = entriesOf(['github.com', 'gitlab.com', '10.0.0.0/8']);
    const to = entriesOf(['github.com', '192.0.2.1', 'bitbucket.org']);
    assert.deepEqual(sut(from, to), {
      added: entriesOf(['bitbucket.org', '192.0.2.1']),
      removed: entriesOf(['gitlab.com', '10.0.0.0/8']),
    });
  });

  it('shows a changed comment or flag as the old entry removed and the new one added', () => {
    const from = entriesOf(['github.com # old', 'gitlab.com']);
    const to = entriesOf(['github.com # new', 'gitlab.com !resolve']);
    const diff = sut(from, to);
    assert.deepEqual(diff.removed, from);
    assert.deepEqual(diff.added, to);
  });

  it('finds no change between a list and itself in another order', () => {
    const entries = entriesOf(MIXED);
    assert.deepEqual(sut(entries, shuffled(entries, 9)), { added: [], removed: [] });
  });

  it('applying the diff to the old list gives the new list', () => {
    const from = entriesOf(MIXED);
    const to = entriesOf([...MIXED.slice(3), 'new.example', 'github.com # now with a reason']);
    const diff = sut(from, to);
    const result = applyDiff(
      from,
      diff.added,
      diff.removed.map((entry) => entry.value),
    );
    assert.deepEqual(result.errors, []);
    assert.deepEqual(result.entries, to);
  });
});

describe(applyDiff.name, () => {
  const sut = applyDiff;

  it('removes and adds entries, and returns the result canonical and sorted', () => {
    const base = entriesOf(['github.com', 'gitlab.com', '10.0.0.0/8']);
    const result = sut(base, ['bitbucket.org # new', '*.Example.com'], ['gitlab.com']);
    assert.deepEqual(result.errors, []);
    assert.deepEqual(result.entries, entriesOf(['github.com', 'bitbucket.org # new', '*.example.com', '10.0.0.0/8']));
  });

  it('matches removals by canonical value', () => {
    const base = entriesOf(['github.com !resolve # reason', '10.0.0.0/8', 'bücher.example']);
    const result = sut(base, [], ['GitHub.com.', '10.9.9.9/8', 'BÜCHER.example']);
    assert.deepEqual(result, { entries: [], errors: [], merged: 0 });
  });

  it('reports a removal of a value the base does not hold, and a removal that does not parse', () => {
    const base = entriesOf(['github.com']);
    const result = sut(base, ['-bad.com'], ['gitlab.com', 'github.com', 'a.*.com']);
    assert.deepEqual(result.errors, [
      { line: 1, entry: '-bad.com', reason: 'label "-bad" starts with a hyphen' },
      { line: 1, entry: 'gitlab.com', reason: 'not in the base version' },
      { line: 3, entry: 'a.*.com', reason: 'wildcard "*" may appear only as the leftmost label ("*.example.com")' },
    ]);
    assert.deepEqual(result.entries, []);
  });

  it('changes a comment by removing and adding the same value', () => {
    const base = entriesOf(['github.com # old']);
    const result = sut(base, [{ value: 'github.com', comment: 'new', resolve: true }], ['github.com']);
    assert.deepEqual(result.entries, [{ kind: 'domain', value: 'github.com', comment: 'new', resolve: true }]);
    assert.equal(result.merged, 0);
  });

  it('merges an added duplicate into the base entry: its comment stays, !resolve wins', () => {
    const base = entriesOf(['github.com # old']);
    const result = sut(base, ['GITHUB.com !resolve # new'], []);
    assert.deepEqual(result.entries, [{ kind: 'domain', value: 'github.com', comment: 'old', resolve: true }]);
    assert.equal(result.merged, 1);
  });

  it('leaves the base list untouched', () => {
    const base = entriesOf(['github.com # old', 'gitlab.com']);
    const copy = structuredClone(base);
    sut(base, ['github.com !resolve'], ['gitlab.com']);
    assert.deepEqual(base, copy);
  });
});
