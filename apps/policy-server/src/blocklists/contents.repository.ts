import { Injectable } from '@nestjs/common';
import { DataSource, EntityManager } from 'typeorm';
import { BlocklistEntry, parseBlocklistText } from '@cgfence/proto';

/**
 * Content-addressed, immutable blocklist contents (canonical text keyed by its
 * hash). Versions refer to contents by hash; equal lists are stored once.
 */
@Injectable()
export class ContentsRepository {
  constructor(private readonly db: DataSource) {}

  async save(hash: string, canonical: string, entryCount: number, m: EntityManager): Promise<void> {
    await m.query(
      `insert into blocklist_contents (content_hash, canonical, entry_count) values ($1, $2, $3)
       on conflict (content_hash) do nothing`,
      [hash, canonical, entryCount],
    );
  }

  async canonicalText(hash: string): Promise<string | undefined> {
    const rows: { canonical: string }[] = await this.db.query(`select canonical from blocklist_contents where content_hash = $1`, [hash]);
    return rows[0]?.canonical;
  }

  /** Canonical text and entry count of stored content. */
  async stored(hash: string): Promise<{ canonical: string; entryCount: number } | undefined> {
    const rows: { canonical: string; entry_count: number }[] = await this.db.query(
      `select canonical, entry_count from blocklist_contents where content_hash = $1`,
      [hash],
    );
    return rows[0] ? { canonical: rows[0].canonical, entryCount: rows[0].entry_count } : undefined;
  }

  /** The entries of stored content (canonical text always parses cleanly). */
  async entries(hash: string | null): Promise<BlocklistEntry[]> {
    if (hash === null) return [];
    const text = await this.canonicalText(hash);
    if (text === undefined) throw new Error(`blocklist content ${hash} is missing from blocklist_contents`);
    const parsed = parseBlocklistText(text);
    if (parsed.errors.length > 0) throw new Error(`stored content ${hash} no longer parses: ${parsed.errors[0]?.reason}`);
    return parsed.entries;
  }
}
