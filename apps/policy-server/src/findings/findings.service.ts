import { Injectable } from '@nestjs/common';
import { FindingAcceptRequest, FindingDetailView, FindingsQuery, FindingTransitionRequest, FindingView, parseIsoTime, spanMs } from '@cgfence/proto';
import { Clock } from '../common/clock';
import { DomainError } from '../common/errors';
import type { Actor } from '../common/request-context';
import { CommandHandler } from '../event-store/command-handler.service';
import { EventStore } from '../event-store/event-store.service';
import { findingStreamOf } from './finding';
import { FindingCommand, findingDecider } from './finding.decider';
import { findingView } from './finding-view';
import { FindingsReadModel } from './findings.read-model';

const ID = /^f-[0-9a-f]{20}$/;
/** A transition that meets a concurrent append is decided again this many times in all. */
const TRANSITION_ATTEMPTS = 3;

/** Findings as teams drive them: list, show, acknowledge, mark fixed, accept. */
@Injectable()
export class FindingsService {
  constructor(
    private readonly commands: CommandHandler,
    private readonly store: EventStore,
    private readonly findings: FindingsReadModel,
    private readonly clock: Clock,
  ) {}

  async list(q: FindingsQuery): Promise<FindingView[]> {
    return (await this.findings.list(q)).map(findingView);
  }

  async get(id: string): Promise<FindingDetailView> {
    const row = ID.test(id) ? await this.findings.get(id) : undefined;
    if (!row) throw new DomainError('finding.not_found', `no finding ${id}`);
    const events = await this.store.readStream(findingStreamOf(id));
    const history = events
      .filter((e) => e.type !== 'FindingObserved')
      .map((e) => ({ at: e.metadata.time, actor: e.metadata.actor, type: e.type, note: ((e.data as { note?: string }).note ?? null) as string | null }));
    return { ...findingView(row), history };
  }

  acknowledge(id: string, body: FindingTransitionRequest, actor: Actor): Promise<FindingDetailView> {
    return this.transition(id, { type: 'AcknowledgeFinding', note: body.reason, now: this.clock.now() }, actor);
  }

  resolve(id: string, body: FindingTransitionRequest, actor: Actor): Promise<FindingDetailView> {
    return this.transition(id, { type: 'MarkFindingFixed', note: body.reason, now: this.clock.now() }, actor);
  }

  accept(id: string, body: FindingAcceptRequest, actor: Actor): Promise<FindingDetailView> {
    const now = this.clock.now();
    const span = spanMs(body.until);
    const until = new Date(span !== undefined ? now.getTime() + span : parseIsoTime(body.until)!.getTime());
    return this.transition(id, { type: 'AcceptFinding', note: body.reason, until, now }, actor);
  }

  private async transition(id: string, command: FindingCommand, actor: Actor): Promise<FindingDetailView> {
    if (!ID.test(id)) throw new DomainError('finding.not_found', `no finding ${id}`);
    // The feeder may append an occurrence at the same moment: decide again on the new state (a few times at most).
    for (let attempt = 1; ; attempt++) {
      try {
        await this.commands.handle(findingStreamOf(id), findingDecider, command, actor);
        break;
      } catch (err) {
        if (!(err instanceof DomainError && err.code === 'stream.conflict') || attempt >= TRANSITION_ATTEMPTS) throw err;
      }
    }
    return this.get(id);
  }
}
