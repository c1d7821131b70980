import { z } from 'zod';
import { int32, IsoTime } from './common';

/**
 * REST contract of the policy server's blocklist resources: request bodies are
 * validated with these schemas on the server, and the CLI builds its requests
 * from the same types. The OpenAPI document is generated from them too.
 */

export const BLOCKLIST_NAME = /^[a-z0-9][a-z0-9._-]{0,62}$/;

export const CreateBlocklistRequest = z
  .object({
    name: z
      .string()
      .regex(BLOCKLIST_NAME, 'lower-case letters, digits, ".", "_" or "-", starting with a letter or digit, at most 63 characters'),
    description: z.string().max(2000).default(''),
    owner: z.string().max(200).optional(),
  })
  .strict();
export type CreateBlocklistRequest = z.infer<typeof CreateBlocklistRequest>;

const EntryInputSchema = z.union([
  z.string(),
  z.object({ value: z.string(), comment: z.string().max(1000).optional(), resolve: z.boolean().optional() }).strict(),
]);

/** A whole new list. */
export const CommitFullRequest = z
  .object({
    entries: z.array(EntryInputSchema),
    message: z.string().max(2000).default(''),
    /** The latest version the author saw; the commit is refused with 409 if another version landed since. */
    expectedVersion: int32(0).optional(),
  })
  .strict();

/** A change to the latest (or a named) version. */
export const CommitDiffRequest = z
  .object({
    add: z.array(EntryInputSchema).default([]),
    remove: z.array(z.string()).default([]),
    message: z.string().max(2000).default(''),
    expectedVersion: int32(0).optional(),
  })
  .strict();

export const CommitRequest = z.union([CommitFullRequest, CommitDiffRequest]);
export type CommitRequest = z.infer<typeof CommitRequest>;

export const BlocklistViewSchema = z.object({
  name: z.string(),
  description: z.string(),
  owner: z.string(),
  createdAt: IsoTime,
  createdBy: z.string(),
  latestVersion: z.number().int(),
  latestHash: z.string().nullable(),
  updatedAt: IsoTime,
});
export type BlocklistView = z.infer<typeof BlocklistViewSchema>;

export const VersionViewSchema = z.object({
  blocklist: z.string(),
  version: z.number().int(),
  contentHash: z.string(),
  entryCount: z.number().int(),
  addedCount: z.number().int(),
  removedCount: z.number().int(),
  message: z.string(),
  committedAt: IsoTime,
  committedBy: z.string(),
});
export type VersionView = z.infer<typeof VersionViewSchema>;

export const CommitResultSchema = z.object({
  /** False when the content was identical to the latest version: nothing was written. */
  created: z.boolean(),
  version: VersionViewSchema,
  /** Duplicate entries folded together while canonicalising. */
  merged: z.number().int(),
});
export type CommitResult = z.infer<typeof CommitResultSchema>;

export const EntryViewSchema = z.object({
  kind: z.enum(['domain', 'wildcard', 'cidr4', 'cidr6']),
  value: z.string(),
  comment: z.string().optional(),
  resolve: z.boolean().optional(),
});
export type EntryView = z.infer<typeof EntryViewSchema>;

export const VersionDetailViewSchema = VersionViewSchema.extend({ entries: z.array(EntryViewSchema) });
export type VersionDetailView = z.infer<typeof VersionDetailViewSchema>;

export const DiffViewSchema = z.object({
  blocklist: z.string(),
  from: z.number().int(),
  to: z.number().int(),
  added: z.array(EntryViewSchema),
  removed: z.array(EntryViewSchema),
});
export type DiffView = z.infer<typeof DiffViewSchema>;

export const AuditRecordSchema = z.object({
  position: z.string(),
  time: IsoTime,
  actor: z.string(),
  type: z.string(),
  stream: z.string(),
  correlationId: z.string(),
  summary: z.record(z.string(), z.unknown()),
});
export type AuditRecord = z.infer<typeof AuditRecordSchema>;

export const AuditPageSchema = z.object({ records: z.array(AuditRecordSchema), next: z.string().nullable() });
export type AuditPage = z.infer<typeof AuditPageSchema>;

/** Event positions are PostgreSQL `bigint`s; a cursor past the largest one is refused. */
const POSITION = /^(0|[1-9]\d{0,17})$/;

export const AuditQuery = z
  .object({
    limit: z.number().int().min(1).max(1000).optional(),
    /** The `next` of the previous page: an event position. */
    before: z.string().regex(POSITION, 'must be the `next` of a previous page (an event position, at most 18 digits)').optional(),
    actor: z.string().min(1).max(200).optional(),
    /** Stream id prefix, e.g. `blocklist-`. */
    stream: z.string().min(1).max(200).optional(),
  })
  .strict();
export type AuditQuery = z.infer<typeof AuditQuery>;

export const ROLES = ['viewer', 'operator', 'admin'] as const;
export type Role = (typeof ROLES)[number];

export const CreateTokenRequest = z.object({ name: z.string().min(1).max(200), role: z.enum(ROLES) }).strict();
export type CreateTokenRequest = z.infer<typeof CreateTokenRequest>;

export const TokenViewSchema = z.object({
  id: z.string(),
  name: z.string(),
  role: z.enum(ROLES),
  createdAt: IsoTime,
  createdBy: z.string(),
  revokedAt: IsoTime.nullable(),
});
export type TokenView = z.infer<typeof TokenViewSchema>;

export const IssuedTokenSchema = z.object({ token: TokenViewSchema, secret: z.string() });
export type IssuedToken = z.infer<typeof IssuedTokenSchema>;
