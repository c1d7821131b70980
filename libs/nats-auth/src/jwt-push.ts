// Account updates through the system account: how a revocation reaches every
// nats-server of the cluster without a reload (full resolvers share them).
import type { NatsConnection } from '@nats-io/transport-node';
import { NatsAuthError } from './auth-dir';
import { revokedAccountJwt, type JwtIssuer } from './jwt-dir';

/**
 * The PostgreSQL advisory lock (hashtext of this name) every writer of the
 * account JWT holds while it reads, changes and pushes it: the policy
 * servers' host removals (revocations) and `cgfence nats rotate-account-key`.
 * Without it, two writers both read the same JWT and the last push drops the
 * other's change (a revocation, or a signing key).
 */
export const ACCOUNT_JWT_LOCK = 'cgfence.nats.account-jwt';

const lookupSubject = (account: string): string => `$SYS.REQ.ACCOUNT.${account}.CLAIMS.LOOKUP`;
export const CLAIMS_UPDATE_SUBJECT = '$SYS.REQ.CLAIMS.UPDATE';

/** The account JWT the resolver holds now. `sys` is a connection as the system user. */
export async function lookupAccountJwt(sys: NatsConnection, account: string, timeoutMs = 5000): Promise<string> {
  const reply = await sys.request(lookupSubject(account), '', { timeout: timeoutMs });
  const jwt = reply.string().trim();
  if (!/^[\w-]+\.[\w-]+\.[\w-]+$/.test(jwt)) throw new NatsAuthError(`nats-server has no JWT for account ${account}: ${jwt.slice(0, 200)}`);
  return jwt;
}

/** Hands an account JWT to the resolver; throws NatsAuthError with nats-server's reason if refused. */
export async function pushAccountJwt(sys: NatsConnection, jwt: string, timeoutMs = 5000): Promise<void> {
  const reply = await sys.request(CLAIMS_UPDATE_SUBJECT, jwt, { timeout: timeoutMs });
  let body: { data?: { code?: number; message?: string }; error?: { code?: number; description?: string } };
  try {
    body = reply.json();
  } catch {
    throw new NatsAuthError(`unexpected reply to an account update: ${reply.string().slice(0, 200)}`);
  }
  if (body.error !== undefined || (body.data?.code !== undefined && body.data.code !== 200)) {
    throw new NatsAuthError(`nats-server refused the account update: ${body.error?.description ?? body.data?.message ?? reply.string()}`);
  }
}

/**
 * Revokes user keys: reads the account JWT from the resolver, adds the keys
 * to its revocations, signs it with the operator signing key and pushes it.
 * nats-server closes the revoked users' connections and refuses them after.
 * Two concurrent revocations may race (last write wins); the callers
 * serialise them (the policy server per process, and its replicas on a
 * PostgreSQL advisory lock, ACCOUNT_JWT_LOCK: enrollment.service.ts), and
 * `cgfence nats rotate-account-key`, which rewrites the same JWT, takes it too.
 */
export async function revokeUsers(sys: NatsConnection, issuer: JwtIssuer, userPublicKeys: string[], at: Date): Promise<string> {
  const current = await lookupAccountJwt(sys, issuer.accountPublicKey);
  const next = await revokedAccountJwt(issuer, current, userPublicKeys, at);
  await pushAccountJwt(sys, next);
  return next;
}
