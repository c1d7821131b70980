// Decentralized JWT authorization (nats-server "operator mode"), kept in one
// directory, as the scalable replacement of auth.conf (auth-dir.ts):
//
//   <dir>/operator.nk           operator identity seed (0600): signs nothing day to day; keep a copy offline
//   <dir>/operator-signing.nk   operator signing key (0600): signs account JWTs (revocations)
//   <dir>/operator.jwt          operator JWT (lists the signing key and the system account)
//   <dir>/sys-account.nk        system account seed (0600)
//   <dir>/account.nk            the cgfence account's identity seed (0600)
//   <dir>/account-signing.nk    the account signing key (0600): signs every host's user JWT
//   <dir>/sys.jwt, account.jwt  the two accounts' JWTs (preloaded into the resolver)
//   <dir>/server.creds          the policy server's user (every subject of the cgfence account)
//   <dir>/sys.creds             a system-account user: pushes account updates (revocations)
//   <dir>/resolver.conf         nats-server include: operator, system account, full resolver, preload
//
// nats-server never lists hosts: a host presents a user JWT signed by the
// account signing key (issued at enrollment) and the server checks the chain
// operator → account → user. Adding a host needs no reload; removing one
// pushes a new account JWT with the host's key revoked, and every node of the
// cluster disconnects it (full resolvers share account updates).
import { createPrivateKey, sign as cryptoSign } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import {
  createAccount,
  createOperator,
  createUser,
  decode,
  encodeAccount,
  encodeOperator,
  encodeUser,
  fmtCreds,
  fromPublic,
  fromSeed,
  parseCreds,
  type Account,
  type KeyPair,
} from '@nats-io/jwt';
import { NatsAuthError } from './auth-dir';
import { hostPermissions, SERVER_PERMISSIONS, type Permissions } from './render';

export const JWT_FILES = {
  operatorSeed: 'operator.nk',
  operatorSigningSeed: 'operator-signing.nk',
  operatorJwt: 'operator.jwt',
  sysAccountSeed: 'sys-account.nk',
  sysAccountJwt: 'sys.jwt',
  accountSeed: 'account.nk',
  accountSigningSeed: 'account-signing.nk',
  accountJwt: 'account.jwt',
  serverCreds: 'server.creds',
  sysCreds: 'sys.creds',
  resolverConfig: 'resolver.conf',
} as const;

/** The account every cgfence client (server and hosts) lives in. */
export const CGFENCE_ACCOUNT_NAME = 'CGFENCE';

const text = (b: Uint8Array): string => new TextDecoder().decode(b);
const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);

function writeAtomic(file: string, content: string | Uint8Array, mode: number): void {
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, content, { mode });
  chmodSync(tmp, mode);
  renameSync(tmp, file);
}

function readText(file: string, what: string): string {
  try {
    return readFileSync(file, 'utf8').trim();
  } catch (err) {
    throw new NatsAuthError(`cannot read ${what} ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
}

/** The seed in `file`, checked to be of `prefix` (O operator, A account, U user). */
function readKey(file: string, prefix: 'O' | 'A' | 'U'): KeyPair {
  const seed = readText(file, 'nkey seed');
  let kp: KeyPair | undefined;
  try {
    kp = fromSeed(bytes(seed));
  } catch {
    kp = undefined;
  }
  if (kp === undefined || !kp.getPublicKey().startsWith(prefix)) {
    throw new NatsAuthError(`${file} does not hold an nkey ${{ O: 'operator', A: 'account', U: 'user' }[prefix]} seed (one line starting with "S${prefix}")`);
  }
  return kp;
}

function newKey(file: string, create: () => KeyPair): KeyPair {
  const kp = create();
  writeAtomic(file, `${text(kp.getSeed())}\n`, 0o600);
  return kp;
}

/**
 * Account limits, all written out: nats-server reads a limit missing from
 * an account JWT as 0 (no connection at all). No account-wide cap: the hosts'
 * number is the fleet's size, and sizes are capped per stream.
 */
const NO_LIMITS = { subs: -1, data: -1, payload: -1, imports: -1, exports: -1, wildcards: true, conn: -1, leaf: -1 } as const;
/** The cgfence account also gets JetStream (the fleet and events streams). */
const ACCOUNT_LIMITS: Account['limits'] = { ...NO_LIMITS, mem_storage: -1, disk_storage: -1, streams: -1, consumer: -1 };

const toJwtPermissions = (p: Permissions): { pub: { allow: string[] }; sub: { allow: string[] } } => ({
  pub: { allow: [...p.publish] },
  sub: { allow: [...p.subscribe] },
});

export interface JwtInitResult {
  dir: string;
  operatorPublicKey: string;
  accountPublicKey: string;
  serverCredsFile: string;
  resolverConfigFile: string;
  /** false when the directory already had an operator (kept). */
  created: boolean;
}

const path = (dir: string, f: keyof typeof JWT_FILES): string => join(resolve(dir), JWT_FILES[f]);

/**
 * Creates the operator, the system and cgfence accounts, their signing keys,
 * the policy server's and the system user's creds, and resolver.conf.
 * Idempotent: existing keys are kept (JWTs and creds are re-issued from them).
 */
export async function initJwtAuth(dir: string, opts: { resolverDir?: string } = {}): Promise<JwtInitResult> {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  const created = !existsSync(path(dir, 'operatorSeed'));
  const key = (f: keyof typeof JWT_FILES, prefix: 'O' | 'A', create: () => KeyPair): KeyPair =>
    existsSync(path(dir, f)) ? readKey(path(dir, f), prefix) : newKey(path(dir, f), create);
  const operator = key('operatorSeed', 'O', createOperator);
  const operatorSigning = key('operatorSigningSeed', 'O', createOperator);
  const sys = key('sysAccountSeed', 'A', createAccount);
  const account = key('accountSeed', 'A', createAccount);
  const accountSigning = key('accountSigningSeed', 'A', createAccount);

  const operatorJwt = await encodeOperator('cgfence', operator, {
    signing_keys: [operatorSigning.getPublicKey()],
    system_account: sys.getPublicKey(),
  });
  const sysJwt = await encodeAccount('SYS', sys, { limits: { ...NO_LIMITS } }, { signer: operatorSigning });
  // Keep the revocations of an account JWT already on disk: re-running init must not readmit removed hosts.
  let revocations: Record<string, number> | undefined;
  if (existsSync(path(dir, 'accountJwt'))) revocations = decode<Account>(readText(path(dir, 'accountJwt'), 'account JWT')).nats.revocations;
  const accountJwt = await encodeAccount(
    CGFENCE_ACCOUNT_NAME,
    account,
    { limits: ACCOUNT_LIMITS, signing_keys: [accountSigning.getPublicKey()], ...(revocations ? { revocations } : {}) },
    { signer: operatorSigning },
  );
  writeAtomic(path(dir, 'operatorJwt'), `${operatorJwt}\n`, 0o644);
  writeAtomic(path(dir, 'sysAccountJwt'), `${sysJwt}\n`, 0o644);
  writeAtomic(path(dir, 'accountJwt'), `${accountJwt}\n`, 0o644);

  const serverUser = existsSync(path(dir, 'serverCreds')) ? await credsKey(path(dir, 'serverCreds')) : createUser();
  const serverJwt = await encodeUser('cgfence-policy-server', serverUser, account.getPublicKey(), toJwtPermissions(SERVER_PERMISSIONS), {
    signer: accountSigning,
  });
  writeAtomic(path(dir, 'serverCreds'), fmtCreds(serverJwt, serverUser), 0o600);
  const sysUser = existsSync(path(dir, 'sysCreds')) ? await credsKey(path(dir, 'sysCreds')) : createUser();
  const sysUserJwt = await encodeUser('cgfence-system', sysUser, sys, {}, {});
  writeAtomic(path(dir, 'sysCreds'), fmtCreds(sysUserJwt, sysUser), 0o600);

  const resolverConfigFile = path(dir, 'resolverConfig');
  writeAtomic(resolverConfigFile, renderResolverConfig(dir, opts.resolverDir ?? join(resolve(dir), 'resolver')), 0o600);
  return {
    dir: resolve(dir),
    operatorPublicKey: operator.getPublicKey(),
    accountPublicKey: account.getPublicKey(),
    serverCredsFile: path(dir, 'serverCreds'),
    resolverConfigFile,
    created,
  };
}

async function credsKey(file: string): Promise<KeyPair> {
  try {
    // Untrimmed: the parser needs the newline after the last block.
    const { key } = await parseCreds(bytes(`${readText(file, 'creds file')}\n`));
    return fromSeed(bytes(key));
  } catch (err) {
    if (err instanceof NatsAuthError) throw err;
    throw new NatsAuthError(`${file} is not a NATS creds file (user JWT and seed): ${(err as Error).message}`);
  }
}

/**
 * The nats-server configuration for JWT authorization: the operator, the
 * system account, a full resolver storing account JWTs in `resolverDir` (one
 * per node), and both accounts preloaded. Hosts are never listed.
 */
export function renderResolverConfig(dir: string, resolverDir: string): string {
  const operatorJwt = readText(path(dir, 'operatorJwt'), 'operator JWT');
  const sysJwt = readText(path(dir, 'sysAccountJwt'), 'system account JWT');
  const accountJwt = readText(path(dir, 'accountJwt'), 'account JWT');
  const sysPub = decode(sysJwt).sub;
  return [
    `# Generated by cgfence from ${resolve(dir)} (cgfence nats init-jwt); do not edit.`,
    '# Hosts are not listed: they present user JWTs signed by the cgfence account signing key.',
    `operator: ${JSON.stringify(operatorJwt)}`,
    `system_account: ${JSON.stringify(sysPub)}`,
    'resolver: {',
    '  type: full',
    `  dir: ${JSON.stringify(resolve(resolverDir))}`,
    '  allow_delete: false',
    '  interval: "2m"',
    '  timeout: "1.9s"',
    '}',
    'resolver_preload: {',
    `  ${sysPub}: ${JSON.stringify(sysJwt)}`,
    `  ${decode(accountJwt).sub}: ${JSON.stringify(accountJwt)}`,
    '}',
    '',
  ].join('\n');
}

/** What the policy server needs to issue and revoke hosts' credentials. */
/** DER header of a PKCS#8 Ed25519 private key; the 32-byte seed follows it. */
const PKCS8_ED25519 = Buffer.from('302e020100300506032b657004220420', 'hex');

/**
 * The same key pair, signing through node:crypto. nkeys.js derives the key
 * pair from the seed in pure JavaScript on every call (getPublicKey, sign):
 * several scalar multiplications per JWT, about 200 ms on this loaded
 * machine. Ed25519 signatures are deterministic, so the bytes are the same
 * (the unit test compares them); @nats-io/jwt still builds and encodes the
 * claims. Falls back to the key pair as it is if nkeys.js stops exposing the
 * raw seed.
 */
export function nativeSigning(kp: KeyPair): KeyPair {
  const raw = (kp as Partial<{ getRawSeed(): Uint8Array }>).getRawSeed?.();
  if (!(raw instanceof Uint8Array) || raw.length !== 32) return kp;
  const key = createPrivateKey({ key: Buffer.concat([PKCS8_ED25519, raw]), format: 'der', type: 'pkcs8' });
  const publicKey = kp.getPublicKey();
  let privateKey: Uint8Array | undefined;
  const fast: KeyPair = Object.create(kp) as KeyPair;
  fast.getPublicKey = () => publicKey;
  fast.getPrivateKey = () => (privateKey ??= kp.getPrivateKey());
  fast.sign = (data: Uint8Array) => new Uint8Array(cryptoSign(null, data, key));
  return fast;
}

export interface JwtIssuer {
  accountPublicKey: string;
  accountSigning: KeyPair;
  operatorSigning: KeyPair;
  /** The system user's creds (JWT + seed), to push account updates. */
  sysCreds: Uint8Array;
  /** The operator JWT (hosts and tools can check the chain with it). */
  operatorJwt: string;
}

/** Reads the issuing keys of an initialised JWT directory; throws NatsAuthError naming the file. */
export function loadJwtIssuer(dir: string): JwtIssuer {
  if (!existsSync(path(dir, 'accountSigningSeed'))) {
    throw new NatsAuthError(`${dir} holds no JWT authorization (no ${JWT_FILES.accountSigningSeed}): run \`cgfence nats init-jwt --dir ${dir}\` first`);
  }
  return {
    accountPublicKey: decode(readText(path(dir, 'accountJwt'), 'account JWT')).sub,
    accountSigning: nativeSigning(readKey(path(dir, 'accountSigningSeed'), 'A')),
    operatorSigning: nativeSigning(readKey(path(dir, 'operatorSigningSeed'), 'O')),
    sysCreds: bytes(readText(path(dir, 'sysCreds'), 'system creds')),
    operatorJwt: readText(path(dir, 'operatorJwt'), 'operator JWT'),
  };
}

const USER_PUBLIC_KEY = /^U[A-Z2-7]{55}$/;

/** Throws NatsAuthError unless `key` is an nkey user public key. */
export function assertUserPublicKey(key: string): string {
  let ok = USER_PUBLIC_KEY.test(key);
  if (ok) {
    try {
      fromPublic(key);
    } catch {
      ok = false;
    }
  }
  if (!ok) throw new NatsAuthError(`${JSON.stringify(key.slice(0, 80))} is not an nkey user public key (U…, 56 characters)`);
  return key;
}

/**
 * A host's user JWT: subject its own public key (the seed never leaves the
 * host), issued by the cgfence account through its signing key, with exactly
 * the permissions of hostPermissions(hostId).
 */
export async function issueHostJwt(issuer: JwtIssuer, hostId: string, userPublicKey: string, opts: { expiresAt?: Date } = {}): Promise<string> {
  const permissions = hostPermissions(hostId);
  assertUserPublicKey(userPublicKey);
  return encodeUser(`host-${hostId}`, userPublicKey, issuer.accountPublicKey, toJwtPermissions(permissions), {
    signer: issuer.accountSigning,
    ...(opts.expiresAt ? { exp: Math.floor(opts.expiresAt.getTime() / 1000) } : {}),
  });
}

/** A creds file's text (user JWT + seed), as nats.js credsAuthenticator and the nats CLI read it. */
export function formatCreds(userJwt: string, user: KeyPair): string {
  return text(fmtCreds(userJwt, user));
}

/** The claims of a JWT, unchecked (for display and tests). */
export function decodeJwt<T = unknown>(jwt: string): ReturnType<typeof decode<T>> {
  return decode<T>(jwt);
}

/**
 * The account JWT with `userPublicKeys` revoked as of `at` (every JWT of
 * theirs issued up to then is refused), signed by the operator signing key.
 */
export async function revokedAccountJwt(issuer: JwtIssuer, currentAccountJwt: string, userPublicKeys: string[], at: Date): Promise<string> {
  const claims = decode<Account>(currentAccountJwt);
  if (claims.sub !== issuer.accountPublicKey) throw new NatsAuthError(`the account JWT is for ${claims.sub}, not the cgfence account ${issuer.accountPublicKey}`);
  const revocations = { ...(claims.nats.revocations ?? {}) };
  const seconds = Math.floor(at.getTime() / 1000);
  for (const k of userPublicKeys) revocations[assertUserPublicKey(k)] = seconds;
  const { type: _type, version: _version, ...rest } = claims.nats;
  return encodeAccount(claims.name, issuer.accountPublicKey, { ...rest, revocations }, { signer: issuer.operatorSigning });
}

/** A new user key pair for a host (its seed stays on the host). */
export const newUserKey = (): KeyPair => createUser();
export type { KeyPair };
