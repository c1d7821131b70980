export * from './blocklists';
export * from './fleet';
