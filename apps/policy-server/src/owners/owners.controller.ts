import { Body, Controller, Delete, Get, Param, Post, Req } from '@nestjs/common';
import { ApiBearerAuth, ApiBody, ApiOperation, ApiTags } from '@nestjs/swagger';
import { OwnerSetRequest, OwnerSetView, OwnerView } from '@cgfence/proto';
import { RequireRole } from '../auth/roles';
import { toOpenApi } from '../common/openapi-schema';
import { actorOf, CgfenceRequest } from '../common/request-context';
import { ZodBodyPipe } from '../common/zod-body.pipe';
import { OwnersService } from './owners.service';

@ApiTags('owners')
@ApiBearerAuth()
@Controller('owners')
export class OwnersController {
  constructor(private readonly owners: OwnersService) {}

  @Get()
  @ApiOperation({ summary: 'Owners (a run-label value), their team and notification targets' })
  list(): Promise<OwnerView[]> {
    return this.owners.list();
  }

  @Post()
  @RequireRole('operator')
  @ApiOperation({ summary: 'Set an owner\'s team and add or change a webhook target; a new target\'s secret is returned once' })
  @ApiBody({ schema: toOpenApi(OwnerSetRequest) })
  set(@Body(new ZodBodyPipe(OwnerSetRequest)) body: OwnerSetRequest, @Req() req: CgfenceRequest): Promise<OwnerSetView> {
    return this.owners.set(body, actorOf(req));
  }

  @Get(':key/:value')
  @ApiOperation({ summary: 'One owner' })
  get(@Param('key') key: string, @Param('value') value: string): Promise<OwnerView> {
    return this.owners.get(key, value);
  }

  @Delete(':key/:value/targets/:id')
  @RequireRole('operator')
  @ApiOperation({ summary: 'Remove a notification target' })
  removeTarget(@Param('key') key: string, @Param('value') value: string, @Param('id') id: string, @Req() req: CgfenceRequest): Promise<OwnerView> {
    return this.owners.removeTarget(key, value, id, actorOf(req));
  }
}
