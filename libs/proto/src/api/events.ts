// REST shapes of the block-event history: the query filters (zod, so a bad
// filter is a 400 naming the field), the pages, aggregates, runs and replay.
import { z } from 'zod';
import { int32, IsoTime, MAX_TIME_MS, MIN_TIME_MS, timeInRange } from './common';

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

/** An ISO 8601 time (no duration) in the years 1 to 9999. */
export function parseIsoTime(text: string): Date | undefined {
  return ISO.test(text) ? parseTimeInRange(text) : undefined;
}

/** parseTimeParam, and only times in the years 1 to 9999 (what PostgreSQL and ISO 8601 both write). */
export function parseTimeInRange(text: string, now = Date.now()): Date | undefined {
  const d = parseTimeParam(text, now);
  return d !== undefined && timeInRange(d) ? d : undefined;
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

const CURSOR = /^(-?\d{1,19})\|([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$/;

/** The `next` of an events page: (time in microseconds since the epoch, id) as opaque base64url. */
export function encodeEventsCursor(timeUs: string, id: string): string {
  return Buffer.from(`${timeUs}|${id}`, 'utf8').toString('base64url');
}

/** The cursor's parts, or undefined when it is not one the server wrote (or its time is outside years 1–9999). */
export function decodeEventsCursor(cursor: string): { timeUs: string; id: string } | undefined {
  if (!/^[A-Za-z0-9_-]{8,200}$/.test(cursor)) return undefined;
  const m = CURSOR.exec(Buffer.from(cursor, 'base64url').toString('utf8'));
  if (!m) return undefined;
  const us = BigInt(m[1]!);
  if (us < BigInt(MIN_TIME_MS) * 1000n || us > BigInt(MAX_TIME_MS) * 1000n) return undefined;
  return { timeUs: m[1]!, id: m[2]! };
}

const time = (field: string) =>
  z.string().transform((s, ctx) => {
    const d = parseTimeParam(s);
    if (!d) {
      ctx.addIssue({ code: 'custom', message: `${field} must be an ISO 8601 time or a duration back from now (30m, 24h, 7d), got "${s}"` });
      return z.NEVER;
    }
    if (!timeInRange(d)) {
      ctx.addIssue({ code: 'custom', message: `${field} must be between the years 1 and 9999, got "${s}"` });
      return z.NEVER;
    }
    return d;
  });

/** Query-string numbers: the server's edge turns `?limit=10` into the number 10 before this schema sees it. */
const wholeNumber = (max = 2 ** 31 - 1) => z.number().int().min(0).max(max);

/** Repeatable `key=value` query parameters (all must match), as [key, value] pairs. */
export const labelPairs = z.array(z.string().max(500)).max(20).transform((pairs, ctx) => {
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
    after: z
      .string()
      .refine((c) => decodeEventsCursor(c) !== undefined, 'must be the opaque cursor (`next`) of a previous page')
      .optional(),
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

/**
 * `GET /events/summary`: what the History page draws above its table, in one
 * request: the time-bucket chart (counts by action) and the top-N panels
 * (domains, hosts, commands, one label key).
 */
export const EventsSummaryQuery = z
  .object({
    ...EventFilterShape,
    /** The chart's bucket; default hour. */
    bucket: z.enum(AGGREGATE_BUCKETS).optional(),
    /** Rows per top-N panel (1-100, default 10). */
    top: wholeNumber(100).refine((n) => n >= 1, 'must be at least 1').optional(),
    /** The label key of the label panel (default job). */
    labelKey: z.string().regex(/^[A-Za-z0-9_.\-/]{1,100}$/, 'must be a label key (letters, digits, _ . - /, up to 100)').optional(),
  })
  .strict()
  .superRefine(ordered);
export type EventsSummaryQuery = z.infer<typeof EventsSummaryQuery>;

/** The most runs one `GET /runs` returns. */
export const MAX_RUNS_PAGE = 1000;

/** `GET /runs`: runs whose summary the agents sent (finished runs), newest first. */
export const RunsQuery = z
  .object({
    /** Runs started since (ISO time or a duration back from now); default 24h. */
    since: time('since').optional(),
    host: shortText.optional(),
    cohort: shortText.optional(),
    label: labelPairs.optional(),
    limit: wholeNumber(MAX_RUNS_PAGE).refine((n) => n >= 1, 'must be at least 1').optional(),
  })
  .strict();
export type RunsQuery = z.infer<typeof RunsQuery>;

export const ReplayRequest = z
  .object({
    version: int32(1),
    /** Runs that started since: ISO time or a duration back from now ("7d"), years 1 to 9999. */
    since: z
      .string()
      .max(100)
      .refine((s) => parseTimeInRange(s) !== undefined, 'must be an ISO 8601 time (years 1 to 9999) or a duration back from now (7d)'),
  })
  .strict();
export type ReplayRequest = z.infer<typeof ReplayRequest>;

export const BlockEventViewSchema = z.object({
  id: z.string(),
  time: IsoTime,
  host: z.string(),
  cohort: z.string().nullable(),
  runId: z.string().nullable(),
  labels: z.record(z.string(), z.string()),
  pid: z.number().int().nullable(),
  comm: z.string().nullable(),
  cmdline: z.string().nullable(),
  uid: z.number().int().nullable(),
  cgroupId: z.string().nullable(),
  qname: z.string().nullable(),
  qtype: z.string().nullable(),
  entry: z.string().nullable(),
  /** The listed name an allowed qname's answer chain (CNAME/DNAME) led to; null when qname itself was listed. */
  cnameTarget: z.string().nullable(),
  action: z.enum(EVENT_ACTIONS),
  method: z.enum(EVENT_METHODS),
  policyVersion: z.string().nullable(),
  blocklist: z.string().nullable(),
  version: z.number().int().nullable(),
  policyHash: z.string().nullable(),
  destination: z.string().nullable(),
  message: z.string().nullable(),
  receivedAt: IsoTime,
});
export type BlockEventView = z.infer<typeof BlockEventViewSchema>;

export const EventsPageSchema = z.object({
  events: z.array(BlockEventViewSchema),
  /** Pass as `after` for the next (older) page; null on the last page. */
  next: z.string().nullable(),
});
export type EventsPage = z.infer<typeof EventsPageSchema>;

export const AggregateRowSchema = z.object({
  /** Start of the bucket (ISO), or null without `bucket`. */
  bucket: IsoTime.nullable(),
  key: z.string().nullable(),
  count: z.number().int(),
});
export type AggregateRow = z.infer<typeof AggregateRowSchema>;

export const AggregateViewSchema = z.object({
  by: z.string(),
  // A union, not .nullable(): OpenAPI 3.0 needs null among an enum's values for a null to be valid.
  bucket: z.union([z.enum(AGGREGATE_BUCKETS), z.null()]),
  rows: z.array(AggregateRowSchema),
  /**
   * null: exact counts. Otherwise the counts are estimates: the filter matches
   * more events than the server counts one by one (CGFENCE_EVENTS_AGGREGATE_EXACT_ROWS),
   * so it read `percent` % of the range's pages and scaled what matched
   * (`rows` events) by 100 / percent.
   */
  sampled: z.object({ percent: z.number(), rows: z.number().int() }).nullable(),
});
export type AggregateView = z.infer<typeof AggregateViewSchema>;

export const EventsSummaryViewSchema = z.object({
  /** Counts by action per bucket. */
  series: AggregateViewSchema,
  top: z.object({ domain: AggregateViewSchema, host: AggregateViewSchema, command: AggregateViewSchema, label: AggregateViewSchema }),
});
export type EventsSummaryView = z.infer<typeof EventsSummaryViewSchema>;

export const RunDomainViewSchema = z.object({
  name: z.string(),
  queries: z.number().int(),
  blocked: z.number().int(),
  firstSeen: IsoTime,
  lastSeen: IsoTime,
});
export type RunDomainView = z.infer<typeof RunDomainViewSchema>;

/** What a run's page and a line of the runs list both say about a run. */
const RunBaseSchema = z.object({
  runId: z.string(),
  host: z.string(),
  cohort: z.string().nullable(),
  labels: z.record(z.string(), z.string()),
  command: z.string().nullable(),
  startedAt: IsoTime,
  endedAt: IsoTime.nullable(),
  exitCode: z.number().int().nullable(),
  signal: z.string().nullable(),
});

export const RunViewSchema = RunBaseSchema.extend({
  policyVersion: z.string().nullable(),
  /** Names past the agent's per-run limit: counted, not listed. */
  overflow: z.number().int(),
  events: z.object({ total: z.number().int(), blocked: z.number().int(), audited: z.number().int(), alert: z.number().int() }),
  latest: z.array(BlockEventViewSchema),
  domains: z.array(RunDomainViewSchema),
});
export type RunView = z.infer<typeof RunViewSchema>;

/** One line of `GET /runs`. */
export const RunListItemSchema = RunBaseSchema.extend({
  /** endedAt - startedAt; null while no end is known. */
  durationMs: z.number().int().nullable(),
  /** Block events of the run with action "blocked" (audited would-blocks are counted apart). */
  blocks: z.number().int(),
  audited: z.number().int(),
  /** Distinct names the run resolved, including those past the agent's per-run limit. */
  domains: z.number().int(),
  /** Whom the command ran as; null from older agents. */
  uid: z.number().int().nullable(),
  user: z.string().nullable(),
});
export type RunListItem = z.infer<typeof RunListItemSchema>;

export const RunsPageSchema = z.object({
  since: IsoTime,
  runs: z.array(RunListItemSchema),
});
export type RunsPage = z.infer<typeof RunsPageSchema>;

export const ReplayViewSchema = z.object({
  blocklist: z.string(),
  version: z.number().int(),
  since: IsoTime,
  runsExamined: z.number().int(),
  /** Runs with at least one name the version blocks. */
  runs: z.array(
    z.object({
      runId: z.string(),
      host: z.string(),
      startedAt: IsoTime,
      domains: z.array(z.object({ name: z.string(), queries: z.number().int(), entry: z.string() })),
    }),
  ),
  hosts: z.array(z.object({ host: z.string(), runs: z.number().int(), domains: z.array(z.string()) })),
  domains: z.array(z.object({ name: z.string(), entry: z.string(), runs: z.number().int(), hosts: z.number().int() })),
  /**
   * Per owner (the findings owner label of the runs): the findings the
   * version would create (existing: null) or add to (existing: its state).
   */
  owners: z
    .array(
      z.object({
        ownerKey: z.string(),
        owner: z.string(),
        team: z.string().nullable(),
        newFindings: z.number().int(),
        findings: z.array(z.object({ id: z.string(), entry: z.string(), existing: z.string().nullable(), runs: z.number().int(), hosts: z.number().int() })),
      }),
    )
    .optional(),
});
export type ReplayView = z.infer<typeof ReplayViewSchema>;
