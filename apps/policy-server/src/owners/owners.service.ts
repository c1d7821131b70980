import { randomBytes } from 'node:crypto';
import { Injectable } from '@nestjs/common';
import { DEFAULT_TRIGGERS, OwnerSetRequest, OwnerSetView, OwnerView } from '@cgfence/proto';
import { Clock } from '../common/clock';
import { DomainError } from '../common/errors';
import type { Actor } from '../common/request-context';
import { CommandHandler } from '../event-store/command-handler.service';
import { DeliveriesRepository } from '../notifications/deliveries.repository';
import { ownerStreamOf } from './owner';
import { ownerDecider } from './owner.decider';
import { OwnerRow, OwnersReadModel, TargetRow } from './owners.read-model';

const view = (o: OwnerRow & { targets: TargetRow[] }): OwnerView => ({
  key: o.key,
  value: o.value,
  team: o.team,
  targets: o.targets.map((t) => ({ id: t.id, url: t.url, format: t.format, triggers: t.triggers, digest: t.digest })),
  updatedAt: new Date(o.updated_at).toISOString(),
});

/** Owners (a run-label value → a team) and where their notifications go. */
@Injectable()
export class OwnersService {
  constructor(
    private readonly commands: CommandHandler,
    private readonly owners: OwnersReadModel,
    private readonly deliveries: DeliveriesRepository,
    private readonly clock: Clock,
  ) {}

  async list(): Promise<OwnerView[]> {
    return (await this.owners.list()).map(view);
  }

  async get(key: string, value: string): Promise<OwnerView> {
    const o = await this.owners.get(key, value);
    if (!o) throw new DomainError('owner.not_found', `no owner ${key}=${value}`);
    return view(o);
  }

  /**
   * Sets the team and adds (or changes) a webhook target. A new target's
   * secret is the one given or a generated one, stored outside the event
   * log in the same transaction, and returned once.
   */
  async set(req: OwnerSetRequest, actor: Actor): Promise<OwnerSetView> {
    const newTargetId = `tgt_${randomBytes(8).toString('hex')}`;
    const target = req.webhook ? { url: req.webhook.url, format: req.webhook.format, triggers: req.webhook.triggers ?? [...DEFAULT_TRIGGERS], digest: req.webhook.digest ?? null } : undefined;
    let secret: { targetId: string; secret: string } | undefined;
    await this.commands.handle(
      ownerStreamOf(req.key, req.value),
      ownerDecider,
      { type: 'SetOwner', key: req.key, value: req.value, team: req.team, target, newTargetId, now: this.clock.now() },
      actor,
      undefined,
      async (m, events) => {
        const added = events.find((e) => e.type === 'TargetAdded');
        const changedId = (events.find((e) => e.type === 'TargetChanged')?.data as { id?: string } | undefined)?.id;
        const id = added ? newTargetId : changedId;
        // A secret given for an existing target replaces its secret.
        if (id && (added || req.webhook?.secret)) {
          secret = { targetId: id, secret: req.webhook?.secret ?? `whsec_${randomBytes(32).toString('base64url')}` };
          await this.deliveries.setSecret(m, id, secret.secret);
        }
      },
    );
    if (!secret && req.webhook?.secret) {
      // Same URL, format and triggers: only the secret changes (no event; secrets are not in the log).
      const o = await this.owners.get(req.key, req.value);
      const t = o?.targets.find((x) => x.url === req.webhook!.url);
      if (t) await this.deliveries.setSecretNow(t.id, req.webhook.secret);
    }
    const owner = await this.get(req.key, req.value);
    return req.webhook?.secret ? { owner } : { owner, ...(secret ? { secret } : {}) };
  }

  async removeTarget(key: string, value: string, targetId: string, actor: Actor): Promise<OwnerView> {
    await this.commands.handle(ownerStreamOf(key, value), ownerDecider, { type: 'RemoveTarget', id: targetId, now: this.clock.now() }, actor);
    return this.get(key, value);
  }
}
