import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { canonicalDomain, canonicalWildcard } from './domain';

function accepted(result: ReturnType<typeof canonicalDomain>): string {
  assert.ok(result.ok, `expected success, got ${result.ok ? '' : result.reason}`);
  return result.value;
}

function refusal(result: ReturnType<typeof canonicalDomain>): string {
  assert.ok(!result.ok, `expected a refusal, got ${result.ok ? result.value : ''}`);
  return result.reason;
}

/** A name of exactly `length` octets: 63-octet labels, then a shorter last one. */
function nameOfLength(length: number): string {
  const labels: string[] = [];
  let left = length;
  let letter = 97;
  while (left > 64) {
    labels.push(String.fromCharCode(letter++).repeat(63));
    left -= 64;
  }
  labels.push(String.fromCharCode(letter).repeat(left));
  const name = labels.join('.');
  assert.equal(name.length, length);
  return name;
}

describe(canonicalDomain.name, () => {
  const sut = canonicalDomain;

  it('folds case and drops one trailing dot', () => {
    assert.equal(accepted(sut('GitHub.COM')), 'github.com');
    assert.equal(accepted(sut('github.com.')), 'github.com');
    assert.match(refusal(sut('github.com..')), /empty label/);
  });

  it('turns internationalised names into A-labels', () => {
    assert.equal(accepted(sut('bücher.example')), 'xn--bcher-kva.example');
    assert.equal(accepted(sut('BÜCHER.Example.')), 'xn--bcher-kva.example');
    assert.equal(accepted(sut('xn--bcher-kva.example')), 'xn--bcher-kva.example');
    // non-transitional processing: ß is its own letter, not "ss"
    assert.equal(accepted(sut('straße.de')), 'xn--strae-oqa.de');
    // ideographic full stops separate labels
    assert.equal(accepted(sut('bücher。example')), 'xn--bcher-kva.example');
  });

  it('refuses invalid punycode and invalid Unicode labels', () => {
    assert.match(refusal(sut('xn--zz.example')), /label "xn--zz" is not valid punycode/);
    assert.match(refusal(sut('a\u200db.example')), /not a valid internationalised \(IDNA\) label/);
  });

  it('allows a single-label name', () => {
    assert.equal(accepted(sut('localhost')), 'localhost');
  });

  it('allows underscores, as in _dmarc and _acme-challenge', () => {
    assert.equal(accepted(sut('_dmarc.example.com')), '_dmarc.example.com');
    assert.equal(accepted(sut('_acme-challenge.Example.com')), '_acme-challenge.example.com');
  });

  it('allows hyphens inside a label but not at its ends', () => {
    assert.equal(accepted(sut('my-host.example')), 'my-host.example');
    assert.equal(accepted(sut('ab--cd.example')), 'ab--cd.example');
    assert.equal(refusal(sut('-bad.example')), 'label "-bad" starts with a hyphen');
    assert.equal(refusal(sut('bad-.example')), 'label "bad-" ends with a hyphen');
    assert.equal(refusal(sut('a.-')), 'label "-" starts with a hyphen');
  });

  it('names the invalid character and its label', () => {
    assert.equal(refusal(sut('a!b.example')), 'invalid character "!" in label "a!b"');
    assert.equal(refusal(sut('a%41.example')), 'invalid character "%" in label "a%41"');
    assert.equal(refusal(sut('bü!cher.example')), 'invalid character "!" in label "bü!cher"');
  });

  it('refuses empty labels and an empty name', () => {
    assert.equal(refusal(sut('a..b')), 'empty label');
    assert.equal(refusal(sut('.example')), 'empty label');
    assert.equal(refusal(sut('')), 'empty name');
    assert.equal(refusal(sut('.')), 'empty name');
  });

  it('accepts a 63-octet label and refuses a 64-octet one', () => {
    assert.equal(accepted(sut(`${'a'.repeat(63)}.example`)), `${'a'.repeat(63)}.example`);
    assert.match(refusal(sut(`${'a'.repeat(64)}.example`)), /^label longer than 63 characters \(64\)/);
  });

  it('measures labels after IDNA conversion', () => {
    const label = '日本語のドメイン名は長くなりがちですよね本当に困ったものだ';
    assert.ok(label.length < 63);
    assert.match(refusal(sut(`${label}.example`)), /^label longer than 63 characters \(\d+\): "xn--/);
  });

  it('accepts a 253-octet name and refuses a 254-octet one', () => {
    assert.equal(accepted(sut(nameOfLength(253))), nameOfLength(253));
    assert.equal(accepted(sut(`${nameOfLength(253)}.`)), nameOfLength(253));
    assert.equal(refusal(sut(nameOfLength(254))), 'name longer than 253 characters (254)');
  });

  it('refuses an all-digit last label', () => {
    assert.match(refusal(sut('example.123')), /last label "123" is all digits/);
    assert.equal(accepted(sut('123.example')), '123.example');
  });
});

describe(canonicalWildcard.name, () => {
  const sut = canonicalWildcard;

  it('canonicalises the domain after "*."', () => {
    assert.equal(accepted(sut('*.GitHubUserContent.com.')), '*.githubusercontent.com');
    assert.equal(accepted(sut('*.bücher.example')), '*.xn--bcher-kva.example');
  });

  it('requires the "*" to be the whole leftmost label', () => {
    const whole = 'wildcard must be the whole leftmost label ("*.example.com")';
    assert.equal(refusal(sut('*foo.com')), whole);
    assert.equal(refusal(sut('foo*.com')), whole);
    assert.equal(refusal(sut('**.com')), whole);
  });

  it('refuses a "*" anywhere but the leftmost label', () => {
    const only = 'wildcard "*" may appear only as the leftmost label ("*.example.com")';
    assert.equal(refusal(sut('a.*.com')), only);
    assert.equal(refusal(sut('*.*.com')), only);
    assert.equal(refusal(sut('*.a*b.com')), only);
    assert.equal(refusal(sut('example.*')), only);
  });

  it('refuses a wildcard without a domain', () => {
    for (const text of ['*', '*.', '*..']) {
      assert.equal(refusal(sut(text)), 'wildcard needs a domain after "*." ("*.example.com")', text);
    }
  });

  it('checks the domain part like any domain', () => {
    assert.equal(refusal(sut('*.-bad.com')), 'label "-bad" starts with a hyphen');
  });

  it('counts the "*." against the 253-octet limit', () => {
    assert.equal(accepted(sut(`*.${nameOfLength(251)}`)), `*.${nameOfLength(251)}`);
    assert.equal(refusal(sut(`*.${nameOfLength(252)}`)), 'name longer than 253 characters (254)');
  });
});
