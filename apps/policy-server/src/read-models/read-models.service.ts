import { Injectable } from '@nestjs/common';
import { DataSource, EntityManager } from 'typeorm';
import type { StoredEvent } from '../event-store/event-store';
import { EventStore } from '../event-store/event-store.service';
import { BlocklistsReadModel } from './blocklists/blocklists.read-model';
import { ReadModel } from './read-model';
import { TokensReadModel } from './tokens/tokens.read-model';
import { FleetReadModel } from './fleet/fleet.read-model';
import { HostsReadModel } from './hosts/hosts.read-model';
import { RolloutsReadModel } from './rollouts/rollouts.read-model';
import { EnrollTokensReadModel } from '../enrollment/enroll-tokens.read-model';
import { FindingsReadModel } from '../findings/findings.read-model';
import { OwnersReadModel } from '../owners/owners.read-model';
import { NotificationsReactor } from '../notifications/notifications.reactor';

const REBUILD_PAGE = 1000;

/** Keeps every read model up to date and can rebuild them all from the events. */
@Injectable()
export class ReadModels {
  private readonly all: readonly ReadModel[];

  constructor(
    private readonly db: DataSource,
    private readonly store: EventStore,
    blocklists: BlocklistsReadModel,
    tokens: TokensReadModel,
    fleet: FleetReadModel,
    hosts: HostsReadModel,
    rollouts: RolloutsReadModel,
    enrollTokens: EnrollTokensReadModel,
    findings: FindingsReadModel,
    owners: OwnersReadModel,
    private readonly notifications: NotificationsReactor,
  ) {
    this.all = [blocklists, tokens, fleet, hosts, rollouts, enrollTokens, findings, owners];
  }

  get tables(): string[] {
    return this.all.flatMap((r) => r.tables);
  }

  /** Projects new events into every read model, then writes the notifications they cause (same transaction). */
  async apply(events: readonly StoredEvent[], m: EntityManager): Promise<void> {
    await this.project(events, m);
    await this.notifications.react(events, m);
  }

  private async project(events: readonly StoredEvent[], m: EntityManager): Promise<void> {
    if (events.length > 1) {
      // Read models are independent of each other, so each may take the batch at once.
      for (const r of this.all) {
        if (r.applyMany) await r.applyMany(events, m);
        else for (const e of events) await r.apply(e, m);
      }
      return;
    }
    for (const e of events) for (const r of this.all) await r.apply(e, m);
  }

  /**
   * Drops every read model's rows and replays the whole event log, in one
   * transaction. Writers wait (SHARE lock on events) so nothing lands between
   * the replay and the commit.
   */
  async rebuild(): Promise<{ events: number; tables: string[] }> {
    return this.db.transaction(async (m) => {
      await m.query('lock table events in share mode');
      await m.query(`truncate ${this.tables.join(', ')}`);
      let after = 0n;
      let count = 0;
      for (;;) {
        const events = await this.store.readAll(after, REBUILD_PAGE, m);
        if (events.length === 0) break;
        // Projections only: a rebuild must not notify anyone again.
        await this.project(events, m);
        count += events.length;
        after = events[events.length - 1]!.position;
      }
      return { events: count, tables: this.tables };
    });
  }
}
