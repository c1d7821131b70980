import { Body, Controller, HttpCode, Post } from '@nestjs/common';
import { ApiBearerAuth, ApiBody, ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import { RolloutPlanSchema } from '@cgfence/proto';
import { toOpenApi } from '../common/openapi-schema';
import { RolloutsService } from './rollouts.service';
import { PlanPreview } from './plan-preview';

/** A dry run of POST /rollouts, for the dashboard's plan editor. */
@ApiTags('rollouts')
@ApiBearerAuth()
@Controller('rollouts')
export class RolloutPreviewController {
  constructor(private readonly rollouts: RolloutsService) {}

  @Post('preview')
  @HttpCode(200)
  @ApiOperation({ summary: 'Check a plan with every rule of POST /rollouts and show the hosts each stage selects, without starting anything' })
  @ApiBody({ schema: toOpenApi(RolloutPlanSchema) })
  @ApiOkResponse({ schema: toOpenApi(PlanPreview) })
  preview(@Body() body: unknown): Promise<PlanPreview> {
    return this.rollouts.preview(body);
  }
}
