// The CPU-heavy work on blocklist contents: canonicalising a commit, counting
// what it changes, and writing a version or a diff as JSON. A list holds up
// to 1,000,000 entries, and any of these takes seconds at that size, so they
// run on worker threads (contents.worker.ts) and the event loop keeps
// answering other requests. Pure functions here; the pool in contents.pool.ts.
import { createHash } from 'node:crypto';
import {
  applyDiff,
  canonicalise,
  canonicalText,
  diffEntries,
  EntryError,
  EntryInput,
  parseBlocklistText,
  VersionView,
} from '@cgfence/proto';

/** What a commit gives, as the worker takes it. */
export type CommitWork =
  | { kind: 'text'; text: string }
  | { kind: 'entries'; entries: readonly (string | EntryInput)[] }
  | { kind: 'change'; baseText: string; add: readonly (string | EntryInput)[]; remove: readonly string[] };

/** The most entry errors a refused commit reports one by one (the message gives the total). */
export const MAX_REPORTED_ERRORS = 1000;

export type PreparedCommit =
  | { ok: false; errors: EntryError[]; errorCount: number; tooMany: EntryError | undefined }
  | { ok: true; canonical: string; hash: string; entryCount: number; merged: number };

/** Canonicalises a commit: its errors, or its canonical text, content hash and size. */
export function prepareCommit(work: CommitWork): PreparedCommit {
  const result =
    work.kind === 'text'
      ? parseBlocklistText(work.text)
      : work.kind === 'entries'
        ? canonicalise(work.entries)
        : applyDiff(parseBlocklistText(work.baseText).entries, work.add, work.remove);
  if (result.errors.length > 0) {
    const tooMany = result.errors.find((e) => e.line === 0 && /too many entries/.test(e.reason));
    return { ok: false, errors: result.errors.slice(0, MAX_REPORTED_ERRORS), errorCount: result.errors.length, tooMany };
  }
  const canonical = canonicalText(result.entries);
  return { ok: true, canonical, hash: hashOf(canonical), entryCount: result.entries.length, merged: result.merged };
}

/** The content hash of canonical text (what contentHash computes from entries). */
export function hashOf(canonical: string): string {
  return `sha256:${createHash('sha256').update(canonical, 'utf8').digest('hex')}`;
}

/** Lines of canonical text (each ends in '\n'). */
function linesOf(text: string): string[] {
  return text === '' ? [] : text.slice(0, -1).split('\n');
}

/** How many entries one canonical text adds and removes against another (whole lines compared, as diffEntries does). */
export function countChanges(work: { baseText: string; canonical: string }): { added: number; removed: number } {
  const base = new Set(linesOf(work.baseText));
  const next = new Set(linesOf(work.canonical));
  let added = 0;
  let removed = 0;
  for (const l of next) if (!base.has(l)) added++;
  for (const l of base) if (!next.has(l)) removed++;
  return { added, removed };
}

/** A DiffView as UTF-8 JSON (bytes: they move to the event loop's thread without a copy, and are sent as they are). */
export function diffJson(work: { blocklist: string; from: number; to: number; fromText: string; toText: string }): Uint8Array {
  const { added, removed } = diffEntries(parseBlocklistText(work.fromText).entries, parseBlocklistText(work.toText).entries);
  return Buffer.from(JSON.stringify({ blocklist: work.blocklist, from: work.from, to: work.to, added, removed }), 'utf8');
}

/** A VersionDetailView as UTF-8 JSON. */
export function versionJson(work: { view: VersionView; text: string }): Uint8Array {
  return Buffer.from(JSON.stringify({ ...work.view, entries: parseBlocklistText(work.text).entries }), 'utf8');
}
