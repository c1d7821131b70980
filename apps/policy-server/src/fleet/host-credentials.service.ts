import { Inject, Injectable } from '@nestjs/common';
import type { Logger } from 'pino';
import type { SyncRequest } from '@cgfence/proto';
import { LOGGER } from '../common/logger';
import { NatsAuthority } from '../enrollment/nats-authority';
import { EventStore } from '../event-store/event-store.service';
import { evolveHost, hostStreamOf, initialHostState, type HostEvent } from '../hosts/host';

/**
 * Hands hosts a new NATS user JWT during an account signing key rotation
 * (issue 17; `cgfence nats rotate-account-key`): a host syncing with a JWT
 * signed by the key being retired gets a JWT for the same user key, signed by
 * the new one, if that key was enrolled for that host (or adopted from nkeys) and not revoked. The sync arrives on the host's own subject, which only the host's
 * credentials may publish to; the JWT is useless without the host's seed.
 */
@Injectable()
export class HostCredentialsService {
  constructor(
    private readonly authority: NatsAuthority,
    private readonly store: EventStore,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  /** A renewed JWT for the host's key, or undefined (nothing to renew, or not this host's enrolled key). */
  async renewed(hostId: string, nats: SyncRequest['nats']): Promise<string | undefined> {
    if (nats === undefined) return undefined;
    // Only from the key being retired to the one this server signs with: never back, never sideways.
    const rotation = this.authority.rotation();
    if (rotation === undefined || nats.issuer !== rotation.retiring) return undefined;
    const current = rotation.current;
    const state = (await this.store.readStream(hostStreamOf(hostId))).reduce((s, e) => evolveHost(s, e as unknown as HostEvent), initialHostState);
    if (!state.natsKeys.includes(nats.user) || state.revokedKeys.includes(nats.user)) {
      this.logger.warn({ hostId, user: nats.user }, 'a host asked for a renewed NATS JWT for a key not recorded for it (not enrolled nor adopted from nkeys, or revoked); not renewed');
      return undefined;
    }
    const jwt = await this.authority.issueHostJwt(hostId, nats.user);
    this.logger.info({ hostId, previousIssuer: nats.issuer, issuer: current }, 'renewed a host NATS JWT (signing key rotation)');
    return jwt;
  }
}
