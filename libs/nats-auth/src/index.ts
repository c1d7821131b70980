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
export { natsConnectOptions } from './connect';
export type { NatsAuthOptions } from './connect';
export { reloadNats } from './reload';
