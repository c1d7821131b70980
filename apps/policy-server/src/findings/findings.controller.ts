import { Body, Controller, Get, Param, Post, Query, Req } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiTags } from '@nestjs/swagger';
import { z } from 'zod';
import {
  FindingAcceptRequest,
  FindingDetailView,
  FindingDetailViewSchema,
  FindingIdParams,
  FindingsQuery,
  FindingTransitionRequest,
  FindingView,
  FindingViewSchema,
} from '@cgfence/proto';
import { RequireRole } from '../auth/roles';
import { Contract } from '../common/contract';
import { actorOf, CgfenceRequest } from '../common/request-context';
import { FindingsService } from './findings.service';

const transition = Contract({
  params: FindingIdParams,
  body: { json: FindingTransitionRequest },
  responses: [{ status: 200, json: FindingDetailViewSchema }],
  errors: [404, 409],
});

@ApiTags('findings')
@ApiBearerAuth()
@Controller('findings')
export class FindingsController {
  constructor(private readonly findings: FindingsService) {}

  @Get()
  @ApiOperation({ summary: 'Findings (one owner on one listed entry), most recently seen first; owner is a value (api) or key=value (service=api)' })
  @Contract({ query: FindingsQuery, responses: [{ status: 200, json: z.array(FindingViewSchema) }] })
  list(@Query() q: FindingsQuery): Promise<FindingView[]> {
    return this.findings.list(q);
  }

  @Get(':id')
  @ApiOperation({ summary: 'A finding with its example hosts, runs and commands, and who changed its state' })
  @Contract({ params: FindingIdParams, responses: [{ status: 200, json: FindingDetailViewSchema }], errors: [404] })
  get(@Param('id') id: string): Promise<FindingDetailView> {
    return this.findings.get(id);
  }

  @Post(':id/ack')
  @RequireRole('operator')
  @ApiOperation({ summary: 'Acknowledge: someone owns it' })
  @transition
  ack(@Param('id') id: string, @Body() body: FindingTransitionRequest, @Req() req: CgfenceRequest): Promise<FindingDetailView> {
    return this.findings.acknowledge(id, body, actorOf(req));
  }

  @Post(':id/resolve')
  @RequireRole('operator')
  @ApiOperation({ summary: 'Mark fixed: it resolves once no occurrence follows for the fix quiet period' })
  @transition
  resolve(@Param('id') id: string, @Body() body: FindingTransitionRequest, @Req() req: CgfenceRequest): Promise<FindingDetailView> {
    return this.findings.resolve(id, body, actorOf(req));
  }

  @Post(':id/accept')
  @RequireRole('operator')
  @ApiOperation({ summary: 'Accept a known dependency until a time (30d or an ISO time); it reopens then' })
  @Contract({ params: FindingIdParams, body: { json: FindingAcceptRequest }, responses: [{ status: 200, json: FindingDetailViewSchema }], errors: [404, 409] })
  accept(@Param('id') id: string, @Body() body: FindingAcceptRequest, @Req() req: CgfenceRequest): Promise<FindingDetailView> {
    return this.findings.accept(id, body, actorOf(req));
  }
}
