// Shared pieces of the REST contract: the error body every 4xx carries, the
// number ranges the PostgreSQL columns hold, and the time range a query may
// name. The policy server validates every request against these schemas at
// its edge, and its OpenAPI document is generated from them.
import { z } from 'zod';

/** Largest value of a PostgreSQL `integer` column (versions, revisions, stages, pids). */
export const INT32_MAX = 2 ** 31 - 1;

/** A whole number a PostgreSQL `integer` column holds, from `min`. */
export const int32 = (min = 0) => z.number().int().min(min).max(INT32_MAX);

/** A blocklist version number (1 and up, a PostgreSQL `integer`). */
export const VersionNumber = int32(1);

/** Times a query may name: years 1 to 9999 (what ISO 8601 and PostgreSQL both write the same way). */
export const MIN_TIME_MS = new Date('0001-01-01T00:00:00.000Z').getTime();
export const MAX_TIME_MS = Date.UTC(9999, 11, 31, 23, 59, 59, 999);

export function timeInRange(d: Date): boolean {
  const ms = d.getTime();
  return Number.isFinite(ms) && ms >= MIN_TIME_MS && ms <= MAX_TIME_MS;
}

/**
 * Every error code the REST API answers with (the `code` of the error body).
 * docs/architecture.md ("Error codes") says which status each one comes with.
 */
export const ERROR_CODES = [
  'validation.failed',
  'entries.invalid',
  'entries.too_many',
  'request.malformed',
  'request.too_large',
  'request.unsupported_media_type',
  'request.method_not_allowed',
  'route.not_found',
  'blocklist.not_found',
  'blocklist.already_exists',
  'version.not_found',
  'version.conflict',
  'stream.conflict',
  'token.not_found',
  'fleet.rollback_required',
  'host.not_found',
  'rollout.not_found',
  'run.not_found',
  'rollout.invalid_plan',
  'rollout.active_exists',
  'rollout.state_conflict',
  'rollout.stage_moved',
  'live.too_many_streams',
  'finding.not_found',
  'finding.state_conflict',
  'owner.not_found',
  'delivery.not_found',
  'auth.missing_token',
  'auth.invalid_token',
  'auth.forbidden',
  'enroll.token_refused',
  'enroll.token_not_found',
  'enroll.host_exists',
  'enroll.key_revoked',
  'enroll.not_configured',
  'nats.unavailable',
  'server.busy',
  'internal',
] as const;
export type ApiErrorCode = (typeof ERROR_CODES)[number];

/** One problem with a request: the field (`query.limit`, `body.entries.3`, `path.name`) and why. */
export const ProblemSchema = z.object({ field: z.string(), reason: z.string() });
export type Problem = z.infer<typeof ProblemSchema>;

/** Shape of every error body the server returns. */
export const ErrorBodySchema = z.object({
  statusCode: z.number().int().min(400).max(599),
  code: z.enum(ERROR_CODES),
  message: z.string(),
  correlationId: z.string().min(1),
  details: z.unknown().optional(),
});
export type ErrorBody = Omit<z.infer<typeof ErrorBodySchema>, 'code'> & { code: string };

/**
 * The last record of an ndjson/csv export that failed after its headers were
 * sent (a client that does not see it got the whole result set):
 * ndjson: `{"error":{"code":"internal","message":...,"correlationId":...}}`;
 * csv: a line `#error,<code>,<correlation id>,<message>`.
 */
export const ExportErrorRecordSchema = z.object({
  error: z.object({ code: z.enum(ERROR_CODES), message: z.string(), correlationId: z.string() }),
});
export type ExportErrorRecord = z.infer<typeof ExportErrorRecordSchema>;

/** An ISO 8601 time as the server writes it. */
export const IsoTime = z.string();

/** Path parameters: `:name` of a blocklist, `:id` of a token, host, rollout or run. */
export const NameParams = z.object({ name: z.string().min(1).max(200) }).strict();
export const IdParams = z.object({ id: z.string().min(1).max(200) }).strict();
