// The fleet link's NATS connection options, built in this one place: servers,
// this host's credentials (nkey seed or enrollment creds → authenticator, CA for TLS, name, the inbox prefix
// its permissions allow), reconnect and ping settings. The Nest NATS client
// (requests, reports) and the broadcast transport share the connection made
// from them; JetStream publishes of the event spool ride on it too.
import type { NodeConnectionOptions } from '@nats-io/transport-node';
import { natsConnectOptions, natsTlsOptions } from '@cgfence/nats-auth';
import { FLEET_SUBJECTS } from '@cgfence/proto';

export interface FleetNatsSettings {
  readonly servers: readonly string[];
  readonly hostId: string;
  /** nkey seed file; without one (and no credsFile) the agent connects without authentication. */
  readonly seedFile?: string;
  /** NATS creds file (user JWT + seed, from enrollment; issue 17); not with seedFile. */
  readonly credsFile?: string;
  /** PEM CA the NATS servers' certificates must chain to; set, the connection uses TLS. */
  readonly caFile?: string;
  readonly reconnectWaitMs: number;
  readonly requestTimeoutMs: number;
}

/**
 * Credentials and TLS of the agent's NATS connection: an nkey seed or an
 * enrollment's creds file, and the CA; the name alone without credentials.
 */
export function fleetAuthOptions(o: { hostId: string; seedFile?: string; credsFile?: string; caFile?: string }): Partial<NodeConnectionOptions> {
  if (o.seedFile === undefined && o.credsFile === undefined) {
    return { name: `cgfence-agent-${o.hostId}`, ...(o.caFile === undefined ? {} : { tls: natsTlsOptions(o.caFile) }) };
  }
  return natsConnectOptions({ seedFile: o.seedFile, credsFile: o.credsFile, caFile: o.caFile, hostId: o.hostId });
}

export function fleetNatsOptions(s: FleetNatsSettings): NodeConnectionOptions {
  // A host's replies come back on its own inbox prefix (its permissions allow no other).
  const auth = fleetAuthOptions(s);
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
