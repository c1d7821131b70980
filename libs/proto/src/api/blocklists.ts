import { z } from 'zod';

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
    expectedVersion: z.number().int().min(0).optional(),
  })
  .strict();

/** A change to the latest (or a named) version. */
export const CommitDiffRequest = z
  .object({
    add: z.array(EntryInputSchema).default([]),
    remove: z.array(z.string()).default([]),
    message: z.string().max(2000).default(''),
    expectedVersion: z.number().int().min(0).optional(),
  })
  .strict();

export const CommitRequest = z.union([CommitFullRequest, CommitDiffRequest]);
export type CommitRequest = z.infer<typeof CommitRequest>;

export interface BlocklistView {
  name: string;
  description: string;
  owner: string;
  createdAt: string;
  createdBy: string;
  latestVersion: number;
  latestHash: string | null;
  updatedAt: string;
}

export interface VersionView {
  blocklist: string;
  version: number;
  contentHash: string;
  entryCount: number;
  addedCount: number;
  removedCount: number;
  message: string;
  committedAt: string;
  committedBy: string;
}

export interface CommitResult {
  /** False when the content was identical to the latest version: nothing was written. */
  created: boolean;
  version: VersionView;
  /** Duplicate entries folded together while canonicalising. */
  merged: number;
}

export interface EntryView {
  kind: 'domain' | 'wildcard' | 'cidr4' | 'cidr6';
  value: string;
  comment?: string;
  resolve?: boolean;
}

export interface VersionDetailView extends VersionView {
  entries: EntryView[];
}

export interface DiffView {
  blocklist: string;
  from: number;
  to: number;
  added: EntryView[];
  removed: EntryView[];
}

export interface AuditRecord {
  position: string;
  time: string;
  actor: string;
  type: string;
  stream: string;
  correlationId: string;
  summary: Record<string, unknown>;
}

export const ROLES = ['viewer', 'operator', 'admin'] as const;
export type Role = (typeof ROLES)[number];

export const CreateTokenRequest = z.object({ name: z.string().min(1).max(200), role: z.enum(ROLES) }).strict();
export type CreateTokenRequest = z.infer<typeof CreateTokenRequest>;

export interface TokenView {
  id: string;
  name: string;
  role: Role;
  createdAt: string;
  createdBy: string;
  revokedAt: string | null;
}

/** Shape of every error body the server returns. */
export interface ErrorBody {
  statusCode: number;
  code: string;
  message: string;
  correlationId: string;
  details?: unknown;
}
