import pino, { Logger } from 'pino';

export function createLogger(level: string): Logger {
  return pino({ level, base: { service: 'policy-server' } });
}

export const LOGGER = Symbol('LOGGER');
