import { Body, Controller, Get, Inject, Param, Post, Query, Req, Res } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiTags } from '@nestjs/swagger';
import type { Response } from 'express';
import type { Logger } from 'pino';
import {
  AggregateView,
  AggregateViewSchema,
  EventsAggregateQuery,
  EventsPageSchema,
  EventsQuery,
  EventsSummaryQuery,
  EventsSummaryView,
  EventsSummaryViewSchema,
  ExportErrorRecord,
  IdParams,
  NameParams,
  ReplayRequest,
  ReplayView,
  ReplayViewSchema,
  RunsPage,
  RunsPageSchema,
  RunsQuery,
  RunView,
  RunViewSchema,
} from '@cgfence/proto';
import { RequireRole } from '../auth/roles';
import { Contract } from '../common/contract';
import { LOGGER } from '../common/logger';
import type { CgfenceRequest } from '../common/request-context';
import { EventsQueryService } from './events-query.service';

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
  @Contract({
    query: EventsQuery,
    responses: [
      {
        status: 200,
        json: EventsPageSchema,
        other: {
          'application/x-ndjson':
            'format=ndjson: one BlockEventView per line. If the export fails after it started, its last line is an ExportErrorRecord ({"error": {code, message, correlationId}}).',
          'text/csv': 'format=csv: a header line, then one line per event. If the export fails after it started, its last line is `#error,<code>,<correlation id>,<message>`.',
        },
      },
    ],
  })
  async list(@Query() q: EventsQuery, @Req() req: CgfenceRequest, @Res() res: Response): Promise<void> {
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
      this.logger.warn({ err: (err as Error).message, correlationId: req.correlationId }, 'block event export ended early');
      // The headers are out: end with a record a client can tell from data (documented in the OpenAPI document).
      const record: ExportErrorRecord = {
        error: { code: 'internal', message: 'the export failed before its end; the lines before this one are a prefix of the result', correlationId: req.correlationId ?? 'none' },
      };
      if (res.destroyed || res.writableEnded) return;
      res.end(format === 'csv' ? `#error,${record.error.code},${record.error.correlationId},${record.error.message}\r\n` : `${JSON.stringify(record)}\n`);
    }
  }

  @Get('events/aggregate')
  @ApiOperation({ summary: 'Counts of block events by domain, host, cohort, version, command or label:<key>, optionally per minute/hour/day' })
  @Contract({ query: EventsAggregateQuery, responses: [{ status: 200, json: AggregateViewSchema }] })
  aggregate(@Query() q: EventsAggregateQuery): Promise<AggregateView> {
    return this.events.aggregate(q);
  }

  @Get('events/summary')
  @ApiOperation({
    summary: "The History page's chart and top-N panels in one request: counts by action per bucket, top domains, hosts, commands and one label key",
    description:
      'Takes every filter of GET /events. Panels the hourly rollup can answer come from it; the others share one read of block_events, exact when the filter matches few events, else a page sample (each panel then says sampled).',
  })
  @Contract({ query: EventsSummaryQuery, responses: [{ status: 200, json: EventsSummaryViewSchema }] })
  summary(@Query() q: EventsSummaryQuery): Promise<EventsSummaryView> {
    return this.events.summary(q);
  }

  @Get('runs')
  @ApiOperation({
    summary: 'Runs the agents reported (finished runs), newest first: exit code, duration, block count, contacted-domain count',
    description: 'Filters: since (ISO time or 24h/7d back from now; default 24h), host, cohort, label=k=v (repeatable, all must match); limit (1-1000, default 100).',
  })
  @Contract({ query: RunsQuery, responses: [{ status: 200, json: RunsPageSchema }] })
  runs(@Query() q: RunsQuery): Promise<RunsPage> {
    return this.events.runs(q);
  }

  @Get('runs/:id')
  @ApiOperation({ summary: "A run: host, labels, start/end, exit code, its block events and the domains it contacted" })
  @Contract({ params: IdParams, responses: [{ status: 200, json: RunViewSchema }], errors: [404] })
  run(@Param('id') id: string): Promise<RunView> {
    return this.events.run(id);
  }

  @Post('blocklists/:name/replay')
  @ApiOperation({ summary: 'Which recorded run domains a version would have blocked, per run and per host' })
  @Contract({ params: NameParams, body: { json: ReplayRequest }, responses: [{ status: 200, json: ReplayViewSchema }], errors: [404, 503] })
  replay(@Param('name') name: string, @Body() body: ReplayRequest): Promise<ReplayView> {
    return this.events.replay(name, body.version, body.since);
  }
}
