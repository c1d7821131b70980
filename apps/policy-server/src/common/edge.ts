// The request edge: reads and checks path parameters, query and body against
// the route's contract before the handler runs (and after the auth guard, so
// no body is read for a caller without a valid token). Pure functions here,
// the NestJS interceptor in edge.interceptor.ts.
import { ZodObject, ZodType } from 'zod';
import type { Problem } from '@cgfence/proto';
import { inputSchemaOf } from './contract';

/** A string the server refuses anywhere in a request: NUL, or UTF-16 that is not well formed (an unpaired surrogate). */
export function badStringReason(s: string): string | undefined {
  if (s.includes('\u0000')) return 'must not contain a NUL character';
  if (/\p{Cs}/u.test(s)) return 'must not contain an unpaired surrogate (not valid Unicode)';
  return undefined;
}

/** Every refused string in a parsed value, with its field path (`entries.3.value`); object keys are checked too. */
export function badStrings(value: unknown, field: string, out: Problem[] = [], depth = 0): Problem[] {
  if (out.length >= 20) return out;
  if (typeof value === 'string') {
    const reason = badStringReason(value);
    if (reason) out.push({ field, reason });
  } else if (Array.isArray(value)) {
    if (depth > 64) out.push({ field, reason: 'nested too deeply' });
    else value.forEach((v, i) => badStrings(v, `${field}.${i}`, out, depth + 1));
  } else if (typeof value === 'object' && value !== null) {
    if (depth > 64) out.push({ field, reason: 'nested too deeply' });
    else
      for (const [k, v] of Object.entries(value)) {
        const keyReason = badStringReason(k);
        if (keyReason) out.push({ field: `${field}.${JSON.stringify(k)}`, reason: `key ${keyReason}` });
        else badStrings(v, `${field}.${k}`, out, depth + 1);
      }
  }
  return out;
}

/** How many values each query parameter of a schema takes: arrays repeat, the rest must be given once. */
export interface QueryShape {
  fields: Map<string, { type: string | undefined; itemType: string | undefined }>;
}

export function queryShapeOf(schema: ZodObject | undefined): QueryShape {
  const fields = new Map<string, { type: string | undefined; itemType: string | undefined }>();
  for (const [name, field] of Object.entries(schema?.shape ?? {})) {
    const js = inputSchemaOf(field as ZodType);
    fields.set(name, { type: js.type, itemType: js.items?.type });
  }
  return { fields };
}

const INTEGER = /^-?\d{1,16}$/;
const NUMBER = /^-?\d{1,16}(\.\d{1,16})?$/;

/** Why a query or path value is not of its schema's type. */
export class NotOfType {
  constructor(readonly reason: string) {}
}

/** A query-string or path value as the type its schema wants (numbers, booleans); the schema then checks ranges. */
export function convert(raw: string, type: string | undefined): unknown {
  if (type === 'integer') return INTEGER.test(raw) ? Number(raw) : new NotOfType(`must be a whole number, got ${JSON.stringify(raw.slice(0, 40))}`);
  if (type === 'number') return NUMBER.test(raw) ? Number(raw) : new NotOfType(`must be a number, got ${JSON.stringify(raw.slice(0, 40))}`);
  if (type === 'boolean') {
    if (raw === 'true' || raw === '1' || raw === '') return true;
    if (raw === 'false' || raw === '0') return false;
    return new NotOfType(`must be true or false, got ${JSON.stringify(raw.slice(0, 40))}`);
  }
  return raw;
}

/** Values that did not convert, as problems (and removed from `value`). */
export function typeProblems(value: Record<string, unknown>): Problem[] {
  const out: Problem[] = [];
  for (const [k, v] of Object.entries(value)) {
    const bad = Array.isArray(v) ? v.find((x) => x instanceof NotOfType) : v;
    if (bad instanceof NotOfType) {
      out.push({ field: k, reason: bad.reason });
      delete value[k];
    }
  }
  return out;
}

/** The most query parameters a request may carry. */
export const MAX_QUERY_PARAMS = 100;

/**
 * Parses a raw query string (after `?`) for a route: percent-encoding must
 * decode to valid UTF-8, a parameter given twice is refused unless its schema
 * is an array, `a[b]=` nesting is refused, and numbers/booleans are converted
 * by the schema's declared type. Unknown names are kept for the schema to
 * refuse by name.
 */
export function parseQuery(raw: string, shape: QueryShape): { value: Record<string, unknown>; problems: Problem[] } {
  const problems: Problem[] = [];
  const seen = new Map<string, string[]>();
  const parts = raw === '' ? [] : raw.split('&');
  if (parts.length > MAX_QUERY_PARAMS) {
    return { value: {}, problems: [{ field: '(query)', reason: `at most ${MAX_QUERY_PARAMS} query parameters` }] };
  }
  for (const part of parts) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    const rawName = eq < 0 ? part : part.slice(0, eq);
    const rawValue = eq < 0 ? '' : part.slice(eq + 1);
    let name: string;
    let value: string;
    try {
      name = decodeURIComponent(rawName.replace(/\+/g, ' '));
    } catch {
      problems.push({ field: '(query)', reason: `a parameter name is not valid UTF-8 percent-encoding: ${rawName.slice(0, 100)}` });
      continue;
    }
    try {
      value = decodeURIComponent(rawValue.replace(/\+/g, ' '));
    } catch {
      problems.push({ field: name, reason: 'is not valid UTF-8 percent-encoding' });
      continue;
    }
    if (/[[\]]/.test(name)) {
      problems.push({ field: name, reason: 'nested query parameters (name[key]=...) are not accepted' });
      continue;
    }
    const list = seen.get(name);
    if (list) list.push(value);
    else seen.set(name, [value]);
  }
  const value: Record<string, unknown> = {};
  for (const [name, values] of seen) {
    const field = shape.fields.get(name);
    if (field?.type === 'array') {
      value[name] = values.map((v) => convert(v, field.itemType));
    } else if (values.length > 1) {
      problems.push({ field: name, reason: `given ${values.length} times; give it once` });
    } else {
      value[name] = convert(values[0]!, field?.type);
    }
  }
  return { value, problems };
}

/** zod issues as problems naming each field (unknown keys one by one). */
export function problemsOf(issues: readonly { code: string; path: PropertyKey[]; message: string; keys?: string[] }[], root: string): Problem[] {
  return issues.flatMap((i) =>
    i.code === 'unrecognized_keys' && i.keys
      ? i.keys.map((k) => ({ field: [...i.path.map(String), k].join('.'), reason: root === '(query)' ? 'unknown query parameter' : 'unknown field' }))
      : [{ field: i.path.length > 0 ? i.path.map(String).join('.') : root, reason: i.message }],
  );
}

/**
 * A body handed over unread (a route whose contract says `offThread`): its
 * bytes as they came, with their media type. The route's service checks them
 * (UTF-8, strings, the schema: checkJsonText for JSON) on a worker thread.
 */
export class RawBody {
  constructor(
    readonly media: 'json' | 'text',
    readonly bytes: Buffer,
  ) {}
}

/** What the edge says about a body: the same message and problems whether it runs on the event loop or a worker. */
export type BodyCheck<T> = { ok: true; data: T } | { ok: false; code: 'request.malformed' | 'validation.failed'; message: string; problems: Problem[] };

/** Checks a parsed JSON body: strings (NUL, unpaired surrogates), then the schema. */
export function checkJsonBody<T>(value: unknown, schema: ZodType<T>): BodyCheck<T> {
  const bad = badStrings(value, '(body)').map((p) => ({ ...p, field: p.field.replace(/^\(body\)\./, '') }));
  if (bad.length > 0) return { ok: false, code: 'validation.failed', message: invalidMessage('request', bad), problems: bad };
  const r = schema.safeParse(value);
  if (r.success) return { ok: true, data: r.data };
  const problems = problemsOf(r.error.issues, '(body)');
  return { ok: false, code: 'validation.failed', message: invalidMessage('request body', problems), problems };
}

/** Parses and checks a JSON body given as text (JSON.parse errors as request.malformed, like the body parser's). */
export function checkJsonText<T>(text: string, schema: ZodType<T>): BodyCheck<T> {
  let value: unknown;
  try {
    value = JSON.parse(text) as unknown;
  } catch (err) {
    return { ok: false, code: 'request.malformed', message: `the request body is not valid JSON: ${(err as Error).message}`, problems: [] };
  }
  return checkJsonBody(value, schema);
}

export function invalidMessage(what: string, problems: Problem[]): string {
  return `invalid ${what}: ${problems.map((p) => `${p.field}: ${p.reason}`).join('; ')}`;
}

/** `application/json; charset=utf-8` → `application/json` and its charset. */
export function mediaTypeOf(header: string | undefined): { type: string; charset: string | undefined } | undefined {
  if (!header) return undefined;
  const [type, ...params] = header.split(';');
  const charset = params
    .map((p) => p.trim().toLowerCase())
    .find((p) => p.startsWith('charset='))
    ?.slice(8)
    .replace(/^"|"$/g, '');
  return { type: type!.trim().toLowerCase(), charset };
}
