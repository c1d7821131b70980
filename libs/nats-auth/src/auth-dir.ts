// The NATS credentials of a cgfence deployment, kept in one directory:
//
//   <dir>/server.nk          the policy server's nkey seed (0600)
//   <dir>/hosts/<host>.nk    one seed per host (0600; hosts/ is 0700)
//   <dir>/auth.conf          the nats-server authorization block, generated
//
// The seeds are the truth: auth.conf is rewritten from them after every change,
// so it can always be regenerated and never needs editing. The directory itself
// is 0755 and auth.conf 0644 (public keys only) so a nats-server running as its
// own user can read auth.conf; the seeds stay root's.
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { createUser, fromSeed } from '@nats-io/nkeys';
import { assertHostId, renderAuthorization } from './render';

export const AUTH_FILES = {
  serverSeed: 'server.nk',
  hostsDir: 'hosts',
  authConfig: 'auth.conf',
} as const;

/** An expected failure (directory not initialised, unreadable seed...), with a message for people. */
export class NatsAuthError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NatsAuthError';
  }
}

export interface InitResult {
  dir: string;
  serverSeedFile: string;
  serverPublicKey: string;
  authFile: string;
  /** false when the directory already had a server key (kept). */
  created: boolean;
}

export interface HostKey {
  hostId: string;
  publicKey: string;
  seedFile: string;
}

export interface AddHostResult extends HostKey {
  /** true when a new key was written (a new host, or rotate). */
  created: boolean;
  rotated: boolean;
  authFile: string;
}

const serverSeedFile = (dir: string): string => join(dir, AUTH_FILES.serverSeed);
const hostsDir = (dir: string): string => join(dir, AUTH_FILES.hostsDir);
const hostSeedFile = (dir: string, hostId: string): string => join(hostsDir(dir), `${hostId}.nk`);
export const authConfigFile = (dir: string): string => join(resolve(dir), AUTH_FILES.authConfig);

const encoder = new TextEncoder();
const NKEY_SEED = /^S[A-Z2-7]{57}$/;

/** The nkey user seed in a file (one line, S…), checked; throws NatsAuthError naming the file. */
export function readSeed(file: string): Uint8Array {
  let text: string;
  try {
    text = readFileSync(file, 'utf8').trim();
  } catch (err) {
    throw new NatsAuthError(`cannot read nkey seed ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  const seed = encoder.encode(text);
  let publicKey: string | undefined;
  try {
    if (NKEY_SEED.test(text)) publicKey = fromSeed(seed).getPublicKey();
  } catch {
    publicKey = undefined;
  }
  if (publicKey === undefined || !publicKey.startsWith('U')) {
    throw new NatsAuthError(`${file} does not hold an nkey user seed (one line starting with "SU")`);
  }
  return seed;
}

/** The public key (U…) of a seed. */
export function publicKeyOf(seed: Uint8Array): string {
  return fromSeed(seed).getPublicKey();
}

/** Writes a file by rename, so readers never see half of it. */
function writeAtomic(file: string, text: string, mode: number): void {
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, text, { mode, flag: 'w' });
  chmodSync(tmp, mode);
  renameSync(tmp, file);
}

function newSeed(file: string): void {
  const kp = createUser();
  writeAtomic(file, `${new TextDecoder().decode(kp.getSeed())}\n`, 0o600);
  kp.clear();
}

function requireInitialised(dir: string): void {
  if (!existsSync(serverSeedFile(dir))) {
    throw new NatsAuthError(`${dir} holds no NATS credentials (no ${AUTH_FILES.serverSeed}): run \`cgfence nats init --dir ${dir}\` first`);
  }
}

/**
 * Creates the directory and the server key if missing, and (re)writes auth.conf.
 * Idempotent: an existing server key is kept.
 */
export function initAuth(dir: string): InitResult {
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  mkdirSync(hostsDir(dir), { recursive: true, mode: 0o700 });
  chmodSync(hostsDir(dir), 0o700);
  const seedFile = serverSeedFile(dir);
  const created = !existsSync(seedFile);
  if (created) newSeed(seedFile);
  const authFile = writeAuthConfig(dir);
  return { dir: resolve(dir), serverSeedFile: resolve(seedFile), serverPublicKey: publicKeyOf(readSeed(seedFile)), authFile, created };
}

/**
 * Gives a host a key (kept if it has one, replaced with `rotate`) and rewrites
 * auth.conf. nats-server sees the change on its next reload (see reloadNats).
 */
export function addHost(dir: string, hostId: string, opts: { rotate?: boolean } = {}): AddHostResult {
  assertHostId(hostId);
  requireInitialised(dir);
  mkdirSync(hostsDir(dir), { recursive: true, mode: 0o700 });
  const seedFile = hostSeedFile(dir, hostId);
  const existed = existsSync(seedFile);
  const created = !existed || opts.rotate === true;
  if (!created) readSeed(seedFile); // a damaged seed is reported, not silently replaced (rotate replaces it)
  if (created) newSeed(seedFile);
  const authFile = writeAuthConfig(dir);
  return {
    hostId,
    seedFile: resolve(seedFile),
    publicKey: publicKeyOf(readSeed(seedFile)),
    created,
    rotated: existed && created,
    authFile,
  };
}

/** Deletes a host's key and rewrites auth.conf; false if it had none. */
export function removeHost(dir: string, hostId: string): boolean {
  assertHostId(hostId);
  requireInitialised(dir);
  const seedFile = hostSeedFile(dir, hostId);
  const existed = existsSync(seedFile);
  rmSync(seedFile, { force: true });
  writeAuthConfig(dir);
  return existed;
}

/** The hosts with a key, sorted by id. */
export function listHosts(dir: string): HostKey[] {
  requireInitialised(dir);
  if (!existsSync(hostsDir(dir))) return [];
  return readdirSync(hostsDir(dir))
    .filter((f) => f.endsWith('.nk'))
    .map((f) => {
      const hostId = f.slice(0, -'.nk'.length);
      const seedFile = join(hostsDir(dir), f);
      try {
        assertHostId(hostId);
      } catch (err) {
        throw new NatsAuthError(`${seedFile}: the file name is not a host id: ${(err as Error).message}`);
      }
      return { hostId, publicKey: publicKeyOf(readSeed(seedFile)), seedFile: resolve(seedFile) };
    })
    .sort((a, b) => a.hostId.localeCompare(b.hostId));
}

/** The authorization block for the keys now on disk (what auth.conf holds). */
export function renderAuthConfig(dir: string): string {
  requireInitialised(dir);
  return renderAuthorization(
    {
      server: publicKeyOf(readSeed(serverSeedFile(dir))),
      hosts: listHosts(dir).map(({ hostId, publicKey }) => ({ hostId, publicKey })),
    },
    [
      `Generated by cgfence from the nkey seeds in ${resolve(dir)}; do not edit.`,
      '`cgfence nats init|add-host|remove-host` rewrite it; reload nats-server after a change.',
    ],
  );
}

/** Rewrites <dir>/auth.conf from the seeds; returns its absolute path. */
export function writeAuthConfig(dir: string): string {
  const file = authConfigFile(dir);
  writeAtomic(file, renderAuthConfig(dir), 0o644);
  return file;
}

/**
 * The line that includes auth.conf in a nats-server configuration file.
 * nats-server (2.9) joins an include path to the directory of the including
 * file even when it is absolute, so the path is written relative to it.
 */
export function natsIncludeDirective(dir: string, natsConfigFile: string): string {
  return `include ${JSON.stringify(relative(dirname(resolve(natsConfigFile)), authConfigFile(dir)))}`;
}
