import { Body, Controller, Get, Param, Post, Query, Req } from '@nestjs/common';
import { ApiBearerAuth, ApiBody, ApiOperation, ApiQuery, ApiTags } from '@nestjs/swagger';
import { RolloutActionRequest, RolloutHistoryEntry, RolloutPlanSchema, RolloutView } from '@cgfence/proto';
import { RequireRole } from '../auth/roles';
import { toOpenApi } from '../common/openapi-schema';
import { actorOf, CgfenceRequest } from '../common/request-context';
import { ZodBodyPipe } from '../common/zod-body.pipe';
import { RolloutsService } from './rollouts.service';

const action = new ZodBodyPipe(RolloutActionRequest);

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
  @ApiBody({ schema: toOpenApi(RolloutPlanSchema) })
  start(@Body() body: unknown, @Req() req: CgfenceRequest): Promise<RolloutView> {
    return this.rollouts.start(body, actorOf(req));
  }

  @Get()
  @ApiOperation({ summary: 'Rollouts, newest first' })
  @ApiQuery({ name: 'blocklist', required: false })
  @ApiQuery({ name: 'status', required: false, description: 'active: running or paused only' })
  list(@Query('blocklist') blocklist?: string, @Query('status') status?: string): Promise<RolloutView[]> {
    return this.rollouts.list({ blocklist, active: status === 'active' || status === 'running' });
  }

  @Get(':id')
  @ApiOperation({ summary: 'A rollout with per-stage progress and gates' })
  get(@Param('id') id: string): Promise<RolloutView> {
    return this.rollouts.get(id);
  }

  @Get(':id/history')
  @ApiOperation({ summary: 'Who did what, when: the rollout stream' })
  history(@Param('id') id: string): Promise<RolloutHistoryEntry[]> {
    return this.rollouts.history(id);
  }

  @Post(':id/pause')
  @RequireRole('operator')
  @ApiBody({ schema: toOpenApi(RolloutActionRequest) })
  pause(@Param('id') id: string, @Body(action) body: RolloutActionRequest, @Req() req: CgfenceRequest): Promise<RolloutView> {
    return this.rollouts.pause(id, body, actorOf(req));
  }

  @Post(':id/resume')
  @RequireRole('operator')
  resume(@Param('id') id: string, @Req() req: CgfenceRequest): Promise<RolloutView> {
    return this.rollouts.resume(id, actorOf(req));
  }

  @Post(':id/promote')
  @RequireRole('operator')
  @ApiOperation({ summary: 'Promote the current stage (skips the rest of its soak, or gives its manual approval)' })
  @ApiBody({ schema: toOpenApi(RolloutActionRequest) })
  promote(@Param('id') id: string, @Body(action) body: RolloutActionRequest, @Req() req: CgfenceRequest): Promise<RolloutView> {
    return this.rollouts.promote(id, body, actorOf(req));
  }

  @Post(':id/abort')
  @RequireRole('operator')
  @ApiOperation({ summary: 'Abort: hosts return to the version they had before the rollout' })
  @ApiBody({ schema: toOpenApi(RolloutActionRequest) })
  abort(@Param('id') id: string, @Body(action) body: RolloutActionRequest, @Req() req: CgfenceRequest): Promise<RolloutView> {
    return this.rollouts.abort(id, body, actorOf(req));
  }
}
