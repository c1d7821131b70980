import { Inject, Injectable } from '@nestjs/common';
import { DataSource, type EntityManager } from 'typeorm';
import {
  BUNDLE_CHUNK_BYTES,
  BUNDLE_KIND,
  BundleHeader,
  ChunkReply,
  DESIRED_KIND,
  DesiredDocument,
  DesiredMessage,
  INLINE_CONTENT_BYTES,
  signDocument,
} from '@cgfence/proto';
import { ContentsPool } from '../blocklists/contents.pool';
import { Clock } from '../common/clock';
import { DomainError } from '../common/errors';
import { SERVER_CONFIG, ServerConfig } from '../config/config';
import { FleetReadModel, FleetRow } from '../read-models/fleet/fleet.read-model';
import { RolloutRow, RolloutsReadModel } from '../read-models/rollouts/rollouts.read-model';
import { rolloutAssignments } from '../rollouts/stages';
import { SIGNING_KEY } from './fleet.tokens';
import type { SigningKey } from './signing-key';

/** Contents kept in memory for chunk requests and headers: the few versions in play at a time. */
const CONTENT_CACHE = 4;

/**
 * Builds and signs the desired-state document from the fleet read model.
 * The same revision is served from memory until a quarter of its validity has
 * passed; then it is signed again with a fresh expiry (same revision, so
 * agents see nothing new to apply).
 */
@Injectable()
export class DesiredStateService {
  private cached: { revision: number; issuedAt: number; message: DesiredMessage } | undefined;
  private readonly contents = new Map<string, { bytes: number; encoded: Buffer; entries: number }>();
  /** Contents being read and encoded: a thousand agents asking for the same new content start one job. */
  private readonly loading = new Map<string, Promise<{ bytes: number; encoded: Buffer; entries: number }>>();

  constructor(
    private readonly db: DataSource,
    private readonly fleet: FleetReadModel,
    private readonly rollouts: RolloutsReadModel,
    private readonly pool: ContentsPool,
    private readonly clock: Clock,
    @Inject(SIGNING_KEY) private readonly key: SigningKey,
    @Inject(SERVER_CONFIG) private readonly config: ServerConfig,
  ) {}

  /** The current message, or null when nothing was ever assigned. */
  async current(): Promise<{ revision: number; message: DesiredMessage } | null> {
    const row = await this.fleet.get();
    if (!row) return null;
    const now = this.clock.now().getTime();
    const c = this.cached;
    if (c && c.revision === row.revision && now - c.issuedAt < this.config.bundleTtlMs / 4) return c;
    // The fleet row and the active rollouts from one snapshot. Read apart, a
    // rollout step committed between the two reads was signed under the
    // revision before it (issue 17): a document whose revision names one state
    // and whose assignments name the next, which agents take as that revision.
    const snapshot = await this.db.transaction('REPEATABLE READ', async (m) => ({ row: await this.fleet.get(m), active: await this.rollouts.list({ active: true }, m) }));
    if (!snapshot.row) return null;
    const message = await this.build(snapshot.row, snapshot.active);
    this.cached = { revision: snapshot.row.revision, issuedAt: now, message };
    return this.cached;
  }

  /** Inside a command's transaction: the message for the revision that transaction wrote. */
  async forTransaction(m: EntityManager): Promise<{ revision: number; message: DesiredMessage }> {
    const row = await this.fleet.get(m);
    if (!row) throw new Error('the fleet read model has no row after a fleet event');
    return { revision: row.revision, message: await this.build(row, await this.rollouts.list({ active: true }, m)) };
  }

  async build(row: FleetRow, activeRollouts: readonly RolloutRow[] = []): Promise<DesiredMessage> {
    const now = this.clock.now();
    const issuedAt = now.toISOString();
    const expiresAt = new Date(now.getTime() + this.config.bundleTtlMs).toISOString();
    const inline: Record<string, string> = {};
    const bundle = async (blocklist: string, version: number, hash: string) => {
      const content = await this.content(hash);
      const header: BundleHeader = {
        kind: BUNDLE_KIND,
        blocklistId: blocklist,
        name: blocklist,
        version,
        hash,
        entries: content.entries,
        bytes: content.bytes,
        encoding: 'gzip',
        transferBytes: content.encoded.byteLength,
        chunkBytes: BUNDLE_CHUNK_BYTES,
        chunks: Math.ceil(content.encoded.byteLength / BUNDLE_CHUNK_BYTES),
        issuedAt,
        expiresAt,
      };
      if (content.encoded.byteLength <= INLINE_CONTENT_BYTES) inline[header.hash] = content.encoded.toString('base64');
      return signDocument(header, this.key.privateKey);
    };
    const baseline = row.baseline ? await bundle(row.baseline.blocklist, row.baseline.version, row.baseline.contentHash) : null;
    const assignments = [];
    for (const r of activeRollouts) assignments.push(...rolloutAssignments(r, await bundle(r.blocklist, r.version, r.content_hash)));
    const doc: DesiredDocument = {
      kind: DESIRED_KIND,
      revision: row.revision,
      issuedAt,
      expiresAt,
      baseline,
      assignments,
      audit: { fleet: row.auditFleet, cohorts: row.auditCohorts },
      rollback: row.rollback ? { blocklistId: row.rollback.blocklist, toVersion: row.rollback.toVersion } : null,
    };
    return { desired: signDocument(doc, this.key.privateKey), inline };
  }

  /** One chunk of a bundle's content, for `cgf.agent.<host>.bundle`. */
  async chunk(hash: string, index: number): Promise<ChunkReply> {
    const content = await this.content(hash);
    const chunks = Math.ceil(content.encoded.byteLength / BUNDLE_CHUNK_BYTES);
    if (index >= chunks) throw new DomainError('validation.failed', `bundle ${hash} has ${chunks} chunks; chunk ${index} does not exist`);
    const data = content.encoded.subarray(index * BUNDLE_CHUNK_BYTES, (index + 1) * BUNDLE_CHUNK_BYTES).toString('base64');
    return { hash, index, data };
  }

  /** Content as it travels: gzip of the canonical text (about a fifth of its size). */
  private async content(hash: string): Promise<{ bytes: number; encoded: Buffer; entries: number }> {
    const hit = this.contents.get(hash);
    if (hit) {
      this.contents.delete(hash);
      this.contents.set(hash, hit);
      return hit;
    }
    let loading = this.loading.get(hash);
    if (!loading) {
      loading = this.load(hash).finally(() => this.loading.delete(hash));
      this.loading.set(hash, loading);
    }
    return loading;
  }

  private async load(hash: string): Promise<{ bytes: number; encoded: Buffer; entries: number }> {
    // Read and gzipped on a worker thread (a 1,000,000-entry list is about 25 MB of text).
    const done = await this.pool.transfer({ hash });
    if (!done) throw new DomainError('version.not_found', `no blocklist content with hash ${hash}`);
    const value = { bytes: done.bytes, encoded: Buffer.from(done.encoded.buffer, done.encoded.byteOffset, done.encoded.byteLength), entries: done.entries };
    this.contents.set(hash, value);
    while (this.contents.size > CONTENT_CACHE) this.contents.delete(this.contents.keys().next().value!);
    return value;
  }
}
