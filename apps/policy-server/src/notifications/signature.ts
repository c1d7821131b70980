import { createHmac, timingSafeEqual } from 'node:crypto';

/** Header names of a webhook delivery. */
export const HEADERS = {
  delivery: 'cgfence-delivery',
  timestamp: 'cgfence-timestamp',
  signature: 'cgfence-signature',
  trigger: 'cgfence-trigger',
} as const;

/**
 * The signature of a delivery: HMAC-SHA256, keyed with the target's secret,
 * over `<delivery id>.<unix seconds>.<body>`, hex, prefixed `v1=`. The id
 * and the time are inside what is signed, so neither can be swapped.
 */
export function signDelivery(secret: string, deliveryId: string, timestamp: number, body: string): string {
  return `v1=${createHmac('sha256', secret).update(`${deliveryId}.${timestamp}.${body}`).digest('hex')}`;
}

/**
 * What a receiver does (and the tests do): recompute, compare in constant
 * time, and refuse a timestamp further than `toleranceS` from now.
 */
export function verifyDelivery(
  secret: string,
  headers: { delivery?: string; timestamp?: string; signature?: string },
  body: string,
  nowS = Math.floor(Date.now() / 1000),
  toleranceS = 300,
): boolean {
  const ts = Number(headers.timestamp);
  if (!headers.delivery || !headers.signature || !Number.isInteger(ts) || Math.abs(nowS - ts) > toleranceS) return false;
  const want = Buffer.from(signDelivery(secret, headers.delivery, ts, body));
  const got = Buffer.from(headers.signature);
  return want.length === got.length && timingSafeEqual(want, got);
}
