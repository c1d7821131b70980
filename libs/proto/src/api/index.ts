export * from './blocklists';
