import { readFileSync } from 'node:fs';
import { credsAuthenticator, nkeyAuthenticator, type ConnectionOptions } from '@nats-io/transport-node';
import { NatsAuthError, readSeed } from './auth-dir';
import { assertHostId, hostInboxPrefix } from './render';

/** What a cgfence process adds to its NATS connect() options. */
export type NatsAuthOptions = Required<Pick<ConnectionOptions, 'authenticator' | 'name'>> & Pick<ConnectionOptions, 'inboxPrefix' | 'tls'>;

/** Where a process's NATS credentials and CA come from. One of seedFile (nkey) or credsFile (JWT). */
export interface NatsCredentialSource {
  seedFile?: string;
  credsFile?: string;
  hostId?: string;
  /** PEM CA bundle the NATS servers' certificates must chain to; set, the connection requires TLS. */
  caFile?: string;
}

const CREDS = /-----BEGIN NATS USER JWT-----\s*\S+\s*------END NATS USER JWT------[\s\S]*-----BEGIN USER NKEY SEED-----\s*SU[A-Z2-7]+\s*------END USER NKEY SEED------/;

/** The creds file's bytes, checked to hold a user JWT and a user seed; throws NatsAuthError naming the file. */
export function readCreds(file: string): Uint8Array {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new NatsAuthError(`cannot read NATS creds ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  if (!CREDS.test(text)) throw new NatsAuthError(`${file} is not a NATS creds file (a user JWT block and a user nkey seed block)`);
  return new TextEncoder().encode(text);
}

/** TLS options that verify the servers' certificates against the CA in `caFile` (read now: a bad file fails here). */
export function natsTlsOptions(caFile: string): NonNullable<ConnectionOptions['tls']> {
  let pem: string;
  try {
    pem = readFileSync(caFile, 'utf8');
  } catch (err) {
    throw new NatsAuthError(`cannot read the NATS CA ${caFile}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  if (!pem.includes('-----BEGIN CERTIFICATE-----')) throw new NatsAuthError(`${caFile} holds no PEM certificate (expected the CA that signed the NATS servers' certificates)`);
  return { ca: pem };
}

/**
 * Connect options for the policy server (no hostId) or host `hostId`: an
 * nkey (seedFile) or JWT (credsFile) authenticator, TLS verified against
 * caFile when given, and, for a host, the inbox prefix its permissions allow
 * (a host on the default `_INBOX.` prefix gets no replies). The file is read
 * now (a bad file fails here) and again on every reconnect, so rotated
 * credentials are picked up; if it cannot be read then, the last good one is used.
 */
export function natsConnectOptions(opts: NatsCredentialSource): NatsAuthOptions {
  let authenticator: NatsAuthOptions['authenticator'];
  if (opts.credsFile !== undefined) {
    if (opts.seedFile !== undefined) throw new NatsAuthError('give NATS credentials once: an nkey seed or a creds file, not both');
    const file = opts.credsFile;
    let creds = readCreds(file);
    authenticator = credsAuthenticator(() => {
      try {
        creds = readCreds(file);
      } catch {
        // keep the last good creds
      }
      return creds;
    });
  } else if (opts.seedFile !== undefined) {
    const file = opts.seedFile;
    let seed = readSeed(file);
    authenticator = nkeyAuthenticator(() => {
      try {
        seed = readSeed(file);
      } catch {
        // keep the last good seed
      }
      return seed;
    });
  } else {
    throw new NatsAuthError('no NATS credentials given (an nkey seed file or a creds file)');
  }
  const tls = opts.caFile === undefined ? {} : { tls: natsTlsOptions(opts.caFile) };
  if (opts.hostId === undefined) return { authenticator, name: 'cgfence-policy-server', ...tls };
  assertHostId(opts.hostId);
  return { authenticator, name: `cgfence-agent-${opts.hostId}`, inboxPrefix: hostInboxPrefix(opts.hostId), ...tls };
}
