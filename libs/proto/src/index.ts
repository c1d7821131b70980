export {};
export * from './api';
export * from './blocklist';
