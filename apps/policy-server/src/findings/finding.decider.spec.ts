import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { DomainError } from '../common/errors';
import { FindingEvent, Observation } from './finding';
import { FindingCommand, findingDecider } from './finding.decider';

const T0 = Date.parse('2026-12-01T10:00:00.000Z');
const at = (minutes: number): Date => new Date(T0 + minutes * 60_000);
const iso = (minutes: number): string => at(minutes).toISOString();
const DAY = 86_400_000;

/** given(events) / when(command) / then(events or error code) */
function given(events: FindingEvent[]) {
  const state = events.reduce(findingDecider.evolve, findingDecider.initialState);
  return {
    when(command: FindingCommand) {
      const run = () => findingDecider.decide(command, state);
      return {
        then: (expected: FindingEvent[]) => assert.deepEqual(run(), expected),
        thenTypes: (expected: string[]) => assert.deepEqual(run().map((e) => e.type), expected),
        thenFails: (code: string) => assert.throws(run, (e: unknown) => e instanceof DomainError && e.code === code),
      };
    },
  };
}

const obs = (minutes: number, over: Partial<Observation> = {}): Observation => ({
  firstSeen: iso(minutes), lastSeen: iso(minutes), blocked: 1, audited: 0, names: ['api.internal'], hosts: ['h1'], cohorts: [], runs: ['r1'], commands: ['curl'], versions: ['core v1'], ...over,
});
const record = (minutes: number, now = minutes): FindingCommand => ({ type: 'RecordOccurrence', id: 'f-1', ownerKey: 'service', owner: 'api', entry: 'api.internal', observation: obs(minutes), now: at(now) });
const tick = (minutes: number): FindingCommand => ({ type: 'TickFinding', quietMs: 14 * DAY, fixQuietMs: DAY, now: at(minutes) });

const opened: FindingEvent = { type: 'FindingOpened', data: { id: 'f-1', ownerKey: 'service', owner: 'api', entry: 'api.internal', at: iso(0) } };
const observed = (minutes: number): FindingEvent => ({ type: 'FindingObserved', data: obs(minutes) });
const acked: FindingEvent = { type: 'FindingAcknowledged', data: { note: 'mine', at: iso(5) } };
const fixed = (minutes: number): FindingEvent => ({ type: 'FindingMarkedFixed', data: { note: 'fixed in #1', at: iso(minutes) } });
const resolved = (minutes: number): FindingEvent => ({ type: 'FindingResolved', data: { how: 'quiet', note: 'quiet', at: iso(minutes) } });
const accepted = (untilMinutes: number): FindingEvent => ({ type: 'FindingAccepted', data: { note: 'known', until: iso(untilMinutes), at: iso(10) } });

describe('finding decider', () => {
  it('opens a finding on its first occurrence, dated by the occurrence', () => given([]).when(record(0, 3)).then([opened, observed(0)]));

  it('only adds to an open finding on later occurrences', () => given([opened, observed(0)]).when(record(30)).then([observed(30)]));

  it('acknowledges a new finding, once', () => {
    given([opened]).when({ type: 'AcknowledgeFinding', note: 'mine', now: at(5) }).then([acked]);
    given([opened, acked]).when({ type: 'AcknowledgeFinding', note: 'again', now: at(6) }).then([]);
  });

  it('refuses to acknowledge what is resolved or accepted, and anything that does not exist', () => {
    given([opened, resolved(20)]).when({ type: 'AcknowledgeFinding', note: 'x', now: at(30) }).thenFails('finding.state_conflict');
    given([opened, accepted(100)]).when({ type: 'AcknowledgeFinding', note: 'x', now: at(30) }).thenFails('finding.state_conflict');
    given([]).when({ type: 'AcknowledgeFinding', note: 'x', now: at(30) }).thenFails('finding.not_found');
    given([]).when({ type: 'MarkFindingFixed', note: 'x', now: at(30) }).thenFails('finding.not_found');
  });

  it('resolves by itself after the quiet period without an occurrence, not before', () => {
    given([opened, observed(0)]).when(tick(14 * 24 * 60 - 1)).then([]);
    given([opened, observed(0)]).when(tick(14 * 24 * 60)).then([{ type: 'FindingResolved', data: { how: 'quiet', note: 'no occurrence for 14d', at: iso(14 * 24 * 60) } }]);
  });

  it('resolves a finding marked fixed after the fix quiet period since the mark', () => {
    given([opened, observed(0), acked, fixed(60)]).when(tick(60 + 24 * 60 - 1)).then([]);
    given([opened, observed(0), acked, fixed(60)]).when(tick(60 + 24 * 60)).thenTypes(['FindingResolved']);
  });

  it('a new occurrence after the fix mark disproves the fix; one from before it does not', () => {
    given([opened, observed(0), fixed(60)]).when(record(90)).thenTypes(['FindingFixDisproved', 'FindingObserved']);
    given([opened, observed(0), fixed(60)]).when(record(50, 95)).thenTypes(['FindingObserved']);
    const afterDisproof = [opened, observed(0), fixed(60), { type: 'FindingFixDisproved', data: { note: 'n', at: iso(90) } } as FindingEvent, observed(90)];
    given(afterDisproof).when(tick(60 + 24 * 60 + 1)).then([]);
  });

  it('reopens a resolved finding as a regression on a new occurrence, naming where', () =>
    given([opened, observed(0), resolved(20)])
      .when(record(30))
      .then([{ type: 'FindingReopened', data: { cause: 'regression', note: `seen again on h1 at ${iso(30)}`, at: iso(30) } }, observed(30)]));

  it('does not reopen on a late event from before the resolution', () => given([opened, observed(0), resolved(20)]).when(record(10, 40)).thenTypes(['FindingObserved']));

  it('keeps an accepted finding accepted when it happens, and reopens it when the acceptance expires', () => {
    given([opened, accepted(100)]).when(record(50)).thenTypes(['FindingObserved']);
    given([opened, accepted(100)]).when(tick(99)).then([]);
    given([opened, accepted(100)])
      .when(tick(100))
      .then([{ type: 'FindingReopened', data: { cause: 'acceptance-expired', note: `accepted until ${iso(100)}; that has passed`, at: iso(100) } }]);
  });

  it('warns once per acceptance when its expiry is within the lead time, and not at all with no lead time', () => {
    const warnTick = (minutes: number, leadMinutes = 60): FindingCommand => ({ type: 'TickFinding', quietMs: 14 * DAY, fixQuietMs: DAY, now: at(minutes), expiryWarningMs: leadMinutes * 60_000 });
    const warning = (untilMinutes: number, nowMinutes: number): FindingEvent => ({
      type: 'FindingAcceptanceExpiring',
      data: { until: iso(untilMinutes), note: `accepted until ${iso(untilMinutes)}: it reopens then unless accepted again`, at: iso(nowMinutes) },
    });
    given([opened, accepted(200)]).when(warnTick(139)).then([]);
    given([opened, accepted(200)]).when(warnTick(140)).then([warning(200, 140)]);
    given([opened, accepted(200), warning(200, 140)]).when(warnTick(150)).then([]);
    // A new acceptance is a new expiry to warn of; the expiry itself still reopens.
    given([opened, accepted(200), warning(200, 140), accepted(300)]).when(warnTick(250)).then([warning(300, 250)]);
    given([opened, accepted(200), warning(200, 140)]).when(warnTick(200)).thenTypes(['FindingReopened']);
    given([opened, accepted(200)]).when(warnTick(190, 0)).then([]);
    given([opened, accepted(200)]).when(tick(190)).then([]);
  });

  it('refuses an acceptance that ends in the past', () =>
    given([opened]).when({ type: 'AcceptFinding', note: 'x', until: at(-1), now: at(0) }).thenFails('validation.failed'));

  it('marks fixed once; a resolved finding needs no mark', () => {
    given([opened, fixed(60)]).when({ type: 'MarkFindingFixed', note: 'x', now: at(70) }).then([]);
    given([opened, resolved(20)]).when({ type: 'MarkFindingFixed', note: 'x', now: at(70) }).then([]);
  });

  it('a tick of a finding that does not exist does nothing', () => given([]).when(tick(0)).then([]));
});
