// The last bundle the agent applied, on disk, so a rebooted host enforces it
// before (or without) reaching the policy server:
//   <stateDir>/fleet/last-good.json     the signed desired-state document and
//                                       bundle header, the revision, when applied
//   <stateDir>/fleet/last-good.content  the bundle content (the canonical text)
// Both are written atomically (temp file, fsync, rename). Loading checks the
// signatures against the agent's keyring and the content against the signed
// hash, but not expiry: an expired last-good list beats enforcing nothing.
import type { KeyObject } from 'node:crypto';
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import {
  BundleHeader,
  BundleHeaderSchema,
  checkContent,
  DesiredDocument,
  DesiredDocumentSchema,
  openDocument,
  SignedDocument,
  SignedDocumentSchema,
} from '@cgfence/proto';

export const LAST_GOOD_KIND = 'cgfence.last-good/v1';

const LastGoodFileSchema = z.object({
  kind: z.literal(LAST_GOOD_KIND),
  revision: z.number().int().nonnegative(),
  desired: SignedDocumentSchema,
  bundle: SignedDocumentSchema,
  appliedAt: z.string(),
});
export type LastGoodFile = z.infer<typeof LastGoodFileSchema>;

export interface LastGood {
  readonly revision: number;
  readonly desired: SignedDocument;
  readonly doc: DesiredDocument;
  readonly bundle: SignedDocument;
  readonly header: BundleHeader;
  readonly text: string;
  readonly appliedAt: string;
  /** What has expired since it was applied (the agent warns and enforces it anyway). */
  readonly expired: readonly string[];
}

export type LastGoodLoad = { readonly ok: true; readonly lastGood: LastGood } | { readonly ok: false; readonly missing: boolean; readonly message: string };

export class LastGoodStore {
  readonly dir: string;

  constructor(stateDir: string) {
    this.dir = join(stateDir, 'fleet');
  }

  get jsonFile(): string {
    return join(this.dir, 'last-good.json');
  }

  get contentFile(): string {
    return join(this.dir, 'last-good.content');
  }

  /**
   * Records a successful apply. `content` is omitted when the bundle did not
   * change (a new revision naming the same bundle): only the document moves.
   */
  save(record: Omit<LastGoodFile, 'kind'>, content?: Uint8Array): void {
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    const json = Buffer.from(`${JSON.stringify({ kind: LAST_GOOD_KIND, ...record }, null, 2)}\n`);
    // Content first: a crash between the renames leaves the new content with
    // the old header, which fails the hash check at boot (nothing restored)
    // rather than pairing a header with content it does not describe.
    const staged: [string, string][] = [];
    if (content !== undefined) staged.push([writeTemp(this.contentFile, content), this.contentFile]);
    staged.push([writeTemp(this.jsonFile, json), this.jsonFile]);
    for (const [tmp, final] of staged) renameSync(tmp, final);
    syncDir(this.dir);
  }

  /** Reads and verifies the last good bundle. */
  load(ring: ReadonlyMap<string, KeyObject>, now: Date): LastGoodLoad {
    if (!existsSync(this.jsonFile)) return { ok: false, missing: true, message: `no last-good bundle in ${this.dir}` };
    const bad = (message: string): LastGoodLoad => ({ ok: false, missing: false, message: `last-good bundle in ${this.dir} ignored: ${message}` });
    let file: LastGoodFile;
    let content: Buffer;
    try {
      const parsed = LastGoodFileSchema.safeParse(JSON.parse(readFileSync(this.jsonFile, 'utf8')));
      if (!parsed.success) return bad(`${this.jsonFile} is malformed: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
      file = parsed.data;
      content = readFileSync(this.contentFile);
    } catch (err) {
      return bad((err as Error).message);
    }
    const desired = openDocument(file.desired, ring, DesiredDocumentSchema);
    if (!desired.ok) return bad(`desired-state document: ${desired.reason}: ${desired.message}`);
    const header = openDocument(file.bundle, ring, BundleHeaderSchema);
    if (!header.ok) return bad(`bundle header: ${header.reason}: ${header.message}`);
    const doc = desired.value;
    if (doc.revision !== file.revision) return bad(`revision ${file.revision} does not match the document's ${doc.revision}`);
    const named = [doc.baseline, ...doc.assignments.map((a) => a.bundle)].some((b) => b !== null && b.payload === file.bundle.payload);
    if (!named) return bad(`revision ${doc.revision} does not name bundle ${header.value.name} v${header.value.version}`);
    const text = checkContent(header.value, content);
    if (!text.ok) return bad(text.message);
    const expired: string[] = [];
    if (Date.parse(doc.expiresAt) <= now.getTime()) expired.push(`desired-state revision ${doc.revision} expired at ${doc.expiresAt}`);
    const h = header.value;
    if (Date.parse(h.expiresAt) <= now.getTime()) expired.push(`bundle ${h.name} v${h.version} expired at ${h.expiresAt}`);
    return {
      ok: true,
      lastGood: { revision: doc.revision, desired: file.desired, doc, bundle: file.bundle, header: h, text: text.value, appliedAt: file.appliedAt, expired },
    };
  }

  clear(): void {
    rmSync(this.jsonFile, { force: true });
    rmSync(this.contentFile, { force: true });
  }
}

function writeTemp(final: string, data: Uint8Array): string {
  const tmp = `${final}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w', 0o600);
  try {
    for (let off = 0; off < data.byteLength; ) off += writeSync(fd, data, off, data.byteLength - off);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  return tmp;
}

function syncDir(dir: string): void {
  try {
    const fd = openSync(dir, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch {
    // best effort: the renames are atomic either way
  }
}
