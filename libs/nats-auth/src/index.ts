export {
  AUTH_FILES,
  NatsAuthError,
  addHost,
  authConfigFile,
  initAuth,
  listHosts,
  natsIncludeDirective,
  publicKeyOf,
  readSeed,
  removeHost,
  renderAuthConfig,
  writeAuthConfig,
} from './auth-dir';
export type { AddHostResult, HostKey, InitResult } from './auth-dir';
export {
  InvalidHostIdError,
  SERVER_PERMISSIONS,
  assertHostId,
  hostEventsPublish,
  hostInboxPrefix,
  hostPermissions,
  renderAuthorization,
} from './render';
export type { AuthUsers, Permissions } from './render';
export { natsConnectOptions, natsTlsOptions, readCreds } from './connect';
export type { NatsAuthOptions, NatsCredentialSource } from './connect';
export {
  CGFENCE_ACCOUNT_NAME,
  JWT_FILES,
  assertUserPublicKey,
  decodeJwt,
  formatCreds,
  initJwtAuth,
  issueHostJwt,
  loadJwtIssuer,
  newUserKey,
  renderResolverConfig,
  revokedAccountJwt,
} from './jwt-dir';
export type { JwtInitResult, JwtIssuer, KeyPair } from './jwt-dir';
export { ACCOUNT_JWT_LOCK, CLAIMS_UPDATE_SUBJECT, lookupAccountJwt, pushAccountJwt, revokeUsers } from './jwt-push';
export { reloadNats } from './reload';
export { ROTATION_FILES, accountConnections, accountSigningKeys, beginAccountKeyRotation, credsIdentity, finishAccountKeyRotation, replaceCredsJwt, retiringSigningKey } from './jwt-rotate';
export type { AccountConnection, RotationBegun, RotationFinished } from './jwt-rotate';
export { migrateNkeysHosts } from './jwt-migrate';
export type { MigratedHost } from './jwt-migrate';
