import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DomainMatcher, normalizeDomainName } from './domain-matcher';
import type { BlocklistEntry } from './entry-types';

const domain = (value: string, resolve?: boolean): BlocklistEntry => ({ kind: 'domain', value, ...(resolve ? { resolve } : {}) });
const wildcard = (value: string): BlocklistEntry => ({ kind: 'wildcard', value });

describe(DomainMatcher.name, () => {
  const sut = DomainMatcher.compile([
    domain('github.com'),
    wildcard('*.githubusercontent.com'),
    wildcard('*.github.com'),
    wildcard('*.api.github.com'),
    domain('xn--bcher-kva.example'),
    { kind: 'cidr4', value: '10.0.0.0/8' },
  ]);

  it('matches an exact name and returns its entry', () => {
    assert.deepEqual(sut.match('github.com'), domain('github.com'));
  });

  it('does not match across a label boundary', () => {
    assert.equal(sut.match('notgithub.com'), undefined);
    assert.equal(sut.match('github.com.evil.net'), undefined);
    assert.equal(sut.match('xgithubusercontent.com'), undefined);
    assert.equal(sut.match('github.co'), undefined);
    assert.equal(sut.match('com'), undefined);
  });

  it('matches any depth under a wildcard', () => {
    assert.equal(sut.match('raw.githubusercontent.com')?.value, '*.githubusercontent.com');
    assert.equal(sut.match('a.b.c.githubusercontent.com')?.value, '*.githubusercontent.com');
  });

  it('does not match the apex of a wildcard unless the apex is listed', () => {
    assert.equal(sut.match('githubusercontent.com'), undefined);
    assert.equal(sut.match('github.com')?.value, 'github.com');
  });

  it('names the most specific entry when several match', () => {
    assert.equal(sut.match('uploads.api.github.com')?.value, '*.api.github.com');
    assert.equal(sut.match('api.github.com')?.value, '*.github.com');
  });

  it('ignores case and a trailing dot', () => {
    assert.equal(sut.match('GitHub.COM.')?.value, 'github.com');
    assert.equal(sut.match('RAW.GitHubUserContent.com.')?.value, '*.githubusercontent.com');
  });

  it('matches internationalised names as A-labels, also when asked in Unicode', () => {
    assert.equal(sut.match('XN--BCHER-KVA.example')?.value, 'xn--bcher-kva.example');
    assert.equal(sut.match('Bücher.example')?.value, 'xn--bcher-kva.example');
  });

  it('never matches the root or an empty name, and ignores address entries', () => {
    assert.equal(sut.match('.'), undefined);
    assert.equal(sut.match(''), undefined);
    assert.equal(sut.match('10.0.0.0'), undefined);
    assert.equal(sut.size, 5);
  });

  it('compiles and answers for 100,000 names', () => {
    const entries: BlocklistEntry[] = [];
    for (let i = 0; i < 100_000; i++) entries.push(i % 10 === 0 ? wildcard(`*.zone${i}.example`) : domain(`host${i}.service${i % 97}.example`));
    const started = process.hrtime.bigint();
    const big = DomainMatcher.compile(entries);
    let hits = 0;
    let wrongHits = 0;
    for (let i = 0; i < 100_000; i++) {
      const probe = i % 10 === 0 ? `deep.www.zone${i}.example` : `HOST${i}.service${i % 97}.example.`;
      if (big.match(probe) !== undefined) hits++;
      const sibling = i % 10 === 0 ? `zone${i}.example` : `x${probe}`; // wildcard apex / not on a label boundary
      if (big.match(sibling) !== undefined) wrongHits++;
    }
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    assert.equal(big.size, 100_000);
    assert.equal(hits, 100_000);
    assert.equal(wrongHits, 0);
    // Generous bound for a shared 2-core machine; typical is ~100 ms. It
    // catches a quadratic compile or a linear scan per lookup.
    assert.ok(ms < 5000, `compile + 200k lookups took ${ms.toFixed(0)} ms`);
  });
});

describe(normalizeDomainName.name, () => {
  it('lower-cases, strips one trailing dot and turns U-labels into A-labels', () => {
    assert.equal(normalizeDomainName('WWW.Example.COM.'), 'www.example.com');
    assert.equal(normalizeDomainName('bücher.example'), 'xn--bcher-kva.example');
    assert.equal(normalizeDomainName('.'), '');
  });
});
