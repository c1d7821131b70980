import { LoggerService } from '@nestjs/common';
import pino, { Logger } from 'pino';

export function createLogger(level: string): Logger {
  return pino({ level, base: { service: 'policy-server' } });
}

const ROUTINE_NATS_DISCONNECT = /^NatsError: type: "disconnect"\.?$/;

/**
 * Routes NestJS's own log calls into pino. Written by hand because the
 * nestjs-pino package needs Node 22; this adapter is the whole of what we use.
 */
export class PinoNestLogger implements LoggerService {
  constructor(private readonly logger: Logger) {}

  log(message: unknown, context?: string): void {
    this.logger.info({ context }, String(message));
  }
  error(message: unknown, trace?: string, context?: string): void {
    const text = String(message);
    // NestJS's NATS transport reports every disconnect as an error, also the
    // routine ones (a nats-server restart) it recovers from by itself; /ready
    // shows the NATS state. A warning, so alerts on errors stay meaningful.
    if (ROUTINE_NATS_DISCONNECT.test(text)) this.logger.warn({ context }, text);
    else this.logger.error({ context, trace }, text);
  }
  warn(message: unknown, context?: string): void {
    this.logger.warn({ context }, String(message));
  }
  debug(message: unknown, context?: string): void {
    this.logger.debug({ context }, String(message));
  }
  verbose(message: unknown, context?: string): void {
    this.logger.trace({ context }, String(message));
  }
}

export const LOGGER = Symbol('LOGGER');
