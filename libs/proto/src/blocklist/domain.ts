import { domainToASCII } from 'node:url';

/**
 * Host names and wildcards in blocklist entries.
 *
 * A domain entry is compared the way DNS compares names: case-insensitively,
 * with the trailing root dot optional, and with internationalised names in
 * their A-label (punycode) form, which is what appears on the wire. So
 * 'GitHub.com.', 'github.com' and 'GITHUB.COM' are one entry, and
 * 'bücher.example' is 'xn--bcher-kva.example'. Unicode is converted with
 * node's own UTS #46 / IDNA implementation (url.domainToASCII, non-transitional:
 * 'ß' stays 'ß' and becomes 'xn--zca'); our own checks run before and after it.
 *
 * Rules (octets of the A-label form):
 * - labels are 1-63 octets of a-z, 0-9, '-' and '_', and do not start or end
 *   with '-'. The underscore is allowed anywhere: names like '_dmarc.example.com'
 *   and '_acme-challenge.example.com' are looked up every day and resolvers
 *   answer them, so a blocklist must be able to name them.
 * - labels starting 'xn--' must be valid punycode.
 * - the whole name is at most 253 octets (without the trailing dot).
 * - single-label names ('localhost', 'intranet') are allowed.
 * - the last label is not all digits: no top-level domain is numeric, and
 *   '10.0.1' is a mistyped address, not a host name.
 *
 * A wildcard is '*.' followed by a domain: the '*' is the whole leftmost label
 * and appears nowhere else. '*.example.com' matches strict subdomains of
 * example.com on label boundaries: 'a.example.com' and 'a.b.example.com', but
 * neither 'example.com' itself (list it as its own entry) nor
 * 'notexample.com'. Matching lives with the DNS proxy; this module only
 * defines the grammar.
 */

export const MAX_NAME_LENGTH = 253;
export const MAX_LABEL_LENGTH = 63;

export type NameResult = { ok: true; value: string } | { ok: false; reason: string };

const NON_ASCII = /[\u0080-\uffff]/;
/** Full stops that UTS #46 treats as label separators. */
const IDEOGRAPHIC_DOTS = /[\u3002\uff0e\uff61]/g;
/** An ASCII character that may not appear in a label, in any case. */
const BAD_ASCII = /[^a-zA-Z0-9_\-\u0080-\uffff]/;
const NOT_LABEL_CHAR = /[^a-z0-9_-]/;
const DIGITS = /^[0-9]+$/;

const WHOLE_LEFTMOST = 'wildcard must be the whole leftmost label ("*.example.com")';
const ONLY_LEFTMOST = 'wildcard "*" may appear only as the leftmost label ("*.example.com")';
const NEEDS_DOMAIN = 'wildcard needs a domain after "*." ("*.example.com")';

function q(text: string): string {
  return JSON.stringify(text.length > 48 ? `${text.slice(0, 45)}...` : text);
}

function fail(reason: string): NameResult {
  return { ok: false, reason };
}

function idnaReason(labels: readonly string[]): string {
  for (const label of labels) {
    if (NON_ASCII.test(label) && domainToASCII(label) === '') {
      return `label ${q(label)} is not a valid internationalised (IDNA) label`;
    }
  }
  return 'not a valid internationalised (IDNA) domain name';
}

/**
 * Canonicalises a host name: lower case, no trailing dot, A-labels.
 * `reserved` octets are counted against the 253-octet limit on top of the name
 * itself (2 for the '*.' of a wildcard).
 */
export function canonicalDomain(input: string, reserved = 0): NameResult {
  const ascii = !NON_ASCII.test(input);
  let name = ascii ? input.toLowerCase() : input.replace(IDEOGRAPHIC_DOTS, '.');
  if (name.endsWith('.')) name = name.slice(0, -1);
  if (name === '') return fail('empty name');

  // First pass, on the text as given, so a reason quotes what the user wrote.
  const given = name.split('.');
  for (const label of given) {
    if (label === '') return fail('empty label');
    const bad = BAD_ASCII.exec(label);
    if (bad) return fail(`invalid character ${q(bad[0])} in label ${q(label)}`);
  }

  let labels = given;
  if (!ascii) {
    const converted = domainToASCII(name);
    if (converted === '') return fail(idnaReason(given));
    labels = converted.split('.');
  }

  // Second pass, on the A-labels: what goes on the wire is what must fit.
  for (const label of labels) {
    if (label === '') return fail('empty label');
    if (label.length > MAX_LABEL_LENGTH) {
      return fail(`label longer than ${MAX_LABEL_LENGTH} characters (${label.length}): ${q(label)}`);
    }
    if (label.startsWith('-')) return fail(`label ${q(label)} starts with a hyphen`);
    if (label.endsWith('-')) return fail(`label ${q(label)} ends with a hyphen`);
    const bad = NOT_LABEL_CHAR.exec(label);
    if (bad) return fail(`invalid character ${q(bad[0])} in label ${q(label)}`);
    if (ascii && label.startsWith('xn--') && domainToASCII(label) === '') {
      return fail(`label ${q(label)} is not valid punycode (IDNA)`);
    }
  }
  const last = labels[labels.length - 1];
  if (DIGITS.test(last)) {
    return fail(`last label ${q(last)} is all digits: a top-level domain is never numeric (an IPv4 address has 4 octets)`);
  }

  const value = labels.join('.');
  if (value.length + reserved > MAX_NAME_LENGTH) {
    return fail(`name longer than ${MAX_NAME_LENGTH} characters (${value.length + reserved})`);
  }
  return { ok: true, value };
}

/** Canonicalises a wildcard '*.domain'; the domain part follows canonicalDomain. */
export function canonicalWildcard(input: string): NameResult {
  const text = NON_ASCII.test(input) ? input.replace(IDEOGRAPHIC_DOTS, '.') : input;
  if (text === '*' || text === '*.') return fail(NEEDS_DOMAIN);
  if (!text.startsWith('*.')) {
    const firstLabel = text.split('.', 1)[0];
    return fail(firstLabel.includes('*') ? WHOLE_LEFTMOST : ONLY_LEFTMOST);
  }
  const rest = text.slice(2);
  if (rest.includes('*')) return fail(ONLY_LEFTMOST);
  if (rest === '.') return fail(NEEDS_DOMAIN);
  const domain = canonicalDomain(rest, 2);
  return domain.ok ? { ok: true, value: `*.${domain.value}` } : domain;
}
