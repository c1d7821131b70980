import { Inject, Injectable } from '@nestjs/common';
import type { EntityManager } from 'typeorm';
import type { Trigger } from '@cgfence/proto';
import type { StoredEvent } from '../event-store/event-store';
import { FINDING_STREAM_PREFIX, FindingEvent } from '../findings/finding';
import { FindingsReadModel } from '../findings/findings.read-model';
import { findingView } from '../findings/finding-view';
import { OwnersReadModel } from '../owners/owners.read-model';
import { DeliveriesRepository } from './deliveries.repository';
import { Notice, renderBody } from './payload';

/**
 * Turns events into webhook deliveries, in the transaction that appends
 * them (after the read models have them): an event either commits with its
 * deliveries or not at all. Not run by a read-model rebuild, so a rebuild
 * sends nothing.
 */
@Injectable()
export class NotificationsReactor {
  constructor(
    private readonly owners: OwnersReadModel,
    private readonly findings: FindingsReadModel,
    @Inject(DeliveriesRepository) private readonly deliveries: DeliveriesRepository,
  ) {}

  async react(events: readonly StoredEvent[], m: EntityManager): Promise<void> {
    for (const e of events) {
      const n = await this.noticeOf(e, m);
      if (!n) continue;
      const targets = await this.owners.targetsFor(n.notice.trigger, n.owner, m);
      for (const t of targets) {
        const id = this.deliveries.newId();
        // A digest target gathers finding notices: held as JSON until its digest is rendered in the target's format.
        const held = t.digest !== null && n.notice.trigger.startsWith('finding.');
        await this.deliveries.add(m, {
          id, eventPosition: e.position, targetId: t.id, trigger: n.notice.trigger, subject: n.notice.subject,
          body: renderBody(held ? 'json' : t.format, id, n.notice), held,
        });
      }
    }
  }

  private async noticeOf(e: StoredEvent, m: EntityManager): Promise<{ notice: Notice; owner: { key: string; value: string } | null } | undefined> {
    const base = { occurredAt: e.metadata.time, actor: e.metadata.actor };
    const fleet = (trigger: Trigger, subject: string, details: Record<string, unknown>) => ({ notice: { ...base, trigger, subject, details }, owner: null });
    if (e.streamId.startsWith(FINDING_STREAM_PREFIX)) {
      const f = e as unknown as StoredEvent & FindingEvent;
      let trigger: Trigger;
      if (f.type === 'FindingOpened') trigger = 'finding.new';
      else if (f.type === 'FindingReopened') trigger = f.data.cause === 'regression' ? 'finding.regression' : 'finding.accepted-expired';
      else if (f.type === 'FindingAcceptanceExpiring') trigger = 'finding.accepted-expiring';
      else return undefined;
      const row = await this.findings.get(e.streamId.slice(FINDING_STREAM_PREFIX.length), m);
      if (!row) return undefined;
      const who = row.owner === '' ? `(no ${row.owner_key} label)` : `${row.owner_key}=${row.owner}`;
      const what = trigger === 'finding.new' ? 'new dependency' : trigger === 'finding.regression' ? 'dependency is back (regression)' : 'accepted dependency expired';
      const subject =
        f.type === 'FindingAcceptanceExpiring' ? `${who}: accepted dependency on ${row.entry} expires at ${f.data.until}` : `${who}: ${what} on ${row.entry}`;
      const note = f.type === 'FindingReopened' || f.type === 'FindingAcceptanceExpiring' ? f.data.note : null;
      return {
        notice: { ...base, trigger, subject, details: { finding: findingView(row), note } },
        owner: { key: row.owner_key, value: row.owner },
      };
    }
    const d = e.data as Record<string, unknown>;
    if (e.streamId.startsWith('rollout-')) {
      const rollout = { id: e.streamId.slice('rollout-'.length), ...d };
      switch (e.type) {
        case 'GateFailed':
          return fleet('rollout.gate-failed', `rollout ${rollout.id}: gate ${String(d['gate'])} failed at stage ${String(d['index'])}`, { rollout });
        case 'RolloutPaused':
          return fleet('rollout.paused', `rollout ${rollout.id} paused: ${String(d['reason'])}`, { rollout });
        case 'RolloutRolledBack':
          return fleet('rollout.rolled-back', `rollout ${rollout.id} rolled back: ${String(d['reason'])}`, { rollout });
        case 'RolloutCompleted':
          return fleet('rollout.completed', `rollout ${rollout.id} completed`, { rollout });
      }
      return undefined;
    }
    if (e.streamId.startsWith('host-') && e.type === 'HostConditionChanged' && d['on'] === true) {
      // Once per change of the host's condition (not per report): see HostConditionChanged.
      const host = String(d['hostId']);
      const detail = d['detail'] === null ? '' : `: ${String(d['detail'])}`;
      if (d['condition'] === 'rejected') return fleet('host.rejected', `host ${host} rejected a bundle${detail}`, { host: d });
      if (d['condition'] === 'drifted') return fleet('host.drifted', `host ${host} drifted: its kernel maps no longer hold what it applied${detail}`, { host: d });
    }
    if (e.streamId === 'fleet' && e.type === 'AuditModeSet' && d['cohort'] === null) {
      return fleet('killswitch.toggled', `kill switch ${d['on'] ? 'ON: the fleet audits instead of enforcing' : 'off: the fleet enforces again'}`, { fleet: d });
    }
    return undefined;
  }
}
