import { createHash, randomBytes } from 'node:crypto';

/** A new API token secret: a recognisable prefix and 256 random bits. */
export function newSecret(): string {
  return `cgf_${randomBytes(32).toString('base64url')}`;
}

export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}

export function newTokenId(): string {
  return `tok_${randomBytes(8).toString('hex')}`;
}
