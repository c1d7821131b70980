import { Inject, Injectable } from '@nestjs/common';
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { ENROLL_TOKEN_PATTERN, ttlMs, type CreateEnrollTokenRequest, type EnrollRequest, type EnrollResponse, type EnrollTokenView } from '@cgfence/proto';
import { hashSecret } from '../auth/secrets';
import { Clock } from '../common/clock';
import { DomainError } from '../common/errors';
import { LOGGER } from '../common/logger';
import type { Actor } from '../common/request-context';
import { CommandHandler } from '../event-store/command-handler.service';
import { SIGNING_KEY } from '../fleet/fleet.tokens';
import type { SigningKey } from '../fleet/signing-key';
import { hostDecider, hostStreamOf } from '../hosts/host';
import { DataSource } from 'typeorm';
import { ACCOUNT_JWT_LOCK } from '@cgfence/nats-auth';
import { enrollTokenDecider, streamOfEnrollToken } from './enroll-token';
import { EnrollTokensReadModel } from './enroll-tokens.read-model';
import { NatsAuthority } from './nats-authority';

/** Enrollments with one token take turns (an advisory lock); should they still conflict on its stream, each retries this many times. */
const ENROLL_ATTEMPTS = 5;

/** Join tokens, host enrollment and removal. */
@Injectable()
export class EnrollmentService {
  constructor(
    private readonly db: DataSource,
    private readonly commands: CommandHandler,
    private readonly tokens: EnrollTokensReadModel,
    private readonly authority: NatsAuthority,
    private readonly clock: Clock,
    @Inject(SIGNING_KEY) private readonly signingKey: SigningKey,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  /** Issues a join token; the secret is returned once and never stored. */
  async createToken(req: CreateEnrollTokenRequest, actor: Actor): Promise<{ token: EnrollTokenView; secret: string }> {
    const tokenId = `enr_${randomBytes(8).toString('hex')}`;
    const secret = `cgfe_${tokenId}_${randomBytes(32).toString('base64url')}`;
    const labels = { ...(req.labels ?? {}), ...(req.cohort !== undefined ? { cohort: req.cohort } : {}) };
    if (req.labels?.cohort !== undefined && req.cohort !== undefined && req.labels.cohort !== req.cohort) {
      throw new DomainError('validation.failed', `cohort ${req.cohort} contradicts the label cohort=${req.labels.cohort}: give the cohort once`);
    }
    const now = this.clock.now();
    await this.commands.handle(
      streamOfEnrollToken(tokenId),
      enrollTokenDecider,
      { type: 'IssueEnrollToken', tokenId, secretHash: hashSecret(secret), labels, uses: req.uses, ttlMs: ttlMs(req.ttl)!, description: req.description ?? null, now },
      actor,
    );
    const token = await this.tokens.get(tokenId, now);
    if (!token) throw new Error(`enrollment token ${tokenId} missing from the read model after issue`);
    return { token, secret };
  }

  list(): Promise<EnrollTokenView[]> {
    return this.tokens.list(this.clock.now());
  }

  async revokeToken(tokenId: string, actor: Actor): Promise<void> {
    await this.commands.handle(streamOfEnrollToken(tokenId), enrollTokenDecider, { type: 'RevokeEnrollToken', tokenId, now: this.clock.now() }, actor);
  }

  /**
   * A new host enrolls: the token is used (one use, atomically with the
   * host's HostEnrolled event), and the host gets a user JWT for the public
   * key it sent (its seed never leaves it), the NATS URLs, CA and the bundle
   * signing key. Refusals are logged with the token id, never the secret.
   */
  async enroll(req: EnrollRequest, correlationId: string): Promise<EnrollResponse> {
    this.authority.assertReady();
    const m = ENROLL_TOKEN_PATTERN.exec(req.token);
    if (!m) throw new DomainError('enroll.token_refused', 'the enrollment token was refused: not a cgfence enrollment token (cgfe_…)');
    const tokenId = m[1]!;
    const secretHash = hashSecret(req.token);
    const actor: Actor = { actor: `enroll:${tokenId}`, correlationId };
    let labels: Record<string, string> = {};
    for (let attempt = 1; ; attempt++) {
      const now = this.clock.now();
      try {
        await this.db.transaction(async (tx) => {
          // Hosts of one autoscaling group enroll with one token at once: take turns on it
          // (a transaction lock) instead of failing on the stream's optimistic concurrency.
          await tx.query('select pg_advisory_xact_lock(hashtext($1))', [streamOfEnrollToken(tokenId)]);
          const used = await this.commands.handleIn(
            tx,
            streamOfEnrollToken(tokenId),
            enrollTokenDecider,
            { type: 'UseEnrollToken', tokenId, secretHash, hostId: req.hostId, natsPublicKey: req.natsPublicKey, now },
            actor,
          );
          labels = used.after.status === 'absent' ? {} : used.after.labels;
          await this.commands.handleIn(
            tx,
            hostStreamOf(req.hostId),
            hostDecider,
            { type: 'EnrollHost', hostId: req.hostId, natsPublicKey: req.natsPublicKey, tokenId, labels, now },
            actor,
          );
        });
        break;
      } catch (err) {
        if (err instanceof DomainError && err.code === 'stream.conflict' && attempt < ENROLL_ATTEMPTS) continue;
        if (err instanceof DomainError) this.logger.warn({ tokenId, hostId: req.hostId, code: err.code, reason: err.message, correlationId }, 'enrollment refused');
        throw err;
      }
    }
    this.logger.info({ tokenId, hostId: req.hostId, correlationId }, 'host enrolled');
    return {
      hostId: req.hostId,
      natsJwt: await this.authority.issueHostJwt(req.hostId, req.natsPublicKey),
      natsServers: this.authority.advertisedServers,
      natsCa: this.authority.caPem(),
      serverKeys: this.signingKey.publicPem,
      labels,
    };
  }

  /**
   * Records a NATS key a host had before enrollment (migrated from nkeys):
   * from then on the host's key like an enrolled one. The host id must be a
   * valid one (the route checks it); it need not have registered yet.
   */
  async adoptNatsKey(hostId: string, natsPublicKey: string, actor: Actor): Promise<{ hostId: string; natsKeys: string[]; adopted: boolean }> {
    const r = await this.commands.handle(hostStreamOf(hostId), hostDecider, { type: 'AdoptNatsKey', hostId, natsPublicKey, now: this.clock.now() }, actor);
    const adopted = r.events.length > 0;
    if (adopted) this.logger.info({ hostId, natsPublicKey }, 'NATS key adopted for a host migrated from nkeys');
    const natsKeys = adopted ? [...r.before.natsKeys, natsPublicKey] : r.before.natsKeys;
    return { hostId, natsKeys, adopted };
  }

  /** Removes a host: records it, then revokes its NATS keys (nats-server disconnects it at once). */
  async removeHost(hostId: string, actor: Actor): Promise<{ hostId: string; revokedKeys: string[] }> {
    const now = this.clock.now();
    const r = await this.commands.handle(hostStreamOf(hostId), hostDecider, { type: 'RemoveHost', hostId, now }, actor);
    // Asked again after a failed push, the removal pushes the revocations already recorded.
    const keys = r.events.length > 0 ? r.before.natsKeys : r.before.revokedKeys;
    // A revocation reads the account JWT from NATS, adds the keys and pushes it back: two replicas doing so at
    // once would lose one's keys (last write wins). Replicas share the database: they take turns on a lock there,
    // the one `cgfence nats rotate-account-key` takes too.
    if (keys.length > 0) {
      await this.db.transaction(async (tx) => {
        await tx.query('select pg_advisory_xact_lock(hashtext($1))', [ACCOUNT_JWT_LOCK]);
        await this.authority.revoke(keys, now);
      });
    }
    return { hostId, revokedKeys: keys };
  }
}
