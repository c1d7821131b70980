// What the agent does with one desired-state message, decided without I/O:
// verify the signed document, pick this host's bundle, verify that bundle
// against what is applied. The FleetClient carries the decision out (fetch
// content, apply, persist, report).
import type { KeyObject } from 'node:crypto';
import { z } from 'zod';
import {
  Applied,
  BundleHeader,
  BundleHeaderSchema,
  checkBundle,
  checkDesired,
  DesiredDocument,
  DesiredMessageSchema,
  HostIdentity,
  HostTarget,
  openDocument,
  type RejectReason,
  SignedDocument,
  targetFor,
} from '@cgfence/proto';

/** Why an update was refused: the protocol's RejectReason, or the agent's own. */
export type FleetErrorReason =
  | RejectReason
  /** The bundle content could not be fetched (transient: retried). */
  | 'fetch-failed'
  /** The kernel or the proxy refused the compiled policy (transient: retried). */
  | 'apply-failed';

export interface FleetError {
  readonly revision: number | null;
  readonly reason: FleetErrorReason;
  readonly message: string;
  /**
   * The revision is done with: seenRevision moves to it and the same revision
   * is not tried again. False for problems that may go away (fetch, kernel)
   * and for documents whose revision cannot be trusted.
   */
  readonly final: boolean;
}

export interface EvaluationContext {
  readonly ring: ReadonlyMap<string, KeyObject>;
  readonly now: Date;
  readonly host: HostIdentity;
  readonly seenRevision: number | null;
  readonly applied: Applied | null;
}

interface Accepted {
  readonly revision: number;
  readonly desired: SignedDocument;
  readonly doc: DesiredDocument;
  readonly target: HostTarget;
}

export type Evaluation =
  /** Nothing to do (this revision was already acted on, or an older one arrived late). */
  | { readonly kind: 'ignore'; readonly why: string; readonly revision?: number }
  | { readonly kind: 'reject'; readonly error: FleetError }
  /** A new revision that keeps the bundle in force (or assigns none): mode and revision only. */
  | ({ readonly kind: 'keep'; readonly header: BundleHeader | null; readonly bundle: SignedDocument | null } & Accepted)
  /** A new bundle to fetch (unless inline: the encoded content), decode, check and apply. */
  | ({ readonly kind: 'apply'; readonly header: BundleHeader; readonly bundle: SignedDocument; readonly inline: Uint8Array | undefined } & Accepted);

/** The revision a message claims, unverified: only to order queued messages. */
export function claimedRevision(message: unknown): number {
  try {
    const payload = (message as { desired?: { payload?: unknown } }).desired?.payload;
    const revision = typeof payload === 'string' ? (JSON.parse(payload) as { revision?: unknown }).revision : undefined;
    return typeof revision === 'number' ? revision : -1;
  } catch {
    return -1;
  }
}

function trustedRevision(desired: unknown, ring: ReadonlyMap<string, KeyObject>): number | null {
  // Only for a document whose signature verified (expired, stale): its revision is the server's word.
  const opened = openDocument(desired, ring, RevisionOnly);
  return opened.ok ? opened.value.revision : null;
}

/** Just the revision of a desired-state payload. */
const RevisionOnly = z.object({ revision: z.number().int().nonnegative() });

export function evaluateDesired(message: unknown, ctx: EvaluationContext): Evaluation {
  const parsed = DesiredMessageSchema.safeParse(message);
  if (!parsed.success) {
    const why = parsed.error.issues.map((i) => `${i.path.join('.') || '(message)'}: ${i.message}`).join('; ');
    return { kind: 'reject', error: { revision: null, reason: 'malformed', message: `desired-state message does not match the schema: ${why}`, final: false } };
  }
  const m = parsed.data;
  const checked = checkDesired(m.desired, ctx.ring, ctx.now, ctx.seenRevision);
  if (!checked.ok) {
    if (checked.reason === 'stale-revision') {
      return { kind: 'ignore', why: checked.message, revision: trustedRevision(m.desired, ctx.ring) ?? undefined };
    }
    const revision = checked.reason === 'expired' ? trustedRevision(m.desired, ctx.ring) : null;
    return { kind: 'reject', error: { revision, reason: checked.reason, message: checked.message, final: false } };
  }
  const doc = checked.value;
  if (doc.revision === ctx.seenRevision) return { kind: 'ignore', why: `revision ${doc.revision} already acted on`, revision: doc.revision };

  const target = targetFor(doc, ctx.host);
  const accepted: Accepted = { revision: doc.revision, desired: m.desired, doc, target };
  if (target.bundle === null) return { kind: 'keep', header: null, bundle: null, ...accepted };

  // The bundle in force, named again (a mode change, a new revision for
  // other hosts): nothing to fetch, and its own expiry no longer matters.
  const opened = openDocument(target.bundle, ctx.ring, BundleHeaderSchema);
  if (opened.ok && ctx.applied !== null && opened.value.hash === ctx.applied.hash && opened.value.blocklistId === ctx.applied.blocklistId) {
    return { kind: 'keep', header: opened.value, bundle: target.bundle, ...accepted };
  }
  const bundle = checkBundle(target.bundle, ctx.ring, ctx.now, ctx.applied, doc.rollback);
  if (!bundle.ok) {
    return { kind: 'reject', error: { revision: doc.revision, reason: bundle.reason, message: bundle.message, final: true } };
  }
  const header = bundle.value;
  const b64 = m.inline[header.hash];
  const inline = b64 === undefined ? undefined : new Uint8Array(Buffer.from(b64, 'base64'));
  return { kind: 'apply', header, bundle: target.bundle, inline, ...accepted };
}
