import { Inject, Injectable, OnModuleInit } from '@nestjs/common';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { connect } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { issueHostJwt, JWT_FILES, loadJwtIssuer, natsConnectOptions, retiringSigningKey, revokeUsers, type JwtIssuer } from '@cgfence/nats-auth';
import { DomainError } from '../common/errors';
import { LOGGER } from '../common/logger';
import { SERVER_CONFIG, ServerConfig } from '../config/config';

/**
 * The policy server as the NATS account's issuer (JWT authorization): signs
 * enrolled hosts' user JWTs with the account signing key and pushes
 * revocations through the system account. Everything with a side effect
 * (key files, a NATS connection) is here, so the enrollment rules can be
 * tested without it.
 */
@Injectable()
export class NatsAuthority implements OnModuleInit {
  private issuer: JwtIssuer | undefined;
  /** Revocations read, change and write the account JWT: one at a time in this process. */
  private revocations: Promise<unknown> = Promise.resolve();

  constructor(
    @Inject(SERVER_CONFIG) private readonly config: ServerConfig,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  /** A bad JWT directory stops the server at boot, naming the file. */
  onModuleInit(): void {
    if (this.config.natsJwtDir !== undefined) this.load();
  }

  private load(): JwtIssuer {
    if (this.config.natsJwtDir === undefined) {
      throw new DomainError('enroll.not_configured', 'this policy server does not enroll hosts: set CGFENCE_NATS_JWT_DIR to the directory of `cgfence nats init-jwt`');
    }
    this.issuer ??= loadJwtIssuer(this.config.natsJwtDir);
    return this.issuer;
  }

  /** Fails with enroll.not_configured unless the server can issue credentials and hand out NATS URLs. */
  assertReady(): void {
    this.load();
    if (this.config.natsAdvertise.length === 0) {
      throw new DomainError('enroll.not_configured', 'this policy server has no NATS URL to hand to hosts: set CGFENCE_NATS_URL or CGFENCE_NATS_ADVERTISE');
    }
  }

  /**
   * During a signing key rotation (this server started between `rotate-account-key` and `--finish`): the key
   * being retired and the one that replaces it. Read once at start, like the issuer: a replica not restarted
   * since the rotation began renews nothing, so no host is handed a JWT of the old key.
   */
  rotation(): { retiring: string; current: string } | undefined {
    if (this.config.natsJwtDir === undefined) return undefined;
    const current = this.load().accountSigning.getPublicKey();
    if (this.retiring === null) this.retiring = retiringSigningKey(this.config.natsJwtDir);
    return this.retiring === undefined || this.retiring === current ? undefined : { retiring: this.retiring, current };
  }
  private retiring: string | undefined | null = null;

  issueHostJwt(hostId: string, natsPublicKey: string): Promise<string> {
    return issueHostJwt(this.load(), hostId, natsPublicKey);
  }

  /** The CA hosts verify the NATS servers with (PEM), when configured. */
  caPem(): string | null {
    return this.config.natsCaFile === undefined ? null : readFileSync(this.config.natsCaFile, 'utf8');
  }

  get advertisedServers(): string[] {
    return this.config.natsAdvertise;
  }

  /** Revokes user keys on every NATS server; nats-server disconnects them. Throws nats.unavailable if it could not. */
  revoke(keys: string[], at: Date): Promise<void> {
    const run = this.revocations.then(() => this.revokeNow(keys, at));
    this.revocations = run.catch(() => undefined);
    return run;
  }

  private async revokeNow(keys: string[], at: Date): Promise<void> {
    if (keys.length === 0) return;
    const issuer = this.load();
    if (this.config.natsUrl === undefined) throw new DomainError('nats.unavailable', 'CGFENCE_NATS_URL is not set: cannot push the revocation');
    const sysCreds = join(this.config.natsJwtDir!, JWT_FILES.sysCreds);
    let nc;
    try {
      nc = await connect({ servers: this.config.natsUrl.split(','), ...natsConnectOptions({ credsFile: sysCreds, caFile: this.config.natsCaFile }), name: 'cgfence-policy-server-revoke', timeout: 5000 });
      await revokeUsers(nc, issuer, keys, at);
      this.logger.info({ keys }, 'NATS user keys revoked');
    } catch (err) {
      throw new DomainError('nats.unavailable', `could not push the revocation to NATS (retry the removal): ${(err as Error).message}`);
    } finally {
      await nc?.close().catch(() => undefined);
    }
  }
}
