import { Inject, Injectable } from '@nestjs/common';
import type { EntityManager } from 'typeorm';
import { FLEET_SUBJECTS, type FleetView, type HostView } from '@cgfence/proto';
import { Clock } from '../common/clock';
import { DomainError } from '../common/errors';
import type { Actor } from '../common/request-context';
import { CommandHandler } from '../event-store/command-handler.service';
import type { StoredEvent } from '../event-store/event-store';
import { OutboxRepository } from '../outbox/outbox.repository';
import { BlocklistsReadModel } from '../read-models/blocklists/blocklists.read-model';
import { FleetReadModel, FleetRow } from '../read-models/fleet/fleet.read-model';
import { DesiredStateService } from './desired-state.service';
import { FLEET_STREAM_ID, FleetCommand, fleetDecider } from './fleet';
import { SIGNING_KEY } from './fleet.tokens';
import type { SigningKey } from './signing-key';

/**
 * Changes to what the fleet enforces. Each change is an event on the fleet
 * stream; in the same transaction the new desired-state document is signed
 * and put in the outbox, so it reaches NATS even if this process dies right
 * after the commit.
 */
@Injectable()
export class FleetService {
  constructor(
    private readonly commands: CommandHandler,
    private readonly fleet: FleetReadModel,
    private readonly blocklists: BlocklistsReadModel,
    private readonly desired: DesiredStateService,
    private readonly outbox: OutboxRepository,
    private readonly clock: Clock,
    @Inject(SIGNING_KEY) private readonly key: SigningKey,
  ) {}

  async assign(name: string, version: number, rollback: boolean, actor: Actor): Promise<FleetView> {
    const v = await this.blocklists.version(name, version);
    if (!v) {
      const b = await this.blocklists.get(name);
      if (!b) throw new DomainError('blocklist.not_found', `blocklist ${name} does not exist`);
      throw new DomainError('version.not_found', `blocklist ${name} has no version ${version} (latest is ${b.latestVersion})`);
    }
    await this.run({ type: 'AssignBaseline', blocklist: name, version, contentHash: v.contentHash, rollback, now: this.clock.now() }, actor);
    return this.view([]);
  }

  async setAuditMode(on: boolean, cohort: string | null, actor: Actor): Promise<FleetView> {
    await this.run({ type: 'SetAuditMode', on, cohort, now: this.clock.now() }, actor);
    return this.view([]);
  }

  private async run(command: FleetCommand, actor: Actor): Promise<void> {
    await this.commands.handle(FLEET_STREAM_ID, fleetDecider, command, actor, undefined, (m, events) => this.publishDesired(m, events));
  }

  /** A rollout changed who gets what: a new fleet revision, signed and in the outbox, in the caller's transaction. */
  async recordRollout(m: EntityManager, command: Omit<Extract<FleetCommand, { type: 'RecordRollout' }>, 'type'>, actor: Actor): Promise<void> {
    await this.commands.handleIn(m, FLEET_STREAM_ID, fleetDecider, { type: 'RecordRollout', ...command }, actor, undefined, (mm, events) => this.publishDesired(mm, events));
  }

  /** The signed document for the new revision, into the outbox of this transaction. */
  private async publishDesired(m: EntityManager, events: StoredEvent[]): Promise<void> {
    if (events.length === 0) return;
    const { revision, message } = await this.desired.forTransaction(m);
    await this.outbox.add(m, {
      subject: FLEET_SUBJECTS.desired,
      msgId: `desired-${revision}`,
      payload: new TextEncoder().encode(JSON.stringify(message)),
    });
  }

  async row(): Promise<FleetRow | undefined> {
    return this.fleet.get();
  }

  async view(hosts: readonly HostView[]): Promise<FleetView> {
    const row = await this.fleet.get();
    return {
      revision: row?.revision ?? 0,
      baseline: row?.baseline ? { blocklist: row.baseline.blocklist, version: row.baseline.version, hash: row.baseline.contentHash } : null,
      audit: { fleet: row?.auditFleet ?? false, cohorts: row?.auditCohorts ?? [] },
      rollback: row?.rollback ?? null,
      updatedAt: row?.updatedAt ?? null,
      updatedBy: row?.updatedBy ?? null,
      signingKeyId: this.key.keyId,
      hosts: {
        total: hosts.length,
        inSync: hosts.filter((h) => h.inSync).length,
        stale: hosts.filter((h) => h.stale).length,
        drifted: hosts.filter((h) => h.drift?.drifted === true).length,
        errors: hosts.filter((h) => h.lastError !== null).length,
      },
    };
  }
}
