// The whole of each piece of work on big blocklist contents, from the request
// bytes or a content hash to a small answer or the response bytes: reading
// canonical text from PostgreSQL, checking and canonicalising a commit,
// writing its content row, diffs, versions, the transfer encoding agents
// download, and matching names for a replay. They run on the ContentsPool's
// worker threads, each with its own PostgreSQL connection, so a
// 1,000,000-entry list (about 25 MB of text) never crosses the event loop:
// not as a query result, not as a parameter, not as a string to copy.
// Inline (CONTENTS_THREADS=0) they run on the event loop with the server's
// DataSource, as the baseline of the blocklist-large benchmark.
import { isUtf8 } from 'node:buffer';
import { CommitRequest, encodeTransfer, parseBlocklistText, Problem, VersionView } from '@cgfence/proto';
import { badStringReason, checkJsonText } from '../common/edge';
import { SuffixMatcher } from '../events/matcher';
import { countChanges, diffJson, PreparedCommit, prepareCommit, versionJson } from './contents.work';

/** A PostgreSQL connection as the tasks use it (pg.Client on a worker, the DataSource inline). */
export interface TaskDb {
  query<T>(sql: string, params: unknown[]): Promise<T[]>;
}

async function canonicalOf(db: TaskDb, hash: string | null): Promise<string> {
  if (hash === null) return '';
  const rows = await db.query<{ canonical: string }>(`select canonical from blocklist_contents where content_hash = $1`, [hash]);
  if (!rows[0]) throw new Error(`blocklist content ${hash} is missing from blocklist_contents`);
  return rows[0].canonical;
}

/** A commit's body as the edge read it: bytes, not yet decoded (offThread routes). */
export interface CommitTask {
  media: 'text' | 'json';
  body: Uint8Array;
  /** The latest version's content (null before the first commit): the base of a change and of the counts. */
  baseHash: string | null;
}

/** Why a commit was refused before any entry was looked at (the edge's codes and messages). */
export interface RefusedBody {
  ok: false;
  code: 'request.malformed' | 'validation.failed';
  message: string;
  problems: Problem[];
}

export type CommitOutcome =
  | RefusedBody
  /** Entries refused (PreparedCommit's errors), nothing written. */
  | { ok: true; refused: Extract<PreparedCommit, { ok: false }> }
  | {
      ok: true;
      refused?: undefined;
      /** From a JSON body (text commits take these from the query). */
      message: string | undefined;
      expectedVersion: number | undefined;
      hash: string;
      entryCount: number;
      merged: number;
      added: number;
      removed: number;
    };

/**
 * A commit from its body bytes to a stored content row: UTF-8, NUL and
 * surrogates, the CommitRequest schema (JSON), every entry, then (only for a
 * valid commit) the base version's text, the change applied, the counts, and
 * the content row written (content-addressed, so a commit that then loses a
 * race leaves a row that a later equal commit reuses).
 */
export async function commitTask(db: TaskDb, task: CommitTask): Promise<CommitOutcome> {
  const bytes = Buffer.from(task.body.buffer, task.body.byteOffset, task.body.byteLength);
  if (!isUtf8(bytes)) return { ok: false, code: 'request.malformed', message: 'the request body is not valid UTF-8', problems: [] };
  const text = bytes.toString('utf8');
  let message: string | undefined;
  let expectedVersion: number | undefined;
  let prepared: PreparedCommit;
  let baseText: string | undefined;
  if (task.media === 'text') {
    const reason = badStringReason(text);
    if (reason) return { ok: false, code: 'validation.failed', message: `invalid request: (body): ${reason}`, problems: [{ field: '(body)', reason }] };
    prepared = prepareCommit({ kind: 'text', text });
  } else {
    const r = checkJsonText(text, CommitRequest);
    if (!r.ok) return r;
    message = r.data.message;
    expectedVersion = r.data.expectedVersion;
    if ('entries' in r.data) {
      prepared = prepareCommit({ kind: 'entries', entries: r.data.entries });
    } else {
      // The added entries are checked before the latest version is read.
      const added = prepareCommit({ kind: 'entries', entries: r.data.add });
      if (!added.ok) return { ok: true, refused: added };
      baseText = await canonicalOf(db, task.baseHash);
      prepared = prepareCommit({ kind: 'change', baseText, add: r.data.add, remove: r.data.remove });
    }
  }
  if (!prepared.ok) return { ok: true, refused: prepared };
  baseText ??= await canonicalOf(db, task.baseHash);
  const { added, removed } = countChanges({ baseText, canonical: prepared.canonical });
  if (prepared.hash !== task.baseHash) {
    await db.query(
      `insert into blocklist_contents (content_hash, canonical, entry_count) values ($1, $2, $3) on conflict (content_hash) do nothing`,
      [prepared.hash, prepared.canonical, prepared.entryCount],
    );
  }
  return { ok: true, message, expectedVersion, hash: prepared.hash, entryCount: prepared.entryCount, merged: prepared.merged, added, removed };
}

/** A DiffView as UTF-8 JSON, from the two versions' content hashes (null: version 0, the empty list). */
export async function diffTask(db: TaskDb, t: { blocklist: string; from: number; to: number; fromHash: string | null; toHash: string | null }): Promise<Uint8Array> {
  const [fromText, toText] = [await canonicalOf(db, t.fromHash), await canonicalOf(db, t.toHash)];
  return diffJson({ blocklist: t.blocklist, from: t.from, to: t.to, fromText, toText });
}

/** A version as the response body: VersionDetailView JSON, or the canonical file (format text). */
export async function versionTask(db: TaskDb, t: { view: VersionView; format: 'json' | 'text' }): Promise<Uint8Array> {
  const text = await canonicalOf(db, t.view.contentHash);
  return t.format === 'text' ? Buffer.from(text, 'utf8') : versionJson({ view: t.view, text });
}

/** Content as agents download it: gzip of the canonical text, with its sizes. */
export async function transferTask(db: TaskDb, t: { hash: string }): Promise<{ bytes: number; encoded: Uint8Array; entries: number } | undefined> {
  const rows = await db.query<{ canonical: string; entry_count: number }>(`select canonical, entry_count from blocklist_contents where content_hash = $1`, [t.hash]);
  if (!rows[0]) return undefined;
  const text = Buffer.from(rows[0].canonical, 'utf8');
  return { bytes: text.byteLength, encoded: encodeTransfer('gzip', text), entries: rows[0].entry_count };
}

/** For a replay: the names runs resolved since `since` that a version would block, each with the entry that blocks it. */
export async function replayMatchTask(db: TaskDb, t: { hash: string | null; since: string }): Promise<[name: string, entry: string][]> {
  const parsed = parseBlocklistText(await canonicalOf(db, t.hash));
  const matcher = SuffixMatcher.compile(parsed.entries);
  const names = await db.query<{ name: string }>(`select distinct d.name from run_domains d join runs r using (run_id) where r.started_at >= $1`, [t.since]);
  const hits: [string, string][] = [];
  for (const { name } of names) {
    const e = matcher.match(name);
    if (e !== undefined) hits.push([name, e]);
  }
  return hits;
}
