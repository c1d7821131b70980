/** Injection token of the server's signing key (see signing-key.ts). */
export const SIGNING_KEY = Symbol('SIGNING_KEY');
