import { Observable, throwError } from 'rxjs';
import { ArgumentsHost, Catch, ExceptionFilter, HttpException, Inject, NotFoundException } from '@nestjs/common';
import type { Response } from 'express';
import type { Logger } from 'pino';
import type { ErrorBody } from '@cgfence/proto';
import { DomainError, ErrorCode } from './errors';
import { LOGGER } from './logger';
import type { RouteTable } from './openapi';
import type { CgfenceRequest } from './request-context';

/** HTTP status for each domain error code. */
export function httpStatusOf(code: ErrorCode): number {
  switch (code) {
    case 'validation.failed':
    case 'request.malformed':
    case 'entries.invalid':
    case 'entries.too_many':
    case 'rollout.invalid_plan':
      return 400;
    case 'auth.missing_token':
    case 'auth.invalid_token':
      return 401;
    case 'auth.forbidden':
    case 'enroll.token_refused':
      return 403;
    case 'blocklist.not_found':
    case 'version.not_found':
    case 'token.not_found':
    case 'host.not_found':
    case 'rollout.not_found':
    case 'run.not_found':
    case 'enroll.token_not_found':
    case 'finding.not_found':
    case 'owner.not_found':
    case 'delivery.not_found':
    case 'route.not_found':
      return 404;
    case 'request.method_not_allowed':
      return 405;
    case 'request.too_large':
      return 413;
    case 'request.unsupported_media_type':
      return 415;
    case 'blocklist.already_exists':
    case 'version.conflict':
    case 'stream.conflict':
    case 'fleet.rollback_required':
    case 'rollout.active_exists':
    case 'rollout.state_conflict':
    case 'rollout.stage_moved':
    case 'enroll.host_exists':
    case 'enroll.key_revoked':
    case 'finding.state_conflict':
      return 409;
    case 'enroll.not_configured':
    case 'nats.unavailable':
    case 'live.too_many_streams':
    case 'server.busy':
      return 503;
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
    const domain = this.toDomainError(err, req, res);
    let body: ErrorBody;
    if (domain) {
      body = { statusCode: httpStatusOf(domain.code), code: domain.code, message: domain.message, correlationId };
      if (domain.details !== undefined) body.details = domain.details;
    } else {
      this.logger.error({ err, correlationId, path: req.url }, 'unhandled error');
      body = { statusCode: 500, code: 'internal', message: `internal error (correlation id ${correlationId})`, correlationId };
    }
    if (res.headersSent) {
      // A streamed answer already started: the stream's owner writes its own error record; end it here.
      res.destroy();
      return;
    }
    // A body not read (refused before parsing: no token, too large, wrong type) is not read now either.
    if (!req.complete) res.setHeader('Connection', 'close');
    const retryAfter = retryAfterOf(domain);
    if (retryAfter !== undefined) res.setHeader('Retry-After', String(retryAfter));
    res.setHeader('Content-Type', 'application/json; charset=utf-8');
    res.status(body.statusCode).json(body);
  }

  /** Every error a client caused, as the domain error it is; undefined for a server fault (a 500). */
  private toDomainError(err: unknown, req: CgfenceRequest, res: Response): DomainError | undefined {
    if (err instanceof DomainError) return err;
    if (isBodyParserError(err)) return bodyParserError(err);
    if (err instanceof URIError) {
      // Express could not percent-decode a path segment.
      return new DomainError('validation.failed', `the path is not valid UTF-8 percent-encoding: ${err.message}`, [{ field: '(path)', reason: 'not valid UTF-8 percent-encoding' }]);
    }
    if (err instanceof NotFoundException && !req.route) {
      const allowed = allowedMethods(req);
      if (allowed.length > 0) {
        res.setHeader('Allow', allowed.join(', '));
        return new DomainError('request.method_not_allowed', `${req.method} is not allowed on ${req.path}; allowed: ${allowed.join(', ')}`, { allowed });
      }
      return new DomainError('route.not_found', `no route ${req.method} ${req.path}`);
    }
    if (err instanceof HttpException && err.getStatus() < 500) {
      // Raised by NestJS or Express itself (none of our handlers throws them).
      const status = err.getStatus();
      const code: ErrorCode = status === 413 ? 'request.too_large' : status === 415 ? 'request.unsupported_media_type' : status === 404 ? 'route.not_found' : 'request.malformed';
      return new DomainError(code, err.message);
    }
    return undefined;
  }
}

/** Seconds a refused client should wait (details.retryAfterSeconds of a 503 server.busy). */
function retryAfterOf(err: DomainError | undefined): number | undefined {
  if (err?.code !== 'server.busy') return undefined;
  const s = (err.details as { retryAfterSeconds?: unknown } | undefined)?.retryAfterSeconds;
  return typeof s === 'number' && Number.isInteger(s) && s > 0 ? s : 1;
}

interface BodyParserError {
  status: number;
  type: string;
  message: string;
}

function isBodyParserError(err: unknown): err is BodyParserError {
  return typeof err === 'object' && err !== null && typeof (err as { type?: unknown }).type === 'string' && typeof (err as { status?: unknown }).status === 'number';
}

/** body-parser's errors (https://github.com/expressjs/body-parser#errors) as documented codes. */
function bodyParserError(err: BodyParserError): DomainError {
  switch (err.type) {
    case 'entity.too.large':
      return new DomainError('request.too_large', `the request body is larger than this route accepts (${err.message})`);
    case 'encoding.unsupported':
    case 'charset.unsupported':
      return new DomainError('request.unsupported_media_type', err.message);
    case 'entity.parse.failed':
      return new DomainError('request.malformed', `the request body is not valid JSON: ${err.message}`);
    case 'encoding.invalid_utf8':
      return new DomainError('request.malformed', err.message);
    default:
      return new DomainError('request.malformed', `the request body could not be read: ${err.message}`);
  }
}

/** The methods the OpenAPI document lists for the request's path (none when no route matches it). */
function allowedMethods(req: CgfenceRequest): string[] {
  const routes = (req.app?.locals as { routes?: RouteTable } | undefined)?.routes;
  return routes ? routes.methodsFor(req.path) : [];
}
