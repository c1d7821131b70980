// The fleet link's NATS connection options, built in this one place: servers,
// this host's credentials (nkey seed → authenticator, name, the inbox prefix
// its permissions allow), reconnect and ping settings. The Nest NATS client
// (requests, reports) and the broadcast transport share the connection made
// from them; JetStream publishes of the event spool ride on it too.
import type { NodeConnectionOptions } from '@nats-io/transport-node';
import { natsConnectOptions } from '@cgfence/nats-auth';
import { FLEET_SUBJECTS } from '@cgfence/proto';

export interface FleetNatsSettings {
  readonly servers: readonly string[];
  readonly hostId: string;
  /** nkey seed file; without one the agent connects without authentication. */
  readonly seedFile?: string;
  readonly reconnectWaitMs: number;
  readonly requestTimeoutMs: number;
}

export function fleetNatsOptions(s: FleetNatsSettings): NodeConnectionOptions {
  // A host's replies come back on its own inbox prefix (its permissions allow no other).
  const auth = s.seedFile ? natsConnectOptions({ seedFile: s.seedFile, hostId: s.hostId }) : { name: `cgfence-agent-${s.hostId}` };
  return {
    servers: [...s.servers],
    ...auth,
    inboxPrefix: FLEET_SUBJECTS.inboxPrefix(s.hostId),
    reconnect: true,
    maxReconnectAttempts: -1,
    reconnectTimeWait: s.reconnectWaitMs,
    timeout: Math.max(s.requestTimeoutMs, 2000),
    pingInterval: 10_000,
    maxPingOut: 3,
  };
}
