import { Injectable } from '@nestjs/common';
import { DataSource, EntityManager } from 'typeorm';
import type { Actor } from '../common/request-context';
import { Clock } from '../common/clock';
import { ReadModels } from '../read-models/read-models.service';
import { Decider } from './decider';
import { NewEvent, StoredEvent } from './event-store';
import { EventStore } from './event-store.service';

export interface Handled<S> {
  before: S;
  after: S;
  events: StoredEvent[];
}

/**
 * Runs a command against one stream in one transaction: load the stream, fold
 * it, decide, append with the version we loaded (optimistic concurrency), and
 * update the read models from the new events. Either all of it commits or
 * none of it does.
 */
@Injectable()
export class CommandHandler {
  constructor(
    private readonly db: DataSource,
    private readonly store: EventStore,
    private readonly readModels: ReadModels,
    private readonly clock: Clock,
  ) {}

  async handle<S, C, E extends NewEvent>(
    streamId: string,
    decider: Decider<S, C, E>,
    command: C,
    actor: Actor,
    beforeAppend?: (m: EntityManager) => Promise<void>,
    /** Runs in the same transaction once the read models have the new events (the outbox writes here). */
    afterApply?: (m: EntityManager, events: StoredEvent[]) => Promise<void>,
  ): Promise<Handled<S>> {
    return this.db.transaction((m) => this.handleIn(m, streamId, decider, command, actor, beforeAppend, afterApply));
  }

  /** The same inside a transaction the caller holds (one command leading to another, atomically). */
  async handleIn<S, C, E extends NewEvent>(
    m: EntityManager,
    streamId: string,
    decider: Decider<S, C, E>,
    command: C,
    actor: Actor,
    beforeAppend?: (m: EntityManager) => Promise<void>,
    afterApply?: (m: EntityManager, events: StoredEvent[]) => Promise<void>,
  ): Promise<Handled<S>> {
    const history = await this.store.readStream(streamId, m);
    const before = history.reduce((s, e) => decider.evolve(s, e as unknown as E), decider.initialState);
    const fresh = decider.decide(command, before);
    if (fresh.length === 0) return { before, after: before, events: [] };
    if (beforeAppend) await beforeAppend(m);
    const events = await this.store.append(streamId, history.length, fresh, { ...actor, time: this.clock.now().toISOString() }, m);
    await this.readModels.apply(events, m);
    if (afterApply) await afterApply(m, events);
    const after = fresh.reduce((s, e) => decider.evolve(s, e), before);
    return { before, after, events };
  }
}
