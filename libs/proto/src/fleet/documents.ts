// What the server signs and the agents verify: bundle headers (one blocklist
// version, its content hash and size) and the desired-state document (which
// bundle each host enforces, audit overrides, explicit rollback orders).
// Every document travels as a SignedDocument: the exact JSON text that was
// signed, the id of the key, and an Ed25519 signature over that text.
import { z } from 'zod';

export const BUNDLE_KIND = 'cgfence.bundle/v1';
export const DESIRED_KIND = 'cgfence.desired/v1';

/** Chunk size of bundle content fetched over NATS (raw bytes; sent as base64 under NATS's 1 MiB default). */
export const BUNDLE_CHUNK_BYTES = 512 * 1024;
/** Encoded content up to this size travels inside the broadcast itself (no fetch). */
export const INLINE_CONTENT_BYTES = 64 * 1024;

export const SignedDocumentSchema = z.object({
  payload: z.string(),
  keyId: z.string(),
  signature: z.string(),
});
export type SignedDocument = z.infer<typeof SignedDocumentSchema>;

export const BundleHeaderSchema = z.object({
  kind: z.literal(BUNDLE_KIND),
  blocklistId: z.string(),
  name: z.string(),
  version: z.number().int().positive(),
  /** 'sha256:<hex>' of the canonical text, exactly the bytes the chunks carry. */
  hash: z.string().regex(/^sha256:[0-9a-f]{64}$/),
  entries: z.number().int().nonnegative(),
  /** Size of the canonical text. */
  bytes: z.number().int().nonnegative(),
  /** How the content travels (inline and in chunks): gzip, decoded before the hash check. */
  encoding: z.enum(['identity', 'gzip']),
  /** Size of the encoded content that the chunks carry. */
  transferBytes: z.number().int().nonnegative(),
  chunkBytes: z.number().int().positive(),
  /** ceil(transferBytes / chunkBytes) */
  chunks: z.number().int().nonnegative(),
  issuedAt: z.string(),
  expiresAt: z.string(),
});
export type BundleHeader = z.infer<typeof BundleHeaderSchema>;

export const AuditDirectiveSchema = z.object({
  /** Kill switch: every host audits instead of enforcing. */
  fleet: z.boolean(),
  /** Cohorts that audit instead of enforcing. */
  cohorts: z.array(z.string()),
});
export type AuditDirective = z.infer<typeof AuditDirectiveSchema>;

export const RollbackOrderSchema = z.object({ blocklistId: z.string(), toVersion: z.number().int().positive() });
export type RollbackOrder = z.infer<typeof RollbackOrderSchema>;

/**
 * A bundle for the hosts a selector names (a staged rollout's stages). A host
 * is selected when it is listed in `hosts`, or its cohort is in `cohorts`, or
 * — when `labels` and/or `bucketBelow` are given — all those labels match and
 * its bucket (see bucketOf) is below `bucketBelow`.
 */
export const AssignmentSchema = z.object({
  hosts: z.array(z.string()).optional(),
  cohorts: z.array(z.string()).optional(),
  labels: z.record(z.string(), z.string()).optional(),
  /** Percent (0–100]: hosts whose bucketOf(hostId) is below it. */
  bucketBelow: z.number().gt(0).max(100).optional(),
  /** Hosts these selectors take are not selected (a share "of the hosts earlier stages did not take"). */
  unless: z.array(z.object({ labels: z.record(z.string(), z.string()).optional(), bucketBelow: z.number().gt(0).max(100).optional() })).optional(),
  /** The rollout stage this assignment is, for status output and gates. */
  stage: z.object({ rollout: z.string(), index: z.number().int().nonnegative() }).optional(),
  bundle: SignedDocumentSchema,
  mode: z.enum(['audit', 'enforce']).optional(),
  /** Why this assignment exists, for status output ('rollout r1 stage 2'). */
  reason: z.string().optional(),
});
export type Assignment = z.infer<typeof AssignmentSchema>;

export const DesiredDocumentSchema = z.object({
  kind: z.literal(DESIRED_KIND),
  /** Grows by one with every change of the fleet's desired state. */
  revision: z.number().int().nonnegative(),
  issuedAt: z.string(),
  expiresAt: z.string(),
  /** The bundle every host enforces unless an assignment names it; null: none assigned yet. */
  baseline: SignedDocumentSchema.nullable(),
  /** Evaluated in order; the first that selects a host wins over the baseline. */
  assignments: z.array(AssignmentSchema),
  audit: AuditDirectiveSchema,
  /** The server's explicit order to go back to an older version. */
  rollback: RollbackOrderSchema.nullable(),
});
export type DesiredDocument = z.infer<typeof DesiredDocumentSchema>;

/** The broadcast message: the signed document plus, for small bundles, their content (checked against the signed hash). */
export const DesiredMessageSchema = z.object({
  desired: SignedDocumentSchema,
  /** base64 of the encoded content (see BundleHeader.encoding), by bundle hash. */
  inline: z.record(z.string(), z.string()).default({}),
});
export type DesiredMessage = z.infer<typeof DesiredMessageSchema>;

// ---- agent ↔ server requests ----

export const HostInfoSchema = z.object({
  hostId: z.string(),
  hostname: z.string(),
  labels: z.record(z.string(), z.string()),
  kernel: z.string(),
  agentVersion: z.string(),
  capabilities: z.array(z.string()),
});
export type HostInfo = z.infer<typeof HostInfoSchema>;

export const AppliedSchema = z.object({
  revision: z.number().int().nonnegative(),
  blocklistId: z.string(),
  name: z.string(),
  version: z.number().int().positive(),
  hash: z.string(),
  appliedAt: z.string(),
});
export type Applied = z.infer<typeof AppliedSchema>;

export const ApplyErrorSchema = z.object({
  revision: z.number().int().nonnegative().nullable(),
  reason: z.string(),
  message: z.string(),
  at: z.string(),
});
export type ApplyError = z.infer<typeof ApplyErrorSchema>;

export const HostReportSchema = z.object({
  hostId: z.string(),
  /** The last desired revision the agent acted on (applied, or rejected). */
  seenRevision: z.number().int().nonnegative().nullable(),
  applied: AppliedSchema.nullable(),
  lastError: ApplyErrorSchema.nullable(),
  mode: z.enum(['enforce', 'audit']),
  failMode: z.enum(['open', 'closed']),
  health: z.object({ proxy: z.boolean(), kernel: z.boolean(), detail: z.string().optional() }),
  /** The kernel's maps no longer hold what the agent applied. */
  drift: z.object({ drifted: z.boolean(), detail: z.string().optional(), checkedAt: z.string() }).nullable(),
  labels: z.record(z.string(), z.string()).optional(),
  /** Block events (blocked or audited, DNS and IP) since the agent started: the block-rate gate's input. */
  blocks: z.number().int().nonnegative().optional(),
  /** The agent's event spool (issue 6): events not yet acked by JetStream, and those dropped because it was full. */
  spool: z.object({ pending: z.number().int().nonnegative(), dropped: z.number().int().nonnegative() }).optional(),
  sentAt: z.string(),
});
export type HostReport = z.infer<typeof HostReportSchema>;

export const RegisterReplySchema = z.object({ message: DesiredMessageSchema.nullable() });
export type RegisterReply = z.infer<typeof RegisterReplySchema>;

export const SyncRequestSchema = z.object({
  hostId: z.string(),
  seenRevision: z.number().int().nonnegative().nullable(),
  /**
   * JWT authorization (issue 17): the host's NATS user key and the key that signed its JWT. When that is not the
   * account's current signing key (a rotation is under way), the reply carries a JWT for the same user key signed by it.
   */
  nats: z.object({ user: z.string().max(64), issuer: z.string().max(64) }).optional(),
});
export type SyncRequest = z.infer<typeof SyncRequestSchema>;
/** null: nothing newer than seenRevision (or nothing assigned at all). */
export const SyncReplySchema = z.object({
  message: DesiredMessageSchema.nullable(),
  revision: z.number().int().nonnegative(),
  /** A renewed NATS user JWT for the key in the request's `nats.user` (the host writes it to its creds file). */
  natsJwt: z.string().max(8192).optional(),
});
export type SyncReply = z.infer<typeof SyncReplySchema>;

export const ChunkRequestSchema = z.object({ hash: z.string(), index: z.number().int().nonnegative() });
export type ChunkRequest = z.infer<typeof ChunkRequestSchema>;
/** data: base64 of one slice of the encoded content. */
export const ChunkReplySchema = z.object({ hash: z.string(), index: z.number().int().nonnegative(), data: z.string() });
export type ChunkReply = z.infer<typeof ChunkReplySchema>;
