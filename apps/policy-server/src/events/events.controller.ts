import { Body, Controller, Get, Inject, Param, Post, Query, Res } from '@nestjs/common';
import { ApiBearerAuth, ApiBody, ApiOperation, ApiQuery, ApiTags } from '@nestjs/swagger';
import type { Response } from 'express';
import type { Logger } from 'pino';
import { AggregateView, EventsAggregateQuery, EventsQuery, ReplayRequest, ReplayView, RunsPage, RunsQuery, RunView } from '@cgfence/proto';
import { RequireRole } from '../auth/roles';
import { LOGGER } from '../common/logger';
import { toOpenApi } from '../common/openapi-schema';
import { ZodBodyPipe } from '../common/zod-body.pipe';
import { ZodQueryPipe } from '../common/zod-query.pipe';
import { EventsQueryService } from './events-query.service';

const FILTERS = ['from', 'to', 'host', 'cohort', 'run', 'label', 'domain', 'pid', 'cmd', 'action', 'method', 'blocklist', 'version'];
const FilterDocs = (): MethodDecorator => (target, key, desc) => {
  for (const name of FILTERS) ApiQuery({ name, required: false })(target, key, desc);
};

@ApiTags('events')
@ApiBearerAuth()
@RequireRole('viewer')
@Controller()
export class EventsController {
  constructor(
    private readonly events: EventsQueryService,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  @Get('events')
  @ApiOperation({
    summary: 'Block events, newest first',
    description:
      'Filters: from/to (ISO time or 24h/7d back from now; to is exclusive), host, cohort, run, label=k=v (repeatable), ' +
      'domain=exact.name or *.suffix, pid, cmd (substring of the command line), action, method, blocklist, version. ' +
      'Page with after=<next>. format=ndjson|csv streams the whole result set.',
  })
  @FilterDocs()
  @ApiQuery({ name: 'limit', required: false })
  @ApiQuery({ name: 'after', required: false })
  @ApiQuery({ name: 'format', required: false, enum: ['json', 'ndjson', 'csv'] })
  async list(@Query(new ZodQueryPipe(EventsQuery)) q: EventsQuery, @Res() res: Response): Promise<void> {
    const format = q.format ?? 'json';
    if (format === 'json') {
      res.json(await this.events.page(q));
      return;
    }
    res.status(200);
    res.setHeader('Content-Type', format === 'csv' ? 'text/csv; charset=utf-8' : 'application/x-ndjson');
    try {
      await this.events.export(q, format, res);
      res.end();
    } catch (err) {
      this.logger.warn({ err: (err as Error).message }, 'block event export ended early');
      res.destroy();
    }
  }

  @Get('events/aggregate')
  @ApiOperation({ summary: 'Counts of block events by domain, host, cohort, version, command or label:<key>, optionally per minute/hour/day' })
  @FilterDocs()
  @ApiQuery({ name: 'by', required: true })
  @ApiQuery({ name: 'bucket', required: false, enum: ['minute', 'hour', 'day'] })
  aggregate(@Query(new ZodQueryPipe(EventsAggregateQuery)) q: EventsAggregateQuery): Promise<AggregateView> {
    return this.events.aggregate(q);
  }

  @Get('runs')
  @ApiOperation({
    summary: 'Runs the agents reported (finished runs), newest first: exit code, duration, block count, contacted-domain count',
    description: 'Filters: since (ISO time or 24h/7d back from now; default 24h), host, cohort, label=k=v (repeatable, all must match); limit (1-1000, default 100).',
  })
  @ApiQuery({ name: 'since', required: false })
  @ApiQuery({ name: 'host', required: false })
  @ApiQuery({ name: 'cohort', required: false })
  @ApiQuery({ name: 'label', required: false })
  @ApiQuery({ name: 'limit', required: false })
  runs(@Query(new ZodQueryPipe(RunsQuery)) q: RunsQuery): Promise<RunsPage> {
    return this.events.runs(q);
  }

  @Get('runs/:id')
  @ApiOperation({ summary: "A run: host, labels, start/end, exit code, its block events and the domains it contacted" })
  run(@Param('id') id: string): Promise<RunView> {
    return this.events.run(id);
  }

  @Post('blocklists/:name/replay')
  @ApiOperation({ summary: 'Which recorded run domains a version would have blocked, per run and per host' })
  @ApiBody({ schema: toOpenApi(ReplayRequest) })
  replay(@Param('name') name: string, @Body(new ZodBodyPipe(ReplayRequest)) body: ReplayRequest): Promise<ReplayView> {
    return this.events.replay(name, body.version, body.since);
  }
}
