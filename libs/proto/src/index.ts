export {};
export * from './api';
export * from './blocklist';
export * from './agent';
export * from './fleet';
export * from './events';
export * from './redact';
