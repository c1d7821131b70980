import { CallHandler, ExecutionContext, Injectable, NestInterceptor } from '@nestjs/common';
import type { Request, Response } from 'express';
import { Observable } from 'rxjs';
import { Metrics } from './metrics.service';

/** Counts and times every HTTP request by its route pattern (not its URL). */
@Injectable()
export class MetricsInterceptor implements NestInterceptor {
  constructor(private readonly metrics: Metrics) {}

  intercept(ctx: ExecutionContext, next: CallHandler): Observable<unknown> {
    // NATS handlers count themselves (cgfence_agent_messages_total).
    if (ctx.getType() !== 'http') return next.handle();
    const req = ctx.switchToHttp().getRequest<Request>();
    const res = ctx.switchToHttp().getResponse<Response>();
    const route = (req.route as { path?: string } | undefined)?.path ?? 'unknown';
    const stop = this.metrics.httpDuration.startTimer({ method: req.method, route });
    // Counted when the response is sent, so errors are counted with their real status.
    res.once('finish', () => {
      stop();
      this.metrics.httpRequests.inc({ method: req.method, route, status: String(res.statusCode) });
    });
    return next.handle();
  }
}
