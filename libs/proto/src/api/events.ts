// REST shapes of the block-event history: the query filters (zod, so a bad
// filter is a 400 naming the field), the pages, aggregates, runs and replay.
import { z } from 'zod';

export const EVENT_ACTIONS = ['blocked', 'audited', 'alert'] as const;
export const EVENT_METHODS = ['dns', 'ip'] as const;
export const AGGREGATE_BUCKETS = ['minute', 'hour', 'day'] as const;
export const EXPORT_FORMATS = ['json', 'ndjson', 'csv'] as const;
export const MAX_PAGE = 1000;

const DURATION = /^(\d{1,6})(s|m|h|d|w)$/;
const UNIT_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };
const ISO = /^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}(:?\d{2})?)?)?$/;

/** An ISO 8601 time, or a duration back from `now` ("30m", "24h", "7d", "2w"). */
export function parseTimeParam(text: string, now = Date.now()): Date | undefined {
  const d = DURATION.exec(text);
  if (d) return new Date(now - Number(d[1]) * UNIT_MS[d[2]!]!);
  if (!ISO.test(text)) return undefined;
  const ms = Date.parse(text);
  return Number.isFinite(ms) ? new Date(ms) : undefined;
}

const LABEL = /^[a-z0-9_-]{1,63}$/;

/** `example.com` (that name only) or `*.example.com` (every name under it, on label boundaries, not the apex). */
export type DomainFilter = { kind: 'exact'; name: string } | { kind: 'suffix'; suffix: string };

export function parseDomainFilter(text: string): DomainFilter | undefined {
  let t = text.trim().toLowerCase();
  if (t.endsWith('.')) t = t.slice(0, -1);
  const wildcard = t.startsWith('*.');
  if (wildcard) t = t.slice(2);
  if (t === '' || t.length > 253 || !t.split('.').every((l) => LABEL.test(l))) return undefined;
  return wildcard ? { kind: 'suffix', suffix: t } : { kind: 'exact', name: t };
}

/** `a.github.com` → `com.github.a`: names under one domain become one prefix range. */
export function reverseLabels(name: string): string {
  return name.split('.').reverse().join('.');
}

const time = (field: string) =>
  z.string().transform((s, ctx) => {
    const d = parseTimeParam(s);
    if (!d) {
      ctx.addIssue({ code: 'custom', message: `${field} must be an ISO 8601 time or a duration back from now (30m, 24h, 7d), got "${s}"` });
      return z.NEVER;
    }
    return d;
  });

const wholeNumber = (max = 2 ** 31 - 1) =>
  z
    .string()
    .regex(/^\d{1,10}$/, 'must be a whole number')
    .transform(Number)
    .refine((n) => n <= max, `must be at most ${max}`);

const oneOrMany = z.union([z.string(), z.array(z.string())]).transform((v) => (Array.isArray(v) ? v : [v]));

const labelPairs = oneOrMany.transform((pairs, ctx) => {
  const out: [string, string][] = [];
  for (const p of pairs) {
    const eq = p.indexOf('=');
    if (eq < 1) {
      ctx.addIssue({ code: 'custom', message: `label must be key=value, got "${p}"` });
      return z.NEVER;
    }
    out.push([p.slice(0, eq), p.slice(eq + 1)]);
  }
  return out;
});

const domain = z.string().transform((s, ctx) => {
  const f = parseDomainFilter(s);
  if (!f) {
    ctx.addIssue({ code: 'custom', message: `domain must be a name (example.com) or *.suffix (*.example.com), got "${s}"` });
    return z.NEVER;
  }
  return f;
});

const shortText = z.string().min(1).max(500);

/** The filters every event query takes (query-string values, so strings). */
export const EventFilterShape = {
  from: time('from').optional(),
  to: time('to').optional(),
  host: shortText.optional(),
  cohort: shortText.optional(),
  run: shortText.optional(),
  label: labelPairs.optional(),
  domain: domain.optional(),
  pid: wholeNumber().optional(),
  cmd: shortText.optional(),
  action: z.enum(EVENT_ACTIONS).optional(),
  method: z.enum(EVENT_METHODS).optional(),
  blocklist: shortText.optional(),
  version: wholeNumber().optional(),
};

const ordered = (v: { from?: Date; to?: Date }, ctx: z.RefinementCtx): void => {
  if (v.from && v.to && v.from.getTime() > v.to.getTime()) {
    ctx.addIssue({ code: 'custom', path: ['from'], message: `from (${v.from.toISOString()}) is after to (${v.to.toISOString()})` });
  }
};

export const EventsQuery = z
  .object({
    ...EventFilterShape,
    limit: wholeNumber(MAX_PAGE).refine((n) => n >= 1, 'must be at least 1').optional(),
    /** The `next` of the previous page. */
    after: z.string().regex(/^[A-Za-z0-9_-]{8,200}$/, 'must be the opaque cursor of a previous page').optional(),
    /** json: one page; ndjson/csv: the whole result set, streamed. */
    format: z.enum(EXPORT_FORMATS).optional(),
  })
  .strict()
  .superRefine(ordered);
export type EventsQuery = z.infer<typeof EventsQuery>;
export type EventFilter = Omit<EventsQuery, 'limit' | 'after' | 'format'>;

/** `domain`, `host`, `cohort`, `version`, `command`, or `label:<key>`. */
export const AGGREGATE_BY = /^(domain|host|cohort|version|command|action|label:[A-Za-z0-9_.\-/]{1,100})$/;

export const EventsAggregateQuery = z
  .object({
    ...EventFilterShape,
    by: z.string().regex(AGGREGATE_BY, 'must be domain, host, cohort, version, command, action or label:<key>'),
    bucket: z.enum(AGGREGATE_BUCKETS).optional(),
    limit: wholeNumber(100_000).refine((n) => n >= 1, 'must be at least 1').optional(),
  })
  .strict()
  .superRefine(ordered);
export type EventsAggregateQuery = z.infer<typeof EventsAggregateQuery>;

export const ReplayRequest = z
  .object({
    version: z.number().int().positive(),
    /** Runs that started since: ISO time or a duration back from now ("7d"). */
    since: z.string().refine((s) => parseTimeParam(s) !== undefined, 'must be an ISO 8601 time or a duration back from now (7d)'),
  })
  .strict();
export type ReplayRequest = z.infer<typeof ReplayRequest>;

export interface BlockEventView {
  id: string;
  time: string;
  host: string;
  cohort: string | null;
  runId: string | null;
  labels: Record<string, string>;
  pid: number | null;
  comm: string | null;
  cmdline: string | null;
  uid: number | null;
  cgroupId: string | null;
  qname: string | null;
  qtype: string | null;
  entry: string | null;
  action: (typeof EVENT_ACTIONS)[number];
  method: (typeof EVENT_METHODS)[number];
  policyVersion: string | null;
  blocklist: string | null;
  version: number | null;
  policyHash: string | null;
  destination: string | null;
  message: string | null;
  receivedAt: string;
}

export interface EventsPage {
  events: BlockEventView[];
  /** Pass as `after` for the next (older) page; null on the last page. */
  next: string | null;
}

export interface AggregateRow {
  /** Start of the bucket (ISO), or null without `bucket`. */
  bucket: string | null;
  key: string | null;
  count: number;
}

export interface AggregateView {
  by: string;
  bucket: (typeof AGGREGATE_BUCKETS)[number] | null;
  rows: AggregateRow[];
}

export interface RunDomainView {
  name: string;
  queries: number;
  blocked: number;
  firstSeen: string;
  lastSeen: string;
}

export interface RunView {
  runId: string;
  host: string;
  cohort: string | null;
  labels: Record<string, string>;
  command: string | null;
  startedAt: string;
  endedAt: string | null;
  exitCode: number | null;
  signal: string | null;
  policyVersion: string | null;
  /** Names past the agent's per-run limit: counted, not listed. */
  overflow: number;
  events: { total: number; blocked: number; audited: number; alert: number };
  latest: BlockEventView[];
  domains: RunDomainView[];
}

export interface ReplayView {
  blocklist: string;
  version: number;
  since: string;
  runsExamined: number;
  /** Runs with at least one name the version blocks. */
  runs: { runId: string; host: string; startedAt: string; domains: { name: string; queries: number; entry: string }[] }[];
  hosts: { host: string; runs: number; domains: string[] }[];
  domains: { name: string; entry: string; runs: number; hosts: number }[];
  /**
   * Per owner (the findings owner label of the runs): the findings the
   * version would create (existing: null) or add to (existing: its state).
   */
  owners?: {
    ownerKey: string;
    owner: string;
    team: string | null;
    newFindings: number;
    findings: { id: string; entry: string; existing: string | null; runs: number; hosts: number }[];
  }[];
}
