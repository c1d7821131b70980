import { EventStore1732000000001 } from './1732000000001-event-store';
import { BlocklistContents1732000000002 } from './1732000000002-blocklist-contents';
import { BlocklistReadModels1732000000003 } from './1732000000003-blocklist-read-models';
import { ApiTokens1732000000004 } from './1732000000004-api-tokens';
import { Outbox1732000000005 } from './1732000000005-outbox';
import { FleetReadModels1732000000006 } from './1732000000006-fleet-read-models';
import { Rollouts1732000000007 } from './1732000000007-rollouts';
import { BlockEvents1732000000008 } from './1732000000008-block-events';
import { RunUsers1732000000014 } from './1732000000014-run-users';
import { EnrollTokens1732000000017 } from './1732000000017-enroll-tokens';
import { FindingsReadModel1733000018001 } from './1733000018001-findings-read-model';
import { FindingOccurrences1733000018002 } from './1733000018002-finding-occurrences';
import { OwnersReadModel1733000018003 } from './1733000018003-owners-read-model';
import { WebhookDeliveries1733000018004 } from './1733000018004-webhook-deliveries';
import { FindingExpiryWarning1734000018005 } from './1734000018005-finding-expiry-warning';
import { HostConditions1734000018006 } from './1734000018006-host-conditions';
import { HistoryFilterIndexes1734000016007 } from './1734000016007-history-filter-indexes';
import { BlockEventsCnameTarget1734000020013 } from './1734000020013-block-events-cname-target';

import type { MigrationInterface } from 'typeorm';

/** Every migration, oldest first. The policy server runs them at start. */
export const migrations: (new () => MigrationInterface)[] = [
  EventStore1732000000001,
  BlocklistContents1732000000002,
  BlocklistReadModels1732000000003,
  ApiTokens1732000000004,
  Outbox1732000000005,
  FleetReadModels1732000000006,
  Rollouts1732000000007,
  BlockEvents1732000000008,
  RunUsers1732000000014,
  EnrollTokens1732000000017,
  FindingsReadModel1733000018001,
  FindingOccurrences1733000018002,
  OwnersReadModel1733000018003,
  WebhookDeliveries1733000018004,
  FindingExpiryWarning1734000018005,
  HostConditions1734000018006,
  HistoryFilterIndexes1734000016007,
  BlockEventsCnameTarget1734000020013,
];

