// Ed25519 signatures over documents, with node:crypto. The signature covers
// the exact payload text, so nothing is re-serialised before it is checked.
import { createHash, createPublicKey, KeyObject, sign, verify } from 'node:crypto';
import type { z } from 'zod';
import type { SignedDocument } from './documents';

/** 'ed25519:' and the first 16 hex digits of the SHA-256 of the public key (SPKI DER). */
export function keyIdOf(key: KeyObject): string {
  const pub = key.type === 'private' ? createPublicKey(key) : key;
  const der = pub.export({ type: 'spki', format: 'der' });
  return `ed25519:${createHash('sha256').update(der).digest('hex').slice(0, 16)}`;
}

export function signDocument(doc: object, privateKey: KeyObject): SignedDocument {
  if (privateKey.asymmetricKeyType !== 'ed25519') throw new Error(`signing key must be Ed25519, got ${privateKey.asymmetricKeyType}`);
  const payload = JSON.stringify(doc);
  const signature = sign(null, Buffer.from(payload, 'utf8'), privateKey).toString('base64');
  return { payload, keyId: keyIdOf(privateKey), signature };
}

/** Why a document was refused; the agent reports these words. */
export type RejectReason =
  | 'unsigned'
  | 'bad-signature'
  | 'unknown-key'
  | 'malformed'
  | 'expired'
  | 'stale-revision'
  | 'older-version'
  | 'hash-mismatch';

export type Checked<T> = { ok: true; value: T } | { ok: false; reason: RejectReason; message: string };

export function reject<T>(reason: RejectReason, message: string): Checked<T> {
  return { ok: false, reason, message };
}

/** Public keys (one or more PEM blocks) as a keyring by key id. */
export function parsePublicKeys(pem: string): Map<string, KeyObject> {
  const blocks = pem.match(/-----BEGIN PUBLIC KEY-----[\s\S]+?-----END PUBLIC KEY-----/g) ?? [];
  if (blocks.length === 0) throw new Error('no "BEGIN PUBLIC KEY" block found');
  const ring = new Map<string, KeyObject>();
  for (const block of blocks) {
    const key = createPublicKey(block);
    if (key.asymmetricKeyType !== 'ed25519') throw new Error(`public key must be Ed25519, got ${key.asymmetricKeyType}`);
    ring.set(keyIdOf(key), key);
  }
  return ring;
}

/**
 * Checks the signature against the keyring, then the payload against the
 * schema. Unsigned means no signature at all; a signature by a key not in the
 * ring is unknown-key; a signature that does not verify is bad-signature.
 */
export function openDocument<S extends z.ZodType>(doc: unknown, ring: ReadonlyMap<string, KeyObject>, schema: S): Checked<z.infer<S>> {
  if (typeof doc !== 'object' || doc === null) return reject('unsigned', 'not a signed document');
  const d = doc as Partial<SignedDocument>;
  if (typeof d.payload !== 'string') return reject('malformed', 'signed document without a payload');
  if (typeof d.signature !== 'string' || d.signature === '' || typeof d.keyId !== 'string' || d.keyId === '') {
    return reject('unsigned', 'document carries no signature');
  }
  const key = ring.get(d.keyId);
  if (!key) return reject('unknown-key', `signed by key ${d.keyId}, which this agent does not trust (trusted: ${[...ring.keys()].join(', ') || 'none'})`);
  let good = false;
  try {
    good = verify(null, Buffer.from(d.payload, 'utf8'), key, Buffer.from(d.signature, 'base64'));
  } catch {
    good = false;
  }
  if (!good) return reject('bad-signature', `signature does not verify with key ${d.keyId}: the document was altered or signed by someone else`);
  let json: unknown;
  try {
    json = JSON.parse(d.payload);
  } catch (err) {
    return reject('malformed', `payload is not JSON: ${(err as Error).message}`);
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) return reject('malformed', `payload does not match the schema: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  return { ok: true, value: parsed.data };
}
