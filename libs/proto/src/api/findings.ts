// Findings (one owner's dependency on one listed name), owners with their
// notification targets, and webhook deliveries: the REST requests and views.
import { z } from 'zod';
import { parseTimeParam } from './events';

export const FINDING_STATES = ['new', 'acknowledged', 'resolved', 'accepted'] as const;
export type FindingState = (typeof FINDING_STATES)[number];

/** What can make a notification, each switchable per target. */
export const TRIGGERS = [
  'finding.new',
  'finding.regression',
  'finding.accepted-expired',
  'rollout.gate-failed',
  'rollout.paused',
  'rollout.rolled-back',
  'rollout.completed',
  'host.rejected',
  'killswitch.toggled',
] as const;
export type Trigger = (typeof TRIGGERS)[number];
/** A new target gets these unless it names its own. */
export const DEFAULT_TRIGGERS: readonly Trigger[] = ['finding.new', 'finding.regression', 'finding.accepted-expired'];

/** '30d', '12h', '45m', '90s'. */
const SPAN = /^(\d{1,6})(s|m|h|d)$/;
const SPAN_MS = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
export function spanMs(text: string): number | undefined {
  const m = SPAN.exec(text);
  return m ? Number(m[1]) * SPAN_MS[m[2] as keyof typeof SPAN_MS] : undefined;
}

const since = z.string().refine((s) => parseTimeParam(s) !== undefined, 'must be an ISO 8601 time or a duration back from now (7d)');

export const FindingsQuery = z
  .object({
    owner: z.string().min(1).max(200).optional(),
    state: z.enum(FINDING_STATES).optional(),
    /** Findings seen since: ISO time or a duration back from now. */
    since: since.optional(),
    entry: z.string().min(1).max(300).optional(),
    limit: z.coerce.number().int().min(1).max(1000).default(200),
  })
  .strict();
export type FindingsQuery = z.infer<typeof FindingsQuery>;

const note = z.string().trim().min(1, 'say why (--reason)').max(1000);

export const FindingTransitionRequest = z.object({ reason: note }).strict();
export type FindingTransitionRequest = z.infer<typeof FindingTransitionRequest>;

export const FindingAcceptRequest = z
  .object({
    reason: note,
    /** How long the dependency is tolerated ('30d') or until when (ISO time); it reopens then. */
    until: z
      .string()
      .refine((s) => spanMs(s) !== undefined || Number.isFinite(Date.parse(s)), 'a span like 30d or an ISO 8601 time')
      .default('30d'),
  })
  .strict();
export type FindingAcceptRequest = z.infer<typeof FindingAcceptRequest>;

export interface FindingTransitionView {
  at: string;
  actor: string;
  type: string;
  note: string | null;
}

export interface FindingView {
  id: string;
  /** The run label that names the owner (`service` by default) and its value; '' when the run had none. */
  ownerKey: string;
  owner: string;
  team: string | null;
  /** The listed entry that matched. */
  entry: string;
  state: FindingState;
  /** A regression: it was resolved and happened again. */
  regression: boolean;
  firstSeen: string;
  lastSeen: string;
  blocked: number;
  audited: number;
  /** Examples, at most 20 of each (the most recent kept). */
  names: string[];
  hosts: string[];
  cohorts: string[];
  runs: string[];
  commands: string[];
  versions: string[];
  fixedAt: string | null;
  acceptedUntil: string | null;
  updatedAt: string;
}

export interface FindingDetailView extends FindingView {
  history: FindingTransitionView[];
}

const label = z.string().regex(/^[A-Za-z0-9_.-]{1,63}$/, 'a label key like service');
const webhookUrl = z
  .string()
  .max(2000)
  .refine((u) => {
    try {
      const p = new URL(u).protocol;
      return p === 'http:' || p === 'https:';
    } catch {
      return false;
    }
  }, 'an http:// or https:// URL');

export const WebhookTargetRequest = z
  .object({
    url: webhookUrl,
    /** json: cgfence's own body; slack: a Slack-compatible {text, blocks} body. */
    format: z.enum(['json', 'slack']).default('json'),
    triggers: z.array(z.enum(TRIGGERS)).min(1).max(TRIGGERS.length).optional(),
    /** Gather finding notifications into one message per period ('1h', '1d'); absent: each as it happens. */
    digest: z.string().regex(/^\d{1,4}(s|m|h|d)$/, 'a period like 1h or 1d').nullable().optional(),
    /** HMAC key for the signature; one is generated (and returned once) when absent. */
    secret: z.string().min(16, 'at least 16 characters').max(200).optional(),
  })
  .strict();
export type WebhookTargetRequest = z.infer<typeof WebhookTargetRequest>;

export const OwnerSetRequest = z
  .object({
    key: label.default('service'),
    value: z.string().min(1).max(200),
    team: z.string().min(1).max(200).optional(),
    webhook: WebhookTargetRequest.optional(),
  })
  .strict();
export type OwnerSetRequest = z.infer<typeof OwnerSetRequest>;

export interface TargetView {
  id: string;
  url: string;
  format: 'json' | 'slack';
  triggers: Trigger[];
  digest: string | null;
}

export interface OwnerView {
  key: string;
  value: string;
  team: string | null;
  targets: TargetView[];
  updatedAt: string;
}

export interface OwnerSetView {
  owner: OwnerView;
  /** The secret of a target made by this request, shown once. */
  secret?: { targetId: string; secret: string };
}

export const DeliveriesQuery = z
  .object({
    status: z.enum(['pending', 'delivered', 'dead', 'held', 'digested']).optional(),
    target: z.string().max(100).optional(),
    limit: z.coerce.number().int().min(1).max(1000).default(100),
  })
  .strict();
export type DeliveriesQuery = z.infer<typeof DeliveriesQuery>;

export interface DeliveryView {
  id: string;
  targetId: string;
  url: string;
  /** 'digest' for a digest message. */
  trigger: Trigger | 'digest';
  subject: string;
  /** held: waiting for its target's digest; digested: sent inside one. */
  status: 'pending' | 'delivered' | 'dead' | 'held' | 'digested';
  attempts: number;
  nextAttemptAt: string | null;
  lastError: string | null;
  createdAt: string;
  deliveredAt: string | null;
}
