import { EventStore1732000000001 } from './1732000000001-event-store';
import { BlocklistContents1732000000002 } from './1732000000002-blocklist-contents';
import { BlocklistReadModels1732000000003 } from './1732000000003-blocklist-read-models';
import { ApiTokens1732000000004 } from './1732000000004-api-tokens';

import type { MigrationInterface } from 'typeorm';

/** Every migration, oldest first. The policy server runs them at start. */
export const migrations: (new () => MigrationInterface)[] = [
  EventStore1732000000001,
  BlocklistContents1732000000002,
  BlocklistReadModels1732000000003,
  ApiTokens1732000000004,
];

