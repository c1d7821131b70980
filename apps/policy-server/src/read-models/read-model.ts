import type { EntityManager } from 'typeorm';
import type { StoredEvent } from '../event-store/event-store';

/**
 * A projection of events into tables. `apply` must be deterministic: the same
 * events in the same order always give the same rows, which is what lets a
 * rebuild drop the tables and reproduce them exactly.
 */
export interface ReadModel {
  readonly name: string;
  /** Tables owned by this read model, truncated by a rebuild. */
  readonly tables: readonly string[];
  apply(event: StoredEvent, m: EntityManager): Promise<void>;
  /** Optional: the same result as `apply` on each event in order, in fewer statements. */
  applyMany?(events: readonly StoredEvent[], m: EntityManager): Promise<void>;
}
