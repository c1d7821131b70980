// Host enrollment (issue 17): join tokens an operator creates, and the
// request a new host makes with one.
import { z } from 'zod';
import { HOST_ID_PATTERN } from '../fleet/subjects';
import { IsoTime } from './common';

const LABEL_KEY = /^[a-zA-Z0-9_.\-/]{1,63}$/;

/** A duration like 30m, 24h, 7d (at most 365 days). */
export const TTL_PATTERN = /^(\d{1,6})(s|m|h|d)$/;
const UNIT_MS = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
export const MAX_ENROLL_TOKEN_TTL_MS = 365 * 86_400_000;
/** Uses one token allows at most (a token for a whole autoscaling group, but still bounded). */
export const MAX_ENROLL_TOKEN_USES = 100_000;

/** Milliseconds of a TTL string, or undefined if it is not one. */
export function ttlMs(text: string): number | undefined {
  const m = TTL_PATTERN.exec(text);
  return m ? Number(m[1]) * UNIT_MS[m[2] as keyof typeof UNIT_MS] : undefined;
}

export const Labels = z
  .record(z.string().regex(LABEL_KEY, 'label keys are 1-63 of letters, digits, "_", ".", "-", "/"'), z.string().max(256))
  .refine((l) => Object.keys(l).length <= 64, 'at most 64 labels');

export const CreateEnrollTokenRequest = z
  .object({
    cohort: z.string().regex(LABEL_KEY).optional(),
    labels: Labels.optional(),
    /** How long the token can be used: 30m, 24h, 7d… */
    ttl: z
      .string()
      .regex(TTL_PATTERN, 'a duration like 30m, 24h or 7d')
      .refine((t) => (ttlMs(t) ?? 0) > 0 && (ttlMs(t) ?? 0) <= MAX_ENROLL_TOKEN_TTL_MS, 'between 1s and 365d')
      .default('24h'),
    uses: z.number().int().min(1).max(MAX_ENROLL_TOKEN_USES).default(1),
    description: z.string().max(200).optional(),
  })
  .strict();
export type CreateEnrollTokenRequest = z.infer<typeof CreateEnrollTokenRequest>;

export const EnrollTokenViewSchema = z.object({
  id: z.string(),
  description: z.string().nullable(),
  labels: z.record(z.string(), z.string()),
  usesAllowed: z.number().int(),
  used: z.number().int(),
  expiresAt: IsoTime,
  createdAt: IsoTime,
  createdBy: z.string(),
  revokedAt: IsoTime.nullable(),
  /** active, used up, expired or revoked (at the time of the request). */
  status: z.enum(['active', 'exhausted', 'expired', 'revoked']),
});
export type EnrollTokenView = z.infer<typeof EnrollTokenViewSchema>;

/** A created enrollment token: its view and the secret (cgfe_…), shown once. */
export const IssuedEnrollTokenSchema = z.object({ token: EnrollTokenViewSchema, secret: z.string() });
export type IssuedEnrollToken = z.infer<typeof IssuedEnrollTokenSchema>;

/** The token a new host presents: cgfe_<id>_<secret>. */
export const ENROLL_TOKEN_PATTERN = /^cgfe_(enr_[0-9a-f]{16})_([A-Za-z0-9_-]{43})$/;

export const EnrollRequest = z
  .object({
    token: z.string().max(200),
    hostId: z.string().regex(HOST_ID_PATTERN, 'host ids are 1-63 characters of a-z, 0-9, "-" and "_", starting with a letter or digit'),
    /** The host's NATS user public key (U…): its seed never leaves the host. */
    natsPublicKey: z.string().regex(/^U[A-Z2-7]{55}$/, 'an nkey user public key (U…, 56 characters)'),
    hostname: z.string().max(253).optional(),
  })
  .strict();
export type EnrollRequest = z.infer<typeof EnrollRequest>;

/** What an enrolled host receives and keeps in its state directory. */
export const EnrollResponseSchema = z.object({
  hostId: z.string(),
  /** The host's NATS user JWT (signed by the account signing key); with the host's seed it makes its creds file. */
  natsJwt: z.string(),
  /** NATS URLs the agent connects to. */
  natsServers: z.array(z.string()),
  /** PEM CA the NATS servers' certificates chain to, when the deployment uses TLS. */
  natsCa: z.string().nullable(),
  /** The policy server's bundle signing public key(s), PEM. */
  serverKeys: z.string(),
  /** The token's labels (and cohort): the host's labels. */
  labels: z.record(z.string(), z.string()),
});
export type EnrollResponse = z.infer<typeof EnrollResponseSchema>;

/** A removed host and the NATS keys revoked for it. */
export const RemovedHostSchema = z.object({ hostId: z.string(), revokedKeys: z.array(z.string()) });
export type RemovedHost = z.infer<typeof RemovedHostSchema>;

/**
 * A host's NATS user key from before enrollment (an nkey given a JWT by
 * `cgfence nats migrate-from-nkeys`), recorded so the policy server renews it
 * at an account signing key rotation and revokes it when the host is removed.
 */
export const AdoptNatsKeyRequest = z
  .object({
    natsPublicKey: z.string().regex(/^U[A-Z2-7]{55}$/, 'an nkey user public key (U…, 56 characters)'),
  })
  .strict();
export type AdoptNatsKeyRequest = z.infer<typeof AdoptNatsKeyRequest>;

/** A host id in a path: the form agents' ids take (the host's NATS subjects are made from it). */
export const HostIdParams = z
  .object({ id: z.string().regex(HOST_ID_PATTERN, 'host ids are 1-63 characters of a-z, 0-9, "-" and "_", starting with a letter or digit') })
  .strict();

/** The host's NATS keys after an adoption. */
export const HostNatsKeysSchema = z.object({ hostId: z.string(), natsKeys: z.array(z.string()), adopted: z.boolean() });
export type HostNatsKeys = z.infer<typeof HostNatsKeysSchema>;
