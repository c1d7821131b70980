import type { NewEvent } from './event-store';

/**
 * An aggregate as a pure decider: `decide` turns a command and the current
 * state into new events (or throws a DomainError), `evolve` folds events into
 * state. Time and ids arrive inside the command.
 */
export interface Decider<S, C, E extends NewEvent> {
  initialState: S;
  evolve(state: S, event: E): S;
  decide(command: C, state: S): E[];
}
