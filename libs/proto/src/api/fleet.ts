// REST shapes of the fleet: hosts, the baseline assignment, the audit switches.
import { z } from 'zod';
import { IsoTime, VersionNumber } from './common';

export const AssignRequest = z
  .object({
    version: VersionNumber,
    /** Needed to assign a version older than the current baseline of the same blocklist. */
    rollback: z.boolean().optional(),
  })
  .strict();
export type AssignRequest = z.infer<typeof AssignRequest>;

export const AuditModeRequest = z
  .object({
    on: z.boolean(),
    /** Omit for the whole fleet (the kill switch). */
    cohort: z.string().min(1).max(200).optional(),
  })
  .strict();
export type AuditModeRequest = z.infer<typeof AuditModeRequest>;

export const BundleRefViewSchema = z.object({ blocklist: z.string(), version: z.number().int(), hash: z.string() });
export type BundleRefView = z.infer<typeof BundleRefViewSchema>;

export const FleetViewSchema = z.object({
  revision: z.number().int(),
  baseline: BundleRefViewSchema.nullable(),
  audit: z.object({ fleet: z.boolean(), cohorts: z.array(z.string()) }),
  rollback: z.object({ blocklist: z.string(), toVersion: z.number().int() }).nullable(),
  updatedAt: IsoTime.nullable(),
  updatedBy: z.string().nullable(),
  signingKeyId: z.string(),
  hosts: z.object({ total: z.number().int(), inSync: z.number().int(), stale: z.number().int(), drifted: z.number().int(), errors: z.number().int() }),
});
export type FleetView = z.infer<typeof FleetViewSchema>;

export const HostViewSchema = z.object({
  hostId: z.string(),
  hostname: z.string(),
  labels: z.record(z.string(), z.string()),
  cohort: z.string().nullable(),
  kernel: z.string(),
  agentVersion: z.string(),
  capabilities: z.array(z.string()),
  registeredAt: IsoTime,
  lastSeen: IsoTime.nullable(),
  /** Silent for longer than the server's stale limit. */
  stale: z.boolean(),
  desired: BundleRefViewSchema.extend({ revision: z.number().int(), mode: z.enum(['audit', 'enforce']) }).nullable(),
  applied: BundleRefViewSchema.extend({ revision: z.number().int(), appliedAt: IsoTime }).nullable(),
  /** Applied what it should (same content hash as desired). */
  inSync: z.boolean(),
  /** The last desired revision the agent acted on. */
  seenRevision: z.number().int().nullable(),
  lastError: z.object({ revision: z.number().int().nullable(), reason: z.string(), message: z.string(), at: IsoTime }).nullable(),
  mode: z.string().nullable(),
  failMode: z.string().nullable(),
  health: z.object({ proxy: z.boolean(), kernel: z.boolean(), detail: z.string().optional() }).nullable(),
  drift: z.object({ drifted: z.boolean(), detail: z.string().optional(), checkedAt: IsoTime }).nullable(),
});
export type HostView = z.infer<typeof HostViewSchema>;

export const SigningKeyViewSchema = z.object({ keyId: z.string(), publicKeyPem: z.string() });
export type SigningKeyView = z.infer<typeof SigningKeyViewSchema>;

export const HostsQuery = z
  .object({
    cohort: z.string().min(1).max(200).optional(),
    /** true: only hosts silent for too long; false: only live ones. */
    stale: z.boolean().optional(),
  })
  .strict();
export type HostsQuery = z.infer<typeof HostsQuery>;
