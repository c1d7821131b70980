// REST shapes of the fleet: hosts, the baseline assignment, the audit switches.
import { z } from 'zod';
import { IsoTime, VersionNumber } from './common';
import { labelPairs } from './events';

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

/** Where a host stands, worst first (`stale` wins over `drifted`, which wins over `rejected`); a host with no baseline and no rollout is `in-sync`. */
export const HOST_STATES = ['in-sync', 'converging', 'rejected', 'drifted', 'stale'] as const;
export type HostStateName = (typeof HOST_STATES)[number];

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
  /** Where the host stands, decided by the server from the fields above (one rule for the API, the dashboard and the CLI). */
  state: z.enum(HOST_STATES),
});
export type HostView = z.infer<typeof HostViewSchema>;

export const SigningKeyViewSchema = z.object({ keyId: z.string(), publicKeyPem: z.string() });
export type SigningKeyView = z.infer<typeof SigningKeyViewSchema>;


/** The most hosts one `GET /hosts` page returns when `limit` is given. */
export const MAX_HOSTS_PAGE = 1000;

/** `NAME` (any version of that blocklist) or `NAME@N` (that version). */
export const BundleRefFilter = z
  .string()
  .min(1)
  .max(300)
  .transform((s, ctx) => {
    const at = s.lastIndexOf('@');
    const name = at < 0 ? s : s.slice(0, at);
    const version = at < 0 ? undefined : Number(s.slice(at + 1));
    if (name === '' || (version !== undefined && (!Number.isInteger(version) || version < 1 || version > 2 ** 31 - 1 || !/^\d+$/.test(s.slice(at + 1))))) {
      ctx.addIssue({ code: 'custom', message: `must be a blocklist name or NAME@VERSION (core@3), got "${s}"` });
      return z.NEVER;
    }
    return { blocklist: name, version };
  });
export type BundleRefFilter = z.infer<typeof BundleRefFilter>;

export const HostsQuery = z
  .object({
    cohort: z.string().min(1).max(200).optional(),
    /** true: only hosts silent for too long; false: only live ones. */
    stale: z.boolean().optional(),
    /** `key=value`, repeatable: hosts carrying every one of these labels. */
    label: labelPairs.optional(),
    /** Hosts in this state (the Fleet page's and `cgfence hosts`' five states). */
    state: z.enum(HOST_STATES).optional(),
    /** Hosts running this agent version (exact). */
    agentVersion: z.string().min(1).max(200).optional(),
    /** Hosts that applied this blocklist (NAME) or version (NAME@N). */
    applied: BundleRefFilter.optional(),
    /** Hosts that should enforce this blocklist (NAME) or version (NAME@N), from a rollout stage or the baseline. */
    desired: BundleRefFilter.optional(),
    /** Page size (keyset paging by host id); without it every matching host is returned. */
    limit: z.number().int().min(1).max(MAX_HOSTS_PAGE).optional(),
    /** The hostId of the last host of the previous page: the page starts after it. */
    after: z.string().min(1).max(500).optional(),
  })
  .strict();
export type HostsQuery = z.infer<typeof HostsQuery>;
