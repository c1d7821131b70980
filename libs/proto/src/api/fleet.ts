// REST shapes of the fleet: hosts, the baseline assignment, the audit switches.
import { z } from 'zod';

export const AssignRequest = z
  .object({
    version: z.number().int().positive(),
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

export interface BundleRefView {
  blocklist: string;
  version: number;
  hash: string;
}

export interface FleetView {
  revision: number;
  baseline: BundleRefView | null;
  audit: { fleet: boolean; cohorts: string[] };
  rollback: { blocklist: string; toVersion: number } | null;
  updatedAt: string | null;
  updatedBy: string | null;
  signingKeyId: string;
  hosts: { total: number; inSync: number; stale: number; drifted: number; errors: number };
}

export interface HostView {
  hostId: string;
  hostname: string;
  labels: Record<string, string>;
  cohort: string | null;
  kernel: string;
  agentVersion: string;
  capabilities: string[];
  registeredAt: string;
  lastSeen: string | null;
  /** Silent for longer than the server's stale limit. */
  stale: boolean;
  desired: (BundleRefView & { revision: number; mode: 'audit' | 'enforce' }) | null;
  applied: (BundleRefView & { revision: number; appliedAt: string }) | null;
  /** Applied what it should (same content hash as desired). */
  inSync: boolean;
  /** The last desired revision the agent acted on. */
  seenRevision: number | null;
  lastError: { revision: number | null; reason: string; message: string; at: string } | null;
  mode: string | null;
  failMode: string | null;
  health: { proxy: boolean; kernel: boolean; detail?: string } | null;
  drift: { drifted: boolean; detail?: string; checkedAt: string } | null;
}

export interface SigningKeyView {
  keyId: string;
  publicKeyPem: string;
}
