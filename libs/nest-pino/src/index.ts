import type { LoggerService } from '@nestjs/common';
import type { Logger } from 'pino';

/**
 * The NATS transport's status lines that are routine: a disconnect it recovers
 * from by itself (a nats-server restart), a reconnect, a cluster update.
 */
const ROUTINE_NATS_STATUS = /^NatsError: type: "disconnect"\.?$|^NatsStatus: type: "(reconnect|update)"/;

export interface PinoNestLoggerOptions {
  /** The pino level of NestJS's `log()` lines (module and route chatter): the server keeps them at info, the agent at debug. */
  readonly nestLogLevel?: 'info' | 'debug';
}

/**
 * Routes NestJS's own log calls into pino, for the policy server and the host
 * agent. Written by hand: the nestjs-pino package needs Node 22, and this is
 * the whole of what we use. NestJS's NATS transport reports every disconnect
 * as an error, also the routine ones; those become warnings, so alerts on
 * errors stay meaningful (each app shows its NATS state elsewhere).
 */
export class PinoNestLogger implements LoggerService {
  private readonly nestLogLevel: 'info' | 'debug';

  constructor(
    private readonly logger: Logger,
    options: PinoNestLoggerOptions = {},
  ) {
    this.nestLogLevel = options.nestLogLevel ?? 'info';
  }

  log(message: unknown, context?: string): void {
    this.logger[this.nestLogLevel]({ context }, String(message));
  }
  error(message: unknown, trace?: string, context?: string): void {
    const text = message instanceof Error ? message.message : String(message);
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
