import type { LoggerService } from '@nestjs/common';
import type { Logger } from 'pino';

const ROUTINE_NATS_STATUS = /^NatsError: type: "disconnect"\.?$|^NatsStatus: type: "(reconnect|update)"/;

/**
 * Routes NestJS's own log lines into the agent's pino logger (the policy
 * server has the same small adapter: the nestjs-pino package needs Node 22).
 * Nest's own chatter (modules initialised, routes) is debug, not info.
 */
export class PinoNestLogger implements LoggerService {
  constructor(private readonly logger: Logger) {}

  log(message: unknown, context?: string): void {
    this.logger.debug({ context }, String(message));
  }
  error(message: unknown, trace?: string, context?: string): void {
    const text = message instanceof Error ? message.message : String(message);
    // The NATS transport reports every disconnect as an error, also a routine
    // nats-server restart it recovers from; the fleet link logs those itself.
    if (ROUTINE_NATS_STATUS.test(text)) this.logger.warn({ context }, text);
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
