// The agent's checks, in the order it applies them: the desired-state
// document (signature, expiry, revision), the bundle it selects (signature,
// expiry, not older than what is applied unless the server ordered a
// rollback), and the content (hash and size). Pure: the caller passes the
// keyring, the clock and what it has applied.
import { createHash, KeyObject } from 'node:crypto';
import { gunzipSync, gzipSync } from 'node:zlib';
import {
  Assignment,
  BundleHeader,
  BundleHeaderSchema,
  DesiredDocument,
  DesiredDocumentSchema,
  RollbackOrder,
  SignedDocument,
} from './documents';
import { Checked, openDocument, reject } from './signing';

export function checkDesired(doc: unknown, ring: ReadonlyMap<string, KeyObject>, now: Date, seenRevision: number | null): Checked<DesiredDocument> {
  const opened = openDocument(doc, ring, DesiredDocumentSchema);
  if (!opened.ok) return opened;
  const d = opened.value;
  if (Date.parse(d.expiresAt) <= now.getTime()) return reject('expired', `desired-state revision ${d.revision} expired at ${d.expiresAt}`);
  if (seenRevision !== null && d.revision < seenRevision) {
    return reject('stale-revision', `desired-state revision ${d.revision} is older than revision ${seenRevision} already seen (a replay?)`);
  }
  return opened;
}

/** What one host should do under a desired-state document. */
export interface HostTarget {
  readonly bundle: SignedDocument | null;
  readonly audit: boolean;
  readonly reason: string;
}

/**
 * A host's bucket, a number in [0, 100) from the SHA-256 of its id: the same
 * host lands in the same bucket every time, and buckets spread evenly, so
 * "below 25" selects a quarter of any large set of hosts.
 */
export function bucketOf(hostId: string): number {
  return (createHash('sha256').update(`cgfence-bucket:${hostId}`).digest().readUInt32BE(0) / 2 ** 32) * 100;
}

export interface HostIdentity {
  readonly hostId: string;
  readonly cohort: string | undefined;
  readonly labels?: Readonly<Record<string, string>>;
}

/** A label-and-bucket selector: every label matches and the bucket is below the share (each part optional). */
export function selectorMatches(sel: { labels?: Readonly<Record<string, string>>; bucketBelow?: number }, host: HostIdentity): boolean {
  if (sel.labels === undefined && sel.bucketBelow === undefined) return false;
  const labels: Readonly<Record<string, string>> = { ...(host.cohort !== undefined ? { cohort: host.cohort } : {}), ...host.labels };
  if (sel.labels && !Object.entries(sel.labels).every(([k, v]) => labels[k] === v)) return false;
  return sel.bucketBelow === undefined || bucketOf(host.hostId) < sel.bucketBelow;
}

/** Whether an assignment's selector takes this host. */
export function assignmentSelects(a: Assignment, host: HostIdentity): boolean {
  if (a.hosts?.includes(host.hostId)) return true;
  if (host.cohort !== undefined && a.cohorts?.includes(host.cohort)) return true;
  if (!selectorMatches(a, host)) return false;
  return !(a.unless ?? []).some((u) => selectorMatches(u, host));
}

/** Picks the assignment (or the baseline) and the audit override for one host. */
export function targetFor(d: DesiredDocument, host: HostIdentity): HostTarget {
  const cohortAudit = host.cohort !== undefined && d.audit.cohorts.includes(host.cohort);
  const hit = d.assignments.find((a) => assignmentSelects(a, host));
  if (hit) {
    return { bundle: hit.bundle, audit: d.audit.fleet || cohortAudit || hit.mode === 'audit', reason: hit.reason ?? 'assignment' };
  }
  return { bundle: d.baseline, audit: d.audit.fleet || cohortAudit, reason: 'baseline' };
}

export function checkBundle(
  doc: unknown,
  ring: ReadonlyMap<string, KeyObject>,
  now: Date,
  applied: { blocklistId: string; version: number } | null,
  rollback: RollbackOrder | null,
): Checked<BundleHeader> {
  const opened = openDocument(doc, ring, BundleHeaderSchema);
  if (!opened.ok) return opened;
  const h = opened.value;
  const label = `${h.name} v${h.version}`;
  if (Date.parse(h.expiresAt) <= now.getTime()) return reject('expired', `bundle ${label} expired at ${h.expiresAt}`);
  if (applied && applied.blocklistId === h.blocklistId && h.version < applied.version) {
    const ordered = rollback !== null && rollback.blocklistId === h.blocklistId && rollback.toVersion === h.version;
    if (!ordered) return reject('older-version', `bundle ${label} is older than v${applied.version} already applied, and no signed rollback order names it`);
  }
  return opened;
}

export function sha256Tag(content: Uint8Array): string {
  return `sha256:${createHash('sha256').update(content).digest('hex')}`;
}

export function checkContent(header: BundleHeader, content: Uint8Array): Checked<string> {
  if (content.byteLength !== header.bytes) {
    return reject('hash-mismatch', `bundle ${header.name} v${header.version}: content is ${content.byteLength} bytes, the signed header says ${header.bytes}`);
  }
  const got = sha256Tag(content);
  if (got !== header.hash) return reject('hash-mismatch', `bundle ${header.name} v${header.version}: content hashes to ${got}, the signed header says ${header.hash}`);
  return { ok: true, value: new TextDecoder('utf-8', { fatal: true }).decode(content) };
}

/** The content as it travels for a header's encoding (the server's side of decodeTransfer). */
export function encodeTransfer(encoding: 'identity' | 'gzip', content: Uint8Array): Buffer {
  return encoding === 'gzip' ? gzipSync(content, { level: 6 }) : Buffer.from(content);
}

/**
 * The canonical text bytes from what arrived (inline or the chunks joined):
 * checks the transfer size, decodes, and never inflates past the size the
 * signed header promises (a gzip bomb stops there).
 */
export function decodeTransfer(header: BundleHeader, encoded: Uint8Array): Checked<Uint8Array> {
  const label = `bundle ${header.name} v${header.version}`;
  if (encoded.byteLength !== header.transferBytes) {
    return reject('hash-mismatch', `${label}: received ${encoded.byteLength} bytes, the signed header says ${header.transferBytes}`);
  }
  if (header.encoding === 'identity') return { ok: true, value: encoded };
  try {
    return { ok: true, value: gunzipSync(encoded, { maxOutputLength: Math.max(header.bytes, 1) }) };
  } catch (err) {
    return reject('hash-mismatch', `${label}: content does not decode (${(err as Error).message})`);
  }
}
