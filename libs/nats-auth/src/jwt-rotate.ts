// Rotating the cgfence account's signing key (the key that signs every
// host's user JWT), in two steps with the fleet connected throughout:
//
//   begin   a new signing key is added to the account JWT beside the old one
//           (pushed to every node through the system account); the new key
//           becomes account-signing.nk, the old one account-signing.retiring.nk;
//           the policy server's creds are re-issued with the new key. Every
//           JWT signed by either key is valid. Policy servers restarted on the
//           new key issue new enrollments with it, and hand each connected
//           host a JWT signed by it at the host's next sync (the host writes
//           it to its creds file; NATS clients read that file on every reconnect).
//   finish  once no connection still presents a JWT signed by the old key
//           (asked of every node, through the system account), the old key is
//           removed from the account JWT and its seed deleted. A host that was
//           offline the whole time must enroll again.
//
// Both steps keep the account JWT's revocations: they start from the JWT the
// resolver holds, not from the file on disk.
import { chmodSync, existsSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createAccount, decode, encodeAccount, encodeUser, fmtCreds, fromSeed, parseCreds, type Account, type KeyPair } from '@nats-io/jwt';
import type { NatsConnection } from '@nats-io/transport-node';
import { NatsAuthError } from './auth-dir';
import { JWT_FILES, loadJwtIssuer } from './jwt-dir';
import { lookupAccountJwt, pushAccountJwt } from './jwt-push';
import { SERVER_PERMISSIONS } from './render';

export const ROTATION_FILES = {
  /** The old signing key, kept (and still trusted) until `finish`. */
  retiringSeed: 'account-signing.retiring.nk',
  /** A new key made by a `begin` that has not completed yet; the next `begin` goes on with it. */
  nextSeed: 'account-signing.next.nk',
} as const;

const text = (b: Uint8Array): string => new TextDecoder().decode(b);
const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);
const file = (dir: string, name: string): string => join(resolve(dir), name);

function writeAtomic(path: string, content: string | Uint8Array, mode: number): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, content, { mode });
  chmodSync(tmp, mode);
  renameSync(tmp, path);
}

function readAccountSeed(path: string): KeyPair {
  let kp: KeyPair | undefined;
  try {
    kp = fromSeed(bytes(readFileSync(path, 'utf8').trim()));
  } catch {
    kp = undefined;
  }
  if (kp === undefined || !kp.getPublicKey().startsWith('A')) throw new NatsAuthError(`${path} does not hold an nkey account seed (one line starting with "SA")`);
  return kp;
}

/** The account JWT with `signingKeys` as its signing keys (all else, revocations included, kept), signed by the operator signing key. */
async function withSigningKeys(dir: string, current: string, signingKeys: string[]): Promise<string> {
  const issuer = loadJwtIssuer(dir);
  const claims = decode<Account>(current);
  if (claims.sub !== issuer.accountPublicKey) throw new NatsAuthError(`the resolver's account JWT is for ${claims.sub}, not the cgfence account ${issuer.accountPublicKey}`);
  const { type: _type, version: _version, ...rest } = claims.nats;
  return encodeAccount(claims.name, issuer.accountPublicKey, { ...rest, signing_keys: signingKeys }, { signer: issuer.operatorSigning });
}

/** Signing keys of an account JWT (plain keys or scoped ones). */
export function accountSigningKeys(accountJwt: string): string[] {
  return (decode<Account>(accountJwt).nats.signing_keys ?? []).map((k) => (typeof k === 'string' ? k : (k as { key: string }).key));
}

export interface RotationBegun {
  previousKey: string;
  newKey: string;
  /** The account's signing keys now (both). */
  signingKeys: string[];
  serverCredsFile: string;
}

/**
 * Step one: adds a new account signing key beside the current one, on the
 * NATS servers (through `sys`, a system-account connection) and in `dir`.
 * Refuses while a rotation is under way (finish it first).
 */
export async function beginAccountKeyRotation(dir: string, sys: NatsConnection): Promise<RotationBegun> {
  if (existsSync(file(dir, ROTATION_FILES.retiringSeed))) {
    throw new NatsAuthError(`a rotation is under way (${ROTATION_FILES.retiringSeed} exists): finish it first (cgfence nats rotate-account-key --finish)`);
  }
  const issuer = loadJwtIssuer(dir);
  const previousKey = issuer.accountSigning.getPublicKey();
  const nextFile = file(dir, ROTATION_FILES.nextSeed);
  const next = existsSync(nextFile) ? readAccountSeed(nextFile) : createAccount();
  if (!existsSync(nextFile)) writeAtomic(nextFile, `${text(next.getSeed())}\n`, 0o600);
  const newKey = next.getPublicKey();

  const current = await lookupAccountJwt(sys, issuer.accountPublicKey);
  const signingKeys = [...new Set([...accountSigningKeys(current), previousKey, newKey])];
  const updated = await withSigningKeys(dir, current, signingKeys);
  await pushAccountJwt(sys, updated);
  writeAtomic(file(dir, JWT_FILES.accountJwt), `${updated}\n`, 0o644);
  // Only now that every node trusts the new key does it sign anything.
  renameSync(file(dir, JWT_FILES.accountSigningSeed), file(dir, ROTATION_FILES.retiringSeed));
  renameSync(nextFile, file(dir, JWT_FILES.accountSigningSeed));
  const serverCredsFile = await reissueServerCreds(dir, next);
  return { previousKey, newKey, signingKeys, serverCredsFile };
}

/** The policy server's creds, same user key, signed by `signer`. */
async function reissueServerCreds(dir: string, signer: KeyPair): Promise<string> {
  const credsFile = file(dir, JWT_FILES.serverCreds);
  const { key } = await parseCreds(bytes(`${readFileSync(credsFile, 'utf8').trim()}\n`));
  const user = fromSeed(bytes(key));
  const issuer = loadJwtIssuer(dir);
  const jwt = await encodeUser('cgfence-policy-server', user, issuer.accountPublicKey, { pub: { allow: [...SERVER_PERMISSIONS.publish] }, sub: { allow: [...SERVER_PERMISSIONS.subscribe] } }, { signer });
  writeAtomic(credsFile, fmtCreds(jwt, user), 0o600);
  return credsFile;
}

/** One client connection to the cgfence account, as a node reports it. */
export interface AccountConnection {
  server: string;
  name: string;
  /** The user's public key. */
  user: string;
  /** The key that signed its JWT. */
  issuerKey: string;
}

/**
 * Every client connection of `account` on every node of the cluster (the
 * system account's CONNZ ping; every node answers within `waitMs`).
 */
export async function accountConnections(sys: NatsConnection, account: string, waitMs = 2000): Promise<AccountConnection[]> {
  const out: AccountConnection[] = [];
  const replies = await sys.requestMany('$SYS.REQ.SERVER.PING.CONNZ', JSON.stringify({ account, auth: true, limit: 100_000 }), { maxWait: waitMs });
  for await (const m of replies) {
    const body = m.json<{ server?: { name?: string }; data?: { connections?: { name?: string; authorized_user?: string; issuer_key?: string }[] } }>();
    for (const c of body.data?.connections ?? []) {
      out.push({ server: body.server?.name ?? '?', name: c.name ?? '', user: c.authorized_user ?? '', issuerKey: c.issuer_key ?? '' });
    }
  }
  return out;
}

export interface RotationFinished {
  removedKey: string;
  signingKeys: string[];
  /** Connections that still used the old key (and were cut off, with force). */
  stillOnOldKey: AccountConnection[];
}

/**
 * Step two: removes the old signing key. Refuses while a connection still
 * presents a JWT signed by it (listing them) unless `force`: nats-server
 * closes those connections and refuses their JWTs from then on.
 */
export async function finishAccountKeyRotation(dir: string, sys: NatsConnection, opts: { force?: boolean } = {}): Promise<RotationFinished> {
  const retiringFile = file(dir, ROTATION_FILES.retiringSeed);
  if (!existsSync(retiringFile)) throw new NatsAuthError(`no rotation is under way in ${dir} (no ${ROTATION_FILES.retiringSeed}): start one with cgfence nats rotate-account-key`);
  const removedKey = readAccountSeed(retiringFile).getPublicKey();
  const issuer = loadJwtIssuer(dir);
  const stillOnOldKey = (await accountConnections(sys, issuer.accountPublicKey)).filter((c) => c.issuerKey === removedKey);
  if (stillOnOldKey.length > 0 && opts.force !== true) {
    const names = stillOnOldKey.slice(0, 20).map((c) => `${c.name || c.user} (on ${c.server})`);
    throw new NatsAuthError(
      `${stillOnOldKey.length} connection(s) still use a JWT signed by the old key: ${names.join(', ')}${stillOnOldKey.length > 20 ? ', …' : ''}; ` +
        'hosts pick up a new JWT at their next sync with a policy server restarted on the new key (wait a sync interval and retry), or pass --force to cut them off',
    );
  }
  const current = await lookupAccountJwt(sys, issuer.accountPublicKey);
  const signingKeys = accountSigningKeys(current).filter((k) => k !== removedKey);
  if (!signingKeys.includes(issuer.accountSigning.getPublicKey())) {
    throw new NatsAuthError(`the account JWT on the NATS servers does not list the current signing key ${issuer.accountSigning.getPublicKey()}: refusing to remove the old one`);
  }
  const updated = await withSigningKeys(dir, current, signingKeys);
  await pushAccountJwt(sys, updated);
  writeAtomic(file(dir, JWT_FILES.accountJwt), `${updated}\n`, 0o644);
  rmSync(retiringFile);
  return { removedKey, signingKeys, stillOnOldKey };
}

/** Whose a creds file is (the user key) and who signed its JWT (the issuer key). Throws NatsAuthError naming the file. */
export async function credsIdentity(credsFile: string): Promise<{ user: string; issuer: string }> {
  let jwt: string;
  try {
    ({ jwt } = await parseCreds(bytes(`${readFileSync(credsFile, 'utf8').trim()}\n`)));
    // The JWT's subject, not the seed: deriving the key from the seed costs ~100 ms of pure JavaScript (nkeys.js).
    const claims = decode(jwt);
    return { user: claims.sub, issuer: claims.iss };
  } catch (err) {
    throw new NatsAuthError(`${credsFile} is not a NATS creds file: ${(err as Error).message}`);
  }
}

/**
 * Replaces the JWT of a creds file (same seed, same mode 0600), atomically.
 * Refuses a JWT that is not a user JWT for the file's own key.
 */
export async function replaceCredsJwt(credsFile: string, jwt: string): Promise<void> {
  const { key: seed } = await parseCreds(bytes(`${readFileSync(credsFile, 'utf8').trim()}\n`));
  const user = fromSeed(bytes(seed));
  let sub: string;
  try {
    sub = decode(jwt).sub;
  } catch (err) {
    throw new NatsAuthError(`the new NATS JWT does not decode: ${(err as Error).message}`);
  }
  if (sub !== user.getPublicKey()) throw new NatsAuthError(`the new NATS JWT is for ${sub}, not this host's key ${user.getPublicKey()}`);
  writeAtomic(credsFile, fmtCreds(jwt, user), 0o600);
}

/** The public key of the signing key a rotation is retiring (between begin and finish), if any. */
export function retiringSigningKey(dir: string): string | undefined {
  const f = file(dir, ROTATION_FILES.retiringSeed);
  return existsSync(f) ? readAccountSeed(f).getPublicKey() : undefined;
}
