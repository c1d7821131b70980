// Secrets taken out of command lines before they leave the host (the agent's
// journal, block log and shipped events) and before the server keeps them as
// findings' examples. Pure: no I/O, shared by the agent and the server.
//
// Every built-in pattern is linear on its input (no nested or overlapping
// quantifiers); the agent's command lines are already cut to 4096 bytes.

/** What stands in place of a secret. */
export const REDACTED = '[REDACTED]';
/** Most extra patterns (`--redact-pattern`) an agent takes. */
export const MAX_REDACT_PATTERNS = 16;
/** Longest extra pattern source, in characters. */
export const MAX_REDACT_PATTERN_LENGTH = 256;
/** Longest text redacted; anything past it is dropped and marked (callers cut earlier; this is the backstop). */
export const MAX_REDACT_INPUT = 8192;

interface Rule {
  readonly re: RegExp;
  /** Replacement for one match: groups are kept, the secret becomes REDACTED. */
  readonly to: string;
}

const FLAG_WORDS = 'password|passwd|pass|token|secret|api[-_]?key|access[-_]?key|secret[-_]?key|private[-_]?key|client[-_]?secret|credentials?|auth';
const KEY_WORDS = 'password|passwd|secret|token|api_?key|access_?key|private_?key|credentials?';

const RULES: readonly Rule[] = [
  // scheme://user:password@host: the user stays, the password goes (greedy to the last @ before the path).
  { re: /\b([a-z][a-z0-9+.-]{0,30}:\/\/[^\s:/@]{0,256}:)[^\s/]{1,512}@/gi, to: `$1${REDACTED}@` },
  // Header values: Authorization: [scheme] value, and the usual token headers.
  {
    re: /\b((?:proxy-)?authorization\s*:\s*(?:(?:bearer|basic|token|digest|bot)\s+)?|(?:private-token|x-api-key|x-auth-token|x-access-token)\s*:\s*)[^\s"']+/gi,
    to: `$1${REDACTED}`,
  },
  { re: /\b(bearer\s+)(?!\[REDACTED\])[^\s"']+/gi, to: `$1${REDACTED}` },
  // --password=x, --api-key x, --db-password x (a following option is not a value).
  { re: new RegExp(`(^|\\s)(--?(?:[a-z0-9]+[-_])*(?:${FLAG_WORDS})(?:=|\\s+))(?!-)(?!\\[REDACTED\\])[^\\s]+`, 'gi'), to: `$1$2${REDACTED}` },
  // KEY=value: DB_PASSWORD=x, aws_secret_access_key=x, ?access_token=x in a URL.
  { re: new RegExp(`(?<![\\w-])((?:[a-z0-9]+_)*(?:${KEY_WORDS})(?:_[a-z0-9]+)*\\s?[=:]\\s?)(?!\\[REDACTED\\])[^\\s&"']+`, 'gi'), to: `$1${REDACTED}` },
  // Token shapes, wherever they stand.
  { re: /\bgh[pousr]_[A-Za-z0-9]{20,255}\b/g, to: REDACTED },
  { re: /\bgithub_pat_[A-Za-z0-9_]{20,255}/g, to: REDACTED },
  { re: /\bglpat-[A-Za-z0-9_-]{20,255}/g, to: REDACTED },
  { re: /\b(?:AKIA|ASIA)[A-Z0-9]{16}\b/g, to: REDACTED },
  { re: /\bxox[abprs]-[A-Za-z0-9-]{10,255}/g, to: REDACTED },
  { re: /\beyJ[A-Za-z0-9_-]{4,4096}\.[A-Za-z0-9_-]{4,4096}\.[A-Za-z0-9_-]{0,4096}/g, to: REDACTED },
];

/**
 * Options whose meaning depends on the program: `-p` is a password to mysql
 * and sshpass but a port to ssh and "parents" to mkdir, so these are read
 * from the words of the command line, with the program each word belongs to
 * (the last program word since the start or a `;`, `|`, `&&`, `||`, `&`).
 * `attached`: the secret written against the flag (`-pSECRET`);
 * `separate`: the secret is the next word (`-p SECRET`); `userPass`: the
 * value is user:password and only the password goes.
 */
interface ProgramOptions {
  readonly program: RegExp;
  /** A word that must come after the program before these options mean a secret (docker `login`). */
  readonly after?: string;
  readonly attached: readonly string[];
  readonly separate: readonly string[];
  readonly userPass?: boolean;
  /** A wrapper (sshpass): its options end at the first word that is not one; the wrapped program's follow. */
  readonly wraps?: boolean;
}

const PROGRAM_OPTIONS: readonly ProgramOptions[] = [
  // mysql -pSECRET (a separate word after -p is the database, and mysql prompts).
  { program: /^(?:mysql[a-z_-]{0,20}|mariadb[a-z_-]{0,20})$/, attached: ['-p'], separate: [] },
  { program: /^sshpass$/, attached: ['-p'], separate: ['-p'], wraps: true },
  { program: /^(?:redis-cli|valkey-cli|keydb-cli)$/, attached: ['-a'], separate: ['-a'] },
  { program: /^(?:docker|podman|nerdctl|buildah|skopeo)$/, after: 'login', attached: ['-p'], separate: ['-p'] },
  // curl -u user:pass, --user user:pass, --proxy-user user:pass (a bare user makes curl prompt: kept).
  { program: /^curl$/, attached: ['-u', '-U', '--user=', '--proxy-user='], separate: ['-u', '-U', '--user', '--proxy-user'], userPass: true },
];

const SEGMENT_END = new Set([';', '|', '||', '&&', '&']);
/** A command line naming none of PROGRAM_OPTIONS' programs skips the word pass (one linear scan): their names, unanchored. */
const ANY_PROGRAM = new RegExp(PROGRAM_OPTIONS.map((p) => p.program.source.replace(/^\^|\$$/g, '')).join('|'));

/** The program a word names, if it is one of PROGRAM_OPTIONS' (`/usr/bin/mysql`, `"mysql`, `(mysql`). */
function programOf(word: string): ProgramOptions | undefined {
  const first = word.charCodeAt(0);
  const bare = first === 0x22 || first === 0x27 || first === 0x28 ? word.replace(/^["'(]+/, '') : word;
  const base = bare.slice(bare.lastIndexOf('/') + 1);
  return base.length > 0 && base.length <= 40 ? PROGRAM_OPTIONS.find((p) => p.program.test(base)) : undefined;
}

function secretPart(value: string, userPass: boolean | undefined): string | undefined {
  if (value.length === 0 || value === REDACTED) return undefined;
  if (!userPass) return value;
  const colon = value.indexOf(':');
  // user:password; user alone, or uid:gid digits, is not a secret.
  if (colon < 0 || colon === value.length - 1 || /^\d+$/.test(value.slice(colon + 1))) return undefined;
  return value.slice(colon + 1);
}

/** One pass over the words (linear): program-specific password options. */
function redactProgramOptions(text: string): string {
  if (!ANY_PROGRAM.test(text)) return text;
  const parts = text.split(/(\s+)/);
  let current: ProgramOptions | undefined;
  let armed = false;
  let next: ProgramOptions | undefined;
  for (let i = 0; i < parts.length; i += 2) {
    const word = parts[i]!;
    // `deploy@h;` ends a command too.
    const ends = SEGMENT_END.has(word) || /[;|&]$/.test(word);
    if (next !== undefined) {
      const secret = secretPart(word, next.userPass);
      if (secret !== undefined && !word.startsWith('-')) parts[i] = word.slice(0, word.length - secret.length) + REDACTED;
      next = undefined;
      if (ends) current = undefined;
      continue;
    }
    if (ends) {
      current = undefined;
      continue;
    }
    const program = programOf(word);
    if (program !== undefined) {
      current = program;
      armed = program.after === undefined;
      continue;
    }
    if (current === undefined) continue;
    if (!armed) {
      if (word === current.after) armed = true;
      continue;
    }
    if (current.separate.includes(word)) {
      next = current;
      continue;
    }
    const flag = current.attached.find((f) => word.startsWith(f) && word.length > f.length);
    if (flag !== undefined) {
      const secret = secretPart(word.slice(flag.length), current.userPass);
      if (secret !== undefined) parts[i] = word.slice(0, word.length - secret.length) + REDACTED;
    } else if (current.wraps === true && !word.startsWith('-')) {
      current = undefined;
    }
  }
  return parts.join('');
}

export interface Redaction {
  readonly text: string;
  /** True when anything was taken out. */
  readonly redacted: boolean;
}

/** An extra pattern that cannot be used; the message names it and why. */
export class RedactPatternError extends Error {}

// (x+)+, (x*)*, (x+)*, (x|y+){2,}: a quantified group holding a quantifier, the classic catastrophic shape.
const NESTED_QUANTIFIER = /\((?:[^()\\]|\\.)*[+*}](?:[^()\\]|\\.)*\)\s*(?:[+*]|\{\d*,)/;

/**
 * Compiles `--redact-pattern` sources (JavaScript regular expressions, case
 * sensitive): at most MAX_REDACT_PATTERNS, each at most
 * MAX_REDACT_PATTERN_LENGTH long, valid, not matching the empty string, and
 * without a quantified group that itself holds a quantifier ((a+)+), the
 * usual shape of catastrophic backtracking. Throws RedactPatternError naming
 * the pattern.
 */
export function compileRedactPatterns(sources: readonly string[]): RegExp[] {
  if (sources.length > MAX_REDACT_PATTERNS) throw new RedactPatternError(`at most ${MAX_REDACT_PATTERNS} redact patterns, got ${sources.length}`);
  return sources.map((src) => {
    const name = JSON.stringify(src);
    if (src.length === 0) throw new RedactPatternError('redact pattern is empty');
    if (src.length > MAX_REDACT_PATTERN_LENGTH) throw new RedactPatternError(`redact pattern ${name.slice(0, 60)}… is longer than ${MAX_REDACT_PATTERN_LENGTH} characters`);
    let re: RegExp;
    try {
      re = new RegExp(src, 'g');
    } catch (err) {
      throw new RedactPatternError(`redact pattern ${name} is not a valid regular expression: ${(err as Error).message}`);
    }
    if (NESTED_QUANTIFIER.test(src)) throw new RedactPatternError(`redact pattern ${name} has a quantified group holding a quantifier (catastrophic backtracking); rewrite it without nesting`);
    if (new RegExp(src).test('')) throw new RedactPatternError(`redact pattern ${name} matches the empty string`);
    return re;
  });
}

/**
 * `text` with every secret the built-in shapes (and `extra`, whole match)
 * find replaced by REDACTED: credentials in URLs, Authorization/Bearer header
 * values, --password/--token/--secret/--api-key style options (=value and
 * separate value), KEY=value pairs whose key says secret, GitHub, GitLab,
 * AWS access key id, Slack tokens and JWTs; and program-specific password
 * options (mysql `-pX`, sshpass `-p X`, redis-cli `-a X`, docker/podman
 * login `-p X`, curl `-u user:X`).
 */
export function redactSecrets(text: string, extra: readonly RegExp[] = []): Redaction {
  const input = text.length > MAX_REDACT_INPUT ? `${text.slice(0, MAX_REDACT_INPUT)} …[cut]` : text;
  let s = input;
  for (const r of RULES) {
    r.re.lastIndex = 0;
    s = s.replace(r.re, r.to);
  }
  s = redactProgramOptions(s);
  for (const re of extra) {
    re.lastIndex = 0;
    s = s.replace(re, REDACTED);
  }
  return { text: s, redacted: s !== input };
}

/**
 * A redactor for one agent: redactSecrets with its extra patterns, remembering
 * the last results (a process flooding listed names sends the same command
 * line each time).
 */
export class CommandRedactor {
  private readonly cache = new Map<string, Redaction>();
  private static readonly CACHE_MAX = 256;

  constructor(private readonly extra: readonly RegExp[] = []) {}

  redact(text: string): Redaction {
    const hit = this.cache.get(text);
    if (hit) return hit;
    const r = redactSecrets(text, this.extra);
    if (this.cache.size >= CommandRedactor.CACHE_MAX) this.cache.clear();
    this.cache.set(text, r);
    return r;
  }
}
