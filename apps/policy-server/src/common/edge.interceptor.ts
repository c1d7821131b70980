import { CallHandler, ExecutionContext, Inject, Injectable, NestInterceptor } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { isUtf8 } from 'node:buffer';
import type { Request, RequestHandler, Response } from 'express';
import { json, raw, text } from 'express';
import { from, Observable, switchMap } from 'rxjs';
import { z } from 'zod';
import type { Problem } from '@cgfence/proto';
import { SERVER_CONFIG, ServerConfig } from '../config/config';
import { CONTRACT, RouteContract } from './contract';
import { badStrings, checkJsonBody, convert, mediaTypeOf, RawBody, parseQuery, problemsOf, QueryShape, queryShapeOf, typeProblems } from './edge';
import { DomainError } from './errors';

/** body-parser's error for bytes that are not UTF-8 (its verify hook throws it). */
class InvalidUtf8 extends Error {
  readonly status = 400;
  readonly type = 'encoding.invalid_utf8';
  constructor() {
    super('the request body is not valid UTF-8');
  }
}

const verify = (_req: unknown, _res: unknown, buf: Buffer): void => {
  if (!isUtf8(buf)) throw new InvalidUtf8();
};

/** A request carries a body (a length above 0, or chunked). */
function hasBody(req: Request): boolean {
  const len = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (len !== undefined && len !== '0');
}

function run(mw: RequestHandler, req: Request, res: Response): Promise<void> {
  return new Promise((resolve, reject) => mw(req, res, (err?: unknown) => (err ? reject(err) : resolve())));
}

/**
 * Runs after authentication, before the handler: reads the body (only now,
 * with the route's size limit), then validates path parameters, query and body
 * against the route's @Contract and hands the handler the parsed values. Any
 * problem is one 400 naming every bad field (413/415 for the body's size or
 * type), before any query runs and before any response byte is written.
 */
@Injectable()
export class EdgeInterceptor implements NestInterceptor {
  private readonly shapes = new WeakMap<RouteContract, { query: QueryShape; params: QueryShape }>();
  private readonly parsers: Record<'json' | 'jsonLarge' | 'raw' | 'text', RequestHandler>;

  constructor(
    private readonly reflector: Reflector,
    @Inject(SERVER_CONFIG) config: ServerConfig,
  ) {
    this.parsers = {
      json: json({ limit: config.maxBody, verify }),
      jsonLarge: json({ limit: config.maxCommitBody, verify }),
      text: text({ type: 'text/plain', limit: config.maxCommitBody, verify }),
      // Bytes as they came (UTF-8 is checked where they are decoded, on a worker thread).
      raw: raw({ type: ['application/json', 'text/plain'], limit: config.maxCommitBody }),
    };
  }

  intercept(ctx: ExecutionContext, next: CallHandler): Observable<unknown> {
    if (ctx.getType() !== 'http') return next.handle();
    const contract = this.reflector.get<RouteContract | undefined>(CONTRACT, ctx.getHandler());
    if (!contract) throw new Error(`route ${ctx.getClass().name}.${ctx.getHandler().name} has no @Contract`);
    const req = ctx.switchToHttp().getRequest<Request>();
    const res = ctx.switchToHttp().getResponse<Response>();
    return from(this.prepare(contract, req, res)).pipe(switchMap(() => next.handle()));
  }

  private async prepare(contract: RouteContract, req: Request, res: Response): Promise<void> {
    const problems: Problem[] = [];

    let shape = this.shapes.get(contract);
    if (!shape) this.shapes.set(contract, (shape = { query: queryShapeOf(contract.query), params: queryShapeOf(contract.params) }));

    // Path parameters (Express has percent-decoded them), converted like query values.
    const raw = req.params as Record<string, string>;
    problems.push(...badStrings(raw, 'path').map((p) => ({ ...p, field: p.field.replace(/^path\./, '') })));
    const params = Object.fromEntries(Object.entries(raw).map(([k, v]) => [k, convert(v, shape.params.fields.get(k)?.type)]));
    problems.push(...typeProblems(params));

    // Query string, from the raw URL: repeats and nesting are decided here, not by a generic parser.
    const q = req.originalUrl.indexOf('?');
    const query = parseQuery(q < 0 ? '' : req.originalUrl.slice(q + 1), shape.query);
    problems.push(...query.problems, ...typeProblems(query.value));
    problems.push(...badStrings(query.value, 'query').map((p) => ({ ...p, field: p.field.replace(/^query\./, '') })));

    const body = contract.body ? await this.readBody(contract, req, res) : undefined;
    if (!(body instanceof RawBody)) problems.push(...badStrings(body, '(body)').map((p) => ({ ...p, field: p.field.replace(/^\(body\)\./, '') })));
    if (problems.length > 0) throw invalid('request', problems);

    const parsedParams = contract.params ? contract.params.safeParse(params) : undefined;
    if (parsedParams && !parsedParams.success) throw invalid('path', problemsOf(parsedParams.error.issues, '(path)'));
    const parsedQuery = (contract.query ?? EMPTY_QUERY).safeParse(query.value);
    if (!parsedQuery.success) throw invalid('query', problemsOf(parsedQuery.error.issues, '(query)'));
    let parsedBody: unknown = body;
    if (contract.body && typeof body !== 'string' && !(body instanceof RawBody)) {
      if (!contract.body.json) throw new DomainError('request.unsupported_media_type', 'this route takes text/plain');
      const r = checkJsonBody(body, contract.body.json);
      if (!r.ok) throw new DomainError(r.code, r.message, r.problems);
      parsedBody = r.data;
    }

    if (parsedParams) req.params = parsedParams.data as Record<string, string>;
    Object.defineProperty(req, 'query', { value: parsedQuery.data, configurable: true, enumerable: true, writable: true });
    req.body = parsedBody;
  }

  /** The body as JSON (a value) or text (a string), read only now and only up to the route's limit. */
  private async readBody(contract: RouteContract, req: Request, res: Response): Promise<unknown> {
    const body = contract.body!;
    if (!hasBody(req)) return undefined;
    const media = mediaTypeOf(req.headers['content-type']);
    const accepted = [body.json ? 'application/json' : undefined, body.text ? 'text/plain' : undefined].filter((t) => t !== undefined);
    if (!media || !accepted.includes(media.type)) {
      throw new DomainError(
        'request.unsupported_media_type',
        `this route takes ${accepted.join(' or ')} bodies, got ${media ? media.type : 'no Content-Type'}`,
        { accepted },
      );
    }
    if (media.charset !== undefined && media.charset !== 'utf-8' && media.charset !== 'utf8') {
      throw new DomainError('request.unsupported_media_type', `bodies must be UTF-8, got charset ${media.charset}`);
    }
    if (body.offThread) {
      await run(this.parsers.raw, req, res);
      return new RawBody(media.type === 'application/json' ? 'json' : 'text', req.body as Buffer);
    }
    await run(media.type === 'text/plain' ? this.parsers.text : body.large ? this.parsers.jsonLarge : this.parsers.json, req, res);
    return req.body as unknown;
  }
}

const EMPTY_QUERY = z.object({}).strict();

function invalid(what: string, problems: Problem[]): DomainError {
  const summary = problems.map((p) => `${p.field}: ${p.reason}`).join('; ');
  return new DomainError('validation.failed', `invalid ${what}: ${summary}`, problems);
}
