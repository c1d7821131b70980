import type { UpstreamRecords } from './loopback-upstream';

/** 24 TXT strings of 250 bytes: a 6 KiB answer, over the 4 KiB query buffers of the UDP core and the batched prototype. */
export const BIG_TXT = Array.from({ length: 24 }, (_, i) => String.fromCharCode(97 + i).repeat(250));

/**
 * What the loopback upstream answers in the tests of the UDP paths that
 * forward without the proxy's JavaScript: a chain to a listed name, a large
 * answer, a large answer reached by a chain, and one A record for the rest.
 */
export const coreRecords = (name: string): UpstreamRecords =>
  name === 'chain.allowed.test'
    ? { CNAME: 'x.bad.test' }
    : name === 'big.allowed.test'
      ? { TXT: BIG_TXT }
      : name === 'big-chain.allowed.test'
        ? { CNAME: 'big.allowed.test' }
        : { A: ['192.0.2.7'] };
