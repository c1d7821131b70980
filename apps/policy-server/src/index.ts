export { createServer } from './server';
export type { StartedServer } from './server';
export { loadConfig } from './config/config';
export type { ServerConfig } from './config/config';
