import { Observable, throwError } from 'rxjs';
import { ArgumentsHost, Catch, ExceptionFilter, HttpException, Inject } from '@nestjs/common';
import type { Response } from 'express';
import type { Logger } from 'pino';
import type { ErrorBody } from '@cgfence/proto';
import { DomainError, ErrorCode } from './errors';
import { LOGGER } from './logger';
import type { CgfenceRequest } from './request-context';

/** HTTP status for each domain error code. */
export function httpStatusOf(code: ErrorCode): number {
  switch (code) {
    case 'validation.failed':
    case 'entries.invalid':
    case 'entries.too_many':
    case 'rollout.invalid_plan':
      return 400;
    case 'auth.missing_token':
    case 'auth.invalid_token':
      return 401;
    case 'auth.forbidden':
      return 403;
    case 'blocklist.not_found':
    case 'version.not_found':
    case 'token.not_found':
    case 'host.not_found':
    case 'rollout.not_found':
    case 'run.not_found':
    case 'finding.not_found':
    case 'owner.not_found':
    case 'delivery.not_found':
      return 404;
    case 'blocklist.already_exists':
    case 'version.conflict':
    case 'stream.conflict':
    case 'fleet.rollback_required':
    case 'rollout.active_exists':
    case 'rollout.state_conflict':
    case 'rollout.stage_moved':
    case 'finding.state_conflict':
      return 409;
    default: {
      const unhandled: never = code;
      throw new Error(`no HTTP status for error code ${String(unhandled)}`);
    }
  }
}

/** One mapper from errors to HTTP responses; unknown errors are a logged 500. */
@Catch()
export class HttpErrorFilter implements ExceptionFilter {
  constructor(@Inject(LOGGER) private readonly logger: Logger) {}

  catch(err: unknown, host: ArgumentsHost): void | Observable<never> {
    if (host.getType() !== 'http') {
      // NATS request handlers: the agent gets the message as the reply's error.
      const message = err instanceof Error ? err.message : String(err);
      if (!(err instanceof DomainError)) this.logger.error({ err }, 'unhandled error in a NATS handler');
      return throwError(() => ({ status: 'error', message, code: err instanceof DomainError ? err.code : 'internal' }));
    }
    const http = host.switchToHttp();
    const req = http.getRequest<CgfenceRequest>();
    const res = http.getResponse<Response>();
    const correlationId = req.correlationId ?? 'none';
    let body: ErrorBody;
    if (err instanceof DomainError) {
      body = { statusCode: httpStatusOf(err.code), code: err.code, message: err.message, correlationId };
      if (err.details !== undefined) body.details = err.details;
    } else if (err instanceof HttpException) {
      const status = err.getStatus();
      body = { statusCode: status, code: `http.${status}`, message: err.message, correlationId };
    } else if (isBodyParserError(err)) {
      body = { statusCode: err.status, code: `http.${err.status}`, message: err.message, correlationId };
    } else {
      this.logger.error({ err, correlationId, path: req.url }, 'unhandled error');
      body = { statusCode: 500, code: 'internal', message: `internal error (correlation id ${correlationId})`, correlationId };
    }
    res.status(body.statusCode).json(body);
  }
}

function isBodyParserError(err: unknown): err is { status: number; message: string } {
  return typeof err === 'object' && err !== null && 'type' in err && typeof (err as { status?: unknown }).status === 'number';
}
