// Moving a fleet from nkeys (auth.conf lists every host's key; auth-dir.ts) to
// JWT authorization (jwt-dir.ts) without touching the hosts' keys: each host
// keeps the nkey it has, and gets a user JWT for it, signed by the account
// signing key, with exactly the permissions auth.conf gave it. The output is
// one creds file per host (JWT + the seed it already had), for
// `cgfence agent --nats-creds FILE` in place of `--nats-seed FILE`.
import { chmodSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fromSeed } from '@nats-io/jwt';
import { listHosts, readSeed } from './auth-dir';
import { formatCreds, issueHostJwt, loadJwtIssuer } from './jwt-dir';

export interface MigratedHost {
  hostId: string;
  publicKey: string;
  credsFile: string;
}

/**
 * Writes `<outDir>/<host>.creds` (0600; outDir 0700) for every host of the
 * nkeys directory `nkeysDir`, signed with the JWT directory `jwtDir`'s
 * account signing key. Idempotent: run again, it re-issues the same files.
 */
export async function migrateNkeysHosts(nkeysDir: string, jwtDir: string, outDir: string): Promise<MigratedHost[]> {
  const issuer = loadJwtIssuer(jwtDir);
  const hosts = listHosts(nkeysDir);
  mkdirSync(outDir, { recursive: true, mode: 0o700 });
  chmodSync(outDir, 0o700);
  const out: MigratedHost[] = [];
  for (const h of hosts) {
    const seed = readSeed(h.seedFile);
    const jwt = await issueHostJwt(issuer, h.hostId, h.publicKey);
    const credsFile = join(resolve(outDir), `${h.hostId}.creds`);
    const tmp = `${credsFile}.tmp-${process.pid}`;
    writeFileSync(tmp, formatCreds(jwt, fromSeed(seed)), { mode: 0o600 });
    chmodSync(tmp, 0o600);
    renameSync(tmp, credsFile);
    out.push({ hostId: h.hostId, publicKey: h.publicKey, credsFile });
  }
  return out;
}
