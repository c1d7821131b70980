export * from './entries';
export { formatAddress, parseCidr } from './address';
export type { ParsedCidr, CidrResult } from './address';
export { canonicalDomain, canonicalWildcard, MAX_LABEL_LENGTH, MAX_NAME_LENGTH } from './domain';
export type { NameResult } from './domain';
