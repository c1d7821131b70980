import { nkeyAuthenticator, type ConnectionOptions } from '@nats-io/transport-node';
import { readSeed } from './auth-dir';
import { assertHostId, hostInboxPrefix } from './render';

/** What a cgfence process adds to its NATS connect() options. */
export type NatsAuthOptions = Required<Pick<ConnectionOptions, 'authenticator' | 'name'>> & Pick<ConnectionOptions, 'inboxPrefix'>;

/**
 * Connect options for the policy server (no hostId) or host `hostId`: an nkey
 * authenticator and, for a host, the inbox prefix its permissions allow (a host
 * on the default `_INBOX.` prefix gets no replies). The seed is read now (a bad
 * file fails here) and again on every reconnect, so a rotated key is picked up;
 * if the file cannot be read then, the last good seed is used.
 */
export function natsConnectOptions(opts: { seedFile: string; hostId?: string }): NatsAuthOptions {
  let seed = readSeed(opts.seedFile);
  const authenticator = nkeyAuthenticator(() => {
    try {
      seed = readSeed(opts.seedFile);
    } catch {
      // keep the last good seed
    }
    return seed;
  });
  if (opts.hostId === undefined) return { authenticator, name: 'cgfence-policy-server' };
  assertHostId(opts.hostId);
  return { authenticator, name: `cgfence-agent-${opts.hostId}`, inboxPrefix: hostInboxPrefix(opts.hostId) };
}
