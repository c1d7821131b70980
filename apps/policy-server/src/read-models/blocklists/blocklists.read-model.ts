import { Injectable } from '@nestjs/common';
import { DataSource, EntityManager } from 'typeorm';
import type { BlocklistView, VersionView } from '@cgfence/proto';
import type { BlocklistEvent } from '../../blocklists/blocklist';
import type { StoredEvent } from '../../event-store/event-store';
import { ReadModel } from '../read-model';

/** Event types this read model handles. */
const HANDLES = new Set(['BlocklistCreated', 'BlocklistVersionCommitted']);

interface BlocklistRow {
  name: string;
  description: string;
  owner: string;
  created_at: Date;
  created_by: string;
  latest_version: number;
  latest_hash: string | null;
  updated_at: Date;
}

interface VersionRow {
  blocklist: string;
  version: number;
  content_hash: string;
  entry_count: number;
  added_count: number;
  removed_count: number;
  message: string;
  committed_at: Date;
  committed_by: string;
}

const blocklistView = (r: BlocklistRow): BlocklistView => ({
  name: r.name,
  description: r.description,
  owner: r.owner,
  createdAt: r.created_at.toISOString(),
  createdBy: r.created_by,
  latestVersion: r.latest_version,
  latestHash: r.latest_hash,
  updatedAt: r.updated_at.toISOString(),
});

const versionView = (r: VersionRow): VersionView => ({
  blocklist: r.blocklist,
  version: r.version,
  contentHash: r.content_hash,
  entryCount: r.entry_count,
  addedCount: r.added_count,
  removedCount: r.removed_count,
  message: r.message,
  committedAt: r.committed_at.toISOString(),
  committedBy: r.committed_by,
});

/** Blocklists and their versions, as operators list and show them. */
@Injectable()
export class BlocklistsReadModel implements ReadModel {
  readonly name = 'blocklists';
  readonly tables = ['rm_blocklist_versions', 'rm_blocklists'] as const;

  constructor(private readonly db: DataSource) {}

  async apply(stored: StoredEvent, m: EntityManager): Promise<void> {
    if (!HANDLES.has(stored.type)) return;
    const e = { type: stored.type, data: stored.data } as BlocklistEvent;
    switch (e.type) {
      case 'BlocklistCreated':
        await m.query(
          `insert into rm_blocklists (name, description, owner, created_at, created_by, updated_at)
           values ($1, $2, $3, $4, $5, $4)`,
          [e.data.name, e.data.description, e.data.owner, e.data.createdAt, stored.metadata.actor],
        );
        return;
      case 'BlocklistVersionCommitted':
        await m.query(
          `insert into rm_blocklist_versions
             (blocklist, version, content_hash, entry_count, added_count, removed_count, message, committed_at, committed_by)
           values ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
          [e.data.name, e.data.version, e.data.contentHash, e.data.entryCount, e.data.addedCount, e.data.removedCount, e.data.message, e.data.committedAt, stored.metadata.actor],
        );
        await m.query(`update rm_blocklists set latest_version = $2, latest_hash = $3, updated_at = $4 where name = $1`, [
          e.data.name,
          e.data.version,
          e.data.contentHash,
          e.data.committedAt,
        ]);
        return;
    }
  }

  async list(): Promise<BlocklistView[]> {
    const rows: BlocklistRow[] = await this.db.query(`select * from rm_blocklists order by name`);
    return rows.map(blocklistView);
  }

  async get(name: string): Promise<BlocklistView | undefined> {
    const rows: BlocklistRow[] = await this.db.query(`select * from rm_blocklists where name = $1`, [name]);
    return rows[0] ? blocklistView(rows[0]) : undefined;
  }

  async versions(name: string): Promise<VersionView[]> {
    const rows: VersionRow[] = await this.db.query(`select * from rm_blocklist_versions where blocklist = $1 order by version`, [name]);
    return rows.map(versionView);
  }

  async version(name: string, version: number): Promise<VersionView | undefined> {
    const rows: VersionRow[] = await this.db.query(`select * from rm_blocklist_versions where blocklist = $1 and version = $2`, [name, version]);
    return rows[0] ? versionView(rows[0]) : undefined;
  }
}
