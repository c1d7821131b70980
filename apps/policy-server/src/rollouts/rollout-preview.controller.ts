import { Body, Controller, Post } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiTags } from '@nestjs/swagger';
import { z } from 'zod';
import { Contract } from '../common/contract';
import { RolloutsService } from './rollouts.service';
import { PlanPreview } from './plan-preview';

/** A dry run of POST /rollouts, for the dashboard's plan editor. */
@ApiTags('rollouts')
@ApiBearerAuth()
@Controller('rollouts')
export class RolloutPreviewController {
  constructor(private readonly rollouts: RolloutsService) {}

  @Post('preview')
  @ApiOperation({ summary: 'Check a plan with every rule of POST /rollouts and show the hosts each stage selects, without starting anything' })
  // Any JSON: a plan that breaks the rules is the answer's subject (valid: false), not a 400.
  @Contract({ body: { json: z.unknown().describe('a rollout plan as POST /rollouts takes it, valid or not') }, responses: [{ status: 200, json: PlanPreview }] })
  preview(@Body() body: unknown): Promise<PlanPreview> {
    return this.rollouts.preview(body);
  }
}
