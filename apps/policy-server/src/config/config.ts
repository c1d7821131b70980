import { z } from 'zod';

/**
 * Everything the server reads from its environment, validated once at boot.
 * A bad value stops the process with a message naming the variable.
 */
const SPAN = /^\d{1,6}(s|m|h|d)$/;
const SPAN_MS = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
const spanMs = (t: string): number => Number(t.slice(0, -1)) * SPAN_MS[t.slice(-1) as keyof typeof SPAN_MS];

const Schema = z.object({
  CGFENCE_DATABASE_URL: z.string().regex(/^postgres(ql)?:\/\//, 'must be a postgres:// URL'),
  CGFENCE_HTTP_HOST: z.string().default('127.0.0.1'),
  CGFENCE_HTTP_PORT: z.coerce.number().int().min(0).max(65535).default(28080),
  CGFENCE_STATE_DIR: z.string().min(1).default('/var/lib/cgfence-server'),
  CGFENCE_LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** Create a bootstrap admin token (written to STATE_DIR/admin-token) when no token exists yet. */
  CGFENCE_BOOTSTRAP_ADMIN: z.enum(['true', 'false']).default('true').transform((v) => v === 'true'),
  /** Largest request body of every route but the version commit. */
  CGFENCE_MAX_BODY: z.string().regex(/^\d+(kb|mb)$/, 'like 64kb').default('1mb'),
  /** Largest body of a version commit (a 1,000,000-entry list is about 30 MB as JSON, 20 MB as text). */
  CGFENCE_MAX_COMMIT_BODY: z.string().regex(/^\d+(kb|mb)$/, 'like 64mb').default('64mb'),
  /** Worker threads for big blocklist work (commits, diffs, versions); 0 runs it on the event loop. */
  CGFENCE_CONTENTS_THREADS: z.coerce.number().int().min(0).max(16).default(2),
  /**
   * Jobs that may wait for a contents thread beyond those running; one more is
   * answered 503 server.busy with Retry-After. Each waiting commit holds its
   * body (up to CGFENCE_MAX_COMMIT_BODY), so this bounds that memory too.
   */
  CGFENCE_CONTENTS_QUEUE: z.coerce.number().int().min(0).max(1000).default(8),
  /** NATS the agents are reached through; without it the fleet endpoints work but nothing is published. */
  CGFENCE_NATS_URL: z.string().regex(/^(nats|tls):\/\//, 'must be a nats:// URL').optional(),
  /** The server's nkey seed file (cgfence nats init); without it the server connects without credentials. */
  CGFENCE_NATS_SEED: z.string().min(1).optional(),
  /** The server's NATS creds file (JWT authorization: cgfence nats init-jwt writes server.creds). Not with CGFENCE_NATS_SEED. */
  CGFENCE_NATS_CREDS: z.string().min(1).optional(),
  /** PEM CA the NATS servers' certificates must chain to; set, every NATS connection uses TLS. */
  CGFENCE_NATS_CA: z.string().min(1).optional(),
  /** The JWT directory (cgfence nats init-jwt): with it the server enrolls hosts (issues user JWTs) and revokes them. */
  CGFENCE_NATS_JWT_DIR: z.string().min(1).optional(),
  /** NATS URLs handed to enrolling hosts (comma-separated); default CGFENCE_NATS_URL. */
  CGFENCE_NATS_ADVERTISE: z.string().regex(/^(nats|tls):\/\/[^,]+(,(nats|tls):\/\/[^,]+)*$/, 'comma-separated nats:// or tls:// URLs').optional(),
  /** JetStream stream replicas: 1-5, or "auto" (3 when the NATS server is in a cluster of 3 or more, else 1). */
  CGFENCE_JETSTREAM_REPLICAS: z.union([z.literal('auto'), z.coerce.number().int().min(1).max(5)]).default('auto'),
  /** Serve the API over HTTPS with this certificate (PEM) and CGFENCE_TLS_KEY. */
  CGFENCE_TLS_CERT: z.string().min(1).optional(),
  CGFENCE_TLS_KEY: z.string().min(1).optional(),
  /** Ed25519 key that signs bundles; created on first start. Default STATE_DIR/signing-key.pem. */
  CGFENCE_SIGNING_KEY_FILE: z.string().min(1).optional(),
  /** How long a signed bundle or desired-state document stays valid. */
  CGFENCE_BUNDLE_TTL_HOURS: z.coerce.number().positive().default(168),
  /** A host silent for longer than this shows as stale. */
  CGFENCE_HOST_STALE_SECONDS: z.coerce.number().int().positive().default(60),
  /** Days of block events kept in PostgreSQL; older daily partitions are dropped. */
  CGFENCE_EVENTS_RETENTION_DAYS: z.coerce.number().int().min(1).max(3650).default(30),
  /** Ingest block events from JetStream (set false on a replica that should only serve the API). */
  CGFENCE_EVENTS_INGEST: z.enum(['true', 'false']).default('true').transform((v) => v === 'true'),
  /**
   * GET /events/aggregate off the hourly rollup: counted exactly when the
   * planner expects at most this many matching events, else estimated from a
   * sample of the range (docs/operations.md, "History aggregates").
   */
  CGFENCE_EVENTS_AGGREGATE_EXACT_ROWS: z.coerce.number().int().min(0).max(100_000_000).default(20_000),
  /** How many of the range's events a sampled aggregate reads (TABLESAMPLE SYSTEM, whole pages). */
  CGFENCE_EVENTS_AGGREGATE_SAMPLE_ROWS: z.coerce.number().int().min(1_000).max(10_000_000).default(20_000),
  /** An exact aggregate still running after this long (a misestimate) is cancelled and answered from the sample. */
  CGFENCE_EVENTS_AGGREGATE_EXACT_MS: z.coerce.number().int().min(10).max(600_000).default(2_000),
  /** The built dashboard served at / (default: apps/dashboard/dist beside this server's build). */
  CGFENCE_DASHBOARD_DIR: z.string().min(1).optional(),
  /** Make findings from ingested blocks (false: the history only). */
  CGFENCE_FINDINGS: z.enum(['true', 'false']).default('true').transform((v) => v === 'true'),
  /** The run label whose value owns a finding. */
  CGFENCE_FINDINGS_OWNER_LABEL: z.string().regex(/^[A-Za-z0-9_.-]{1,63}$/, 'a label key like service').default('service'),
  /** A finding with no occurrence for this long resolves by itself. */
  CGFENCE_FINDINGS_QUIET: z.string().regex(SPAN, 'a span like 14d or 12h').default('14d'),
  /** A finding marked fixed resolves after this long without an occurrence. */
  CGFENCE_FINDINGS_FIX_QUIET: z.string().regex(SPAN, 'a span like 1d or 30m').default('1d'),
  /** How long before an accepted finding's acceptance expires its owner is warned (finding.accepted-expiring, once per acceptance); 0s: never. */
  CGFENCE_FINDINGS_EXPIRY_WARNING: z.string().regex(SPAN, 'a span like 3d or 12h').default('3d'),
  /** After a feed pass, wait this long so occurrences gather: at most one update per finding per interval. */
  CGFENCE_FINDINGS_FEED_MS: z.coerce.number().int().min(0).max(10_000).default(1000),
  /** How often quiet periods and acceptance expiries are checked. */
  CGFENCE_FINDINGS_TICK_MS: z.coerce.number().int().min(50).max(3_600_000).default(60_000),
  /** A webhook that does not answer within this fails the attempt. */
  CGFENCE_WEBHOOK_TIMEOUT_MS: z.coerce.number().int().min(100).max(60_000).default(5000),
  /** Attempts before a delivery goes to the dead-letter list. */
  CGFENCE_WEBHOOK_MAX_ATTEMPTS: z.coerce.number().int().min(1).max(100).default(12),
  /** Wait after the first failure; doubles each time, at most an hour. */
  CGFENCE_WEBHOOK_BACKOFF_MS: z.coerce.number().int().min(10).max(3_600_000).default(2000),
  /** How often due deliveries are looked for. */
  CGFENCE_WEBHOOK_POLL_MS: z.coerce.number().int().min(20).max(60_000).default(1000),
});

export type ServerConfig = Readonly<{
  databaseUrl: string;
  httpHost: string;
  httpPort: number;
  stateDir: string;
  logLevel: z.infer<typeof Schema>['CGFENCE_LOG_LEVEL'];
  bootstrapAdmin: boolean;
  maxBody: string;
  maxCommitBody: string;
  contentsThreads: number;
  contentsQueue: number;
  natsUrl: string | undefined;
  natsSeedFile: string | undefined;
  natsCredsFile: string | undefined;
  natsCaFile: string | undefined;
  natsJwtDir: string | undefined;
  natsAdvertise: string[];
  jetstreamReplicas: number | 'auto';
  tls: { certFile: string; keyFile: string } | undefined;
  signingKeyFile: string;
  bundleTtlMs: number;
  hostStaleMs: number;
  eventsRetentionDays: number;
  eventsIngest: boolean;
  eventsAggregate: { exactRows: number; sampleRows: number; exactMs: number };
  /** The built dashboard's folder; unset: the default next to the server's build. */
  dashboardDir?: string;
  findings: boolean;
  findingsOwnerLabel: string;
  findingsQuietMs: number;
  findingsFixQuietMs: number;
  findingsTickMs: number;
  findingsExpiryWarningMs: number;
  findingsFeedMs: number;
  webhookTimeoutMs: number;
  webhookMaxAttempts: number;
  webhookBackoffMs: number;
  webhookPollMs: number;
}>;

export class ConfigError extends Error {}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): ServerConfig {
  const parsed = Schema.safeParse(env);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${i.path.join('.')}: ${i.message}`);
    throw new ConfigError(`invalid configuration:\n${lines.join('\n')}`);
  }
  const e = parsed.data;
  const problems: string[] = [];
  if (e.CGFENCE_NATS_SEED !== undefined && e.CGFENCE_NATS_CREDS !== undefined) problems.push('  CGFENCE_NATS_CREDS: give CGFENCE_NATS_SEED (nkey) or CGFENCE_NATS_CREDS (JWT), not both');
  if ((e.CGFENCE_TLS_CERT === undefined) !== (e.CGFENCE_TLS_KEY === undefined)) problems.push('  CGFENCE_TLS_KEY: CGFENCE_TLS_CERT and CGFENCE_TLS_KEY go together');
  if (problems.length > 0) throw new ConfigError(`invalid configuration:\n${problems.join('\n')}`);
  const advertise = e.CGFENCE_NATS_ADVERTISE ?? e.CGFENCE_NATS_URL;
  return {
    databaseUrl: e.CGFENCE_DATABASE_URL,
    httpHost: e.CGFENCE_HTTP_HOST,
    httpPort: e.CGFENCE_HTTP_PORT,
    stateDir: e.CGFENCE_STATE_DIR,
    logLevel: e.CGFENCE_LOG_LEVEL,
    bootstrapAdmin: e.CGFENCE_BOOTSTRAP_ADMIN,
    maxBody: e.CGFENCE_MAX_BODY,
    maxCommitBody: e.CGFENCE_MAX_COMMIT_BODY,
    contentsThreads: e.CGFENCE_CONTENTS_THREADS,
    contentsQueue: e.CGFENCE_CONTENTS_QUEUE,
    natsUrl: e.CGFENCE_NATS_URL,
    natsSeedFile: e.CGFENCE_NATS_SEED,
    natsCredsFile: e.CGFENCE_NATS_CREDS,
    natsCaFile: e.CGFENCE_NATS_CA,
    natsJwtDir: e.CGFENCE_NATS_JWT_DIR,
    natsAdvertise: advertise ? advertise.split(',').map((u) => u.trim()) : [],
    jetstreamReplicas: e.CGFENCE_JETSTREAM_REPLICAS,
    tls: e.CGFENCE_TLS_CERT && e.CGFENCE_TLS_KEY ? { certFile: e.CGFENCE_TLS_CERT, keyFile: e.CGFENCE_TLS_KEY } : undefined,
    signingKeyFile: e.CGFENCE_SIGNING_KEY_FILE ?? `${e.CGFENCE_STATE_DIR}/signing-key.pem`,
    bundleTtlMs: e.CGFENCE_BUNDLE_TTL_HOURS * 3_600_000,
    hostStaleMs: e.CGFENCE_HOST_STALE_SECONDS * 1000,
    eventsRetentionDays: e.CGFENCE_EVENTS_RETENTION_DAYS,
    eventsIngest: e.CGFENCE_EVENTS_INGEST,
    eventsAggregate: { exactRows: e.CGFENCE_EVENTS_AGGREGATE_EXACT_ROWS, sampleRows: e.CGFENCE_EVENTS_AGGREGATE_SAMPLE_ROWS, exactMs: e.CGFENCE_EVENTS_AGGREGATE_EXACT_MS },
    dashboardDir: e.CGFENCE_DASHBOARD_DIR,
    findings: e.CGFENCE_FINDINGS,
    findingsOwnerLabel: e.CGFENCE_FINDINGS_OWNER_LABEL,
    findingsQuietMs: spanMs(e.CGFENCE_FINDINGS_QUIET),
    findingsFixQuietMs: spanMs(e.CGFENCE_FINDINGS_FIX_QUIET),
    findingsTickMs: e.CGFENCE_FINDINGS_TICK_MS,
    findingsExpiryWarningMs: spanMs(e.CGFENCE_FINDINGS_EXPIRY_WARNING),
    findingsFeedMs: e.CGFENCE_FINDINGS_FEED_MS,
    webhookTimeoutMs: e.CGFENCE_WEBHOOK_TIMEOUT_MS,
    webhookMaxAttempts: e.CGFENCE_WEBHOOK_MAX_ATTEMPTS,
    webhookBackoffMs: e.CGFENCE_WEBHOOK_BACKOFF_MS,
    webhookPollMs: e.CGFENCE_WEBHOOK_POLL_MS,
  };
}

/** Injection token for the validated configuration. */
export const SERVER_CONFIG = Symbol('SERVER_CONFIG');
