import { Injectable } from '@nestjs/common';
import { DataSource, EntityManager } from 'typeorm';
import type { Trigger } from '@cgfence/proto';
import type { StoredEvent } from '../event-store/event-store';
import type { ReadModel } from '../read-models/read-model';
import { OWNER_STREAM_PREFIX, OwnerEvent } from './owner';

export interface OwnerRow {
  key: string;
  value: string;
  team: string | null;
  updated_at: Date;
}

export interface TargetRow {
  id: string;
  owner_key: string;
  owner: string;
  url: string;
  format: 'json' | 'slack';
  triggers: Trigger[];
  digest: string | null;
}

/** Owners and their notification targets; rebuilt from the owner streams. */
@Injectable()
export class OwnersReadModel implements ReadModel {
  readonly name = 'owners';
  readonly tables = ['rm_owners', 'rm_notification_targets'] as const;

  constructor(private readonly db: DataSource) {}

  async apply(stored: StoredEvent, m: EntityManager): Promise<void> {
    if (!stored.streamId.startsWith(OWNER_STREAM_PREFIX)) return;
    const e = { type: stored.type, data: stored.data } as OwnerEvent;
    const at = stored.metadata.time;
    switch (e.type) {
      case 'OwnerSet':
        await m.query(
          `insert into rm_owners (key, value, team, updated_at) values ($1, $2, $3, $4)
           on conflict (key, value) do update set team = excluded.team, updated_at = excluded.updated_at`,
          [e.data.key, e.data.value, e.data.team, at],
        );
        return;
      case 'TargetAdded':
      case 'TargetChanged': {
        const eq = stored.streamId.indexOf('=');
        const key = stored.streamId.slice(OWNER_STREAM_PREFIX.length, eq);
        const value = stored.streamId.slice(eq + 1);
        await m.query(
          `insert into rm_notification_targets (id, owner_key, owner, url, format, triggers, digest, updated_at) values ($1, $2, $3, $4, $5, $6, $7, $8)
           on conflict (id) do update set url = excluded.url, format = excluded.format, triggers = excluded.triggers, digest = excluded.digest, updated_at = excluded.updated_at`,
          [e.data.id, key, value, e.data.url, e.data.format, e.data.triggers, e.data.digest ?? null, at],
        );
        await m.query(`update rm_owners set updated_at = $3 where key = $1 and value = $2`, [key, value, at]);
        return;
      }
      case 'TargetRemoved':
        await m.query(`delete from rm_notification_targets where id = $1`, [e.data.id]);
        return;
    }
  }

  async list(m?: EntityManager): Promise<(OwnerRow & { targets: TargetRow[] })[]> {
    const q = m ?? this.db;
    const owners: OwnerRow[] = await q.query(`select * from rm_owners order by key, value`);
    const targets: TargetRow[] = await q.query(`select * from rm_notification_targets order by id`);
    return owners.map((o) => ({ ...o, targets: targets.filter((t) => t.owner_key === o.key && t.owner === o.value) }));
  }

  async get(key: string, value: string, m?: EntityManager): Promise<(OwnerRow & { targets: TargetRow[] }) | undefined> {
    const q = m ?? this.db;
    const owners: OwnerRow[] = await q.query(`select * from rm_owners where key = $1 and value = $2`, [key, value]);
    if (!owners[0]) return undefined;
    const targets: TargetRow[] = await q.query(`select * from rm_notification_targets where owner_key = $1 and owner = $2 order by id`, [key, value]);
    return { ...owners[0], targets };
  }

  /** Targets to tell about `trigger`: the owner's own (owner given), or every target subscribed to it (fleet-wide triggers). */
  async targetsFor(trigger: Trigger, owner: { key: string; value: string } | null, m: EntityManager): Promise<TargetRow[]> {
    if (owner) {
      return m.query(`select * from rm_notification_targets where owner_key = $1 and owner = $2 and $3 = any(triggers) order by id`, [owner.key, owner.value, trigger]);
    }
    return m.query(`select * from rm_notification_targets where $1 = any(triggers) order by id`, [trigger]);
  }
}
