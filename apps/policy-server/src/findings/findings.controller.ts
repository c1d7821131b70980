import { Body, Controller, Get, Param, Post, Query, Req } from '@nestjs/common';
import { ApiBearerAuth, ApiBody, ApiOperation, ApiQuery, ApiTags } from '@nestjs/swagger';
import { FindingAcceptRequest, FindingDetailView, FindingsQuery, FindingTransitionRequest, FindingView } from '@cgfence/proto';
import { RequireRole } from '../auth/roles';
import { toOpenApi } from '../common/openapi-schema';
import { actorOf, CgfenceRequest } from '../common/request-context';
import { ZodBodyPipe } from '../common/zod-body.pipe';
import { ZodQueryPipe } from '../common/zod-query.pipe';
import { FindingsService } from './findings.service';

const transition = new ZodBodyPipe(FindingTransitionRequest);

@ApiTags('findings')
@ApiBearerAuth()
@Controller('findings')
export class FindingsController {
  constructor(private readonly findings: FindingsService) {}

  @Get()
  @ApiOperation({ summary: 'Findings (one owner on one listed entry), most recently seen first' })
  @ApiQuery({ name: 'owner', required: false, description: 'owner value (api) or key=value (service=api)' })
  @ApiQuery({ name: 'state', required: false, enum: ['new', 'acknowledged', 'resolved', 'accepted'] })
  @ApiQuery({ name: 'since', required: false, description: 'seen since an ISO time or a duration back (7d)' })
  @ApiQuery({ name: 'entry', required: false })
  @ApiQuery({ name: 'limit', required: false })
  list(@Query(new ZodQueryPipe(FindingsQuery)) q: FindingsQuery): Promise<FindingView[]> {
    return this.findings.list(q);
  }

  @Get(':id')
  @ApiOperation({ summary: 'A finding with its example hosts, runs and commands, and who changed its state' })
  get(@Param('id') id: string): Promise<FindingDetailView> {
    return this.findings.get(id);
  }

  @Post(':id/ack')
  @RequireRole('operator')
  @ApiOperation({ summary: 'Acknowledge: someone owns it' })
  @ApiBody({ schema: toOpenApi(FindingTransitionRequest) })
  ack(@Param('id') id: string, @Body(transition) body: FindingTransitionRequest, @Req() req: CgfenceRequest): Promise<FindingDetailView> {
    return this.findings.acknowledge(id, body, actorOf(req));
  }

  @Post(':id/resolve')
  @RequireRole('operator')
  @ApiOperation({ summary: 'Mark fixed: it resolves once no occurrence follows for the fix quiet period' })
  @ApiBody({ schema: toOpenApi(FindingTransitionRequest) })
  resolve(@Param('id') id: string, @Body(transition) body: FindingTransitionRequest, @Req() req: CgfenceRequest): Promise<FindingDetailView> {
    return this.findings.resolve(id, body, actorOf(req));
  }

  @Post(':id/accept')
  @RequireRole('operator')
  @ApiOperation({ summary: 'Accept a known dependency until a time; it reopens then' })
  @ApiBody({ schema: toOpenApi(FindingAcceptRequest) })
  accept(@Param('id') id: string, @Body(new ZodBodyPipe(FindingAcceptRequest)) body: FindingAcceptRequest, @Req() req: CgfenceRequest): Promise<FindingDetailView> {
    return this.findings.accept(id, body, actorOf(req));
  }
}
