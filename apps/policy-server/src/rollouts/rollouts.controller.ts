import { Body, Controller, Get, Param, Post, Query, Req } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiTags } from '@nestjs/swagger';
import { z } from 'zod';
import {
  IdParams,
  RolloutActionRequest,
  RolloutHistoryEntry,
  RolloutHistoryEntrySchema,
  RolloutPlanSchema,
  RolloutsQuery,
  RolloutView,
  RolloutViewSchema,
} from '@cgfence/proto';
import { RequireRole } from '../auth/roles';
import { Contract } from '../common/contract';
import { actorOf, CgfenceRequest } from '../common/request-context';
import { RolloutsService } from './rollouts.service';

const action = (errors: (404 | 409)[]) =>
  Contract({ params: IdParams, body: { json: RolloutActionRequest }, responses: [{ status: 200, json: RolloutViewSchema }], errors: errors });

@ApiTags('rollouts')
@ApiBearerAuth()
@Controller('rollouts')
export class RolloutsController {
  constructor(private readonly rollouts: RolloutsService) {}

  @Post()
  @RequireRole('operator')
  @ApiOperation({
    summary: 'Start a staged rollout from a plan',
    description: 'The plan is validated against the fleet as it is: unknown fields, a missing version, or a stage that selects no host are refused before anything changes.',
  })
  @Contract({ body: { json: RolloutPlanSchema }, responses: [{ status: 201, json: RolloutViewSchema }], errors: [404, 409] })
  start(@Body() body: unknown, @Req() req: CgfenceRequest): Promise<RolloutView> {
    return this.rollouts.start(body, actorOf(req));
  }

  @Get()
  @ApiOperation({ summary: 'Rollouts, newest first' })
  @Contract({ query: RolloutsQuery, responses: [{ status: 200, json: z.array(RolloutViewSchema) }] })
  list(@Query() q: RolloutsQuery): Promise<RolloutView[]> {
    return this.rollouts.list({ blocklist: q.blocklist, active: q.status !== undefined });
  }

  @Get(':id')
  @ApiOperation({ summary: 'A rollout with per-stage progress and gates' })
  @Contract({ params: IdParams, responses: [{ status: 200, json: RolloutViewSchema }], errors: [404] })
  get(@Param('id') id: string): Promise<RolloutView> {
    return this.rollouts.get(id);
  }

  @Get(':id/history')
  @ApiOperation({ summary: 'Who did what, when: the rollout stream' })
  @Contract({ params: IdParams, responses: [{ status: 200, json: z.array(RolloutHistoryEntrySchema) }], errors: [404] })
  history(@Param('id') id: string): Promise<RolloutHistoryEntry[]> {
    return this.rollouts.history(id);
  }

  @Post(':id/pause')
  @RequireRole('operator')
  @ApiOperation({ summary: 'Pause a running rollout' })
  @action([404, 409])
  pause(@Param('id') id: string, @Body() body: RolloutActionRequest, @Req() req: CgfenceRequest): Promise<RolloutView> {
    return this.rollouts.pause(id, body, actorOf(req));
  }

  @Post(':id/resume')
  @RequireRole('operator')
  @ApiOperation({ summary: 'Resume a paused rollout' })
  @Contract({ params: IdParams, responses: [{ status: 200, json: RolloutViewSchema }], errors: [404, 409] })
  resume(@Param('id') id: string, @Req() req: CgfenceRequest): Promise<RolloutView> {
    return this.rollouts.resume(id, actorOf(req));
  }

  @Post(':id/promote')
  @RequireRole('operator')
  @ApiOperation({ summary: 'Promote the current stage (skips the rest of its soak, or gives its manual approval)' })
  @action([404, 409])
  promote(@Param('id') id: string, @Body() body: RolloutActionRequest, @Req() req: CgfenceRequest): Promise<RolloutView> {
    return this.rollouts.promote(id, body, actorOf(req));
  }

  @Post(':id/abort')
  @RequireRole('operator')
  @ApiOperation({ summary: 'Abort: hosts return to the version they had before the rollout' })
  @action([404, 409])
  abort(@Param('id') id: string, @Body() body: RolloutActionRequest, @Req() req: CgfenceRequest): Promise<RolloutView> {
    return this.rollouts.abort(id, body, actorOf(req));
  }
}
