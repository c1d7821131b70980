import { Injectable, NestMiddleware } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import type { NextFunction, Response } from 'express';
import type { CgfenceRequest } from './request-context';

const HEADER = 'x-correlation-id';
const SAFE = /^[A-Za-z0-9._:-]{1,100}$/;

/** Gives every request a correlation id (the caller's, if sane) and echoes it back. */
@Injectable()
export class CorrelationMiddleware implements NestMiddleware {
  use(req: CgfenceRequest, res: Response, next: NextFunction): void {
    const given = req.header(HEADER);
    req.correlationId = given && SAFE.test(given) ? given : randomUUID();
    res.setHeader(HEADER, req.correlationId);
    next();
  }
}
