export * from './common';
export * from './blocklists';
export * from './fleet';
export * from './rollouts';
export * from './events';
export * from './enrollment';
export * from './findings';
