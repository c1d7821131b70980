import { createPrivateKey, createPublicKey, generateKeyPairSync, KeyObject } from 'node:crypto';
import { chmodSync, existsSync, linkSync, mkdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { keyIdOf } from '@cgfence/proto';

export interface SigningKey {
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
  readonly keyId: string;
  readonly publicPem: string;
  readonly file: string;
  /** True when this start created the key. */
  readonly created: boolean;
}

/**
 * The server's Ed25519 signing key: read from `file`, or created there (mode
 * 0600, public half next to it as .pub) when it does not exist yet. Replicas
 * must share one key file (or hold keys every agent trusts).
 */
export function loadOrCreateSigningKey(file: string): SigningKey {
  let created = false;
  if (!existsSync(file)) {
    mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
    const { privateKey } = generateKeyPairSync('ed25519');
    const tmp = `${file}.${process.pid}.tmp`;
    writeFileSync(tmp, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
    try {
      // link() fails if the file appeared meanwhile: a replica starting at the same moment won, keep its key.
      linkSync(tmp, file);
      created = true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    } finally {
      unlinkSync(tmp);
    }
  }
  const privateKey = createPrivateKey(readFileSync(file));
  if (privateKey.asymmetricKeyType !== 'ed25519') throw new Error(`${file}: the signing key must be Ed25519, got ${privateKey.asymmetricKeyType}`);
  chmodSync(file, 0o600);
  const publicKey = createPublicKey(privateKey);
  const publicPem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
  writeFileSync(`${file}.pub`, publicPem, { mode: 0o644 });
  return { privateKey, publicKey, keyId: keyIdOf(publicKey), publicPem, file, created };
}
