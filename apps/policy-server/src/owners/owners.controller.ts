import { Body, Controller, Delete, Get, Param, Post, Req } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiTags } from '@nestjs/swagger';
import { z } from 'zod';
import { OwnerParams, OwnerSetRequest, OwnerSetView, OwnerSetViewSchema, OwnerTargetParams, OwnerView, OwnerViewSchema } from '@cgfence/proto';
import { RequireRole } from '../auth/roles';
import { Contract } from '../common/contract';
import { actorOf, CgfenceRequest } from '../common/request-context';
import { OwnersService } from './owners.service';

@ApiTags('owners')
@ApiBearerAuth()
@Controller('owners')
export class OwnersController {
  constructor(private readonly owners: OwnersService) {}

  @Get()
  @ApiOperation({ summary: 'Owners (a run-label value), their team and notification targets' })
  @Contract({ responses: [{ status: 200, json: z.array(OwnerViewSchema) }] })
  list(): Promise<OwnerView[]> {
    return this.owners.list();
  }

  @Post()
  @RequireRole('operator')
  @ApiOperation({ summary: "Set an owner's team and add or change a webhook target (by URL); a new target's generated secret is returned once" })
  @Contract({ body: { json: OwnerSetRequest }, responses: [{ status: 200, json: OwnerSetViewSchema }], errors: [409] })
  set(@Body() body: OwnerSetRequest, @Req() req: CgfenceRequest): Promise<OwnerSetView> {
    return this.owners.set(body, actorOf(req));
  }

  @Get(':key/:value')
  @ApiOperation({ summary: 'One owner' })
  @Contract({ params: OwnerParams, responses: [{ status: 200, json: OwnerViewSchema }], errors: [404] })
  get(@Param('key') key: string, @Param('value') value: string): Promise<OwnerView> {
    return this.owners.get(key, value);
  }

  @Delete(':key/:value/targets/:id')
  @RequireRole('operator')
  @ApiOperation({ summary: 'Remove a notification target' })
  @Contract({ params: OwnerTargetParams, responses: [{ status: 200, json: OwnerViewSchema }], errors: [404, 409] })
  removeTarget(@Param('key') key: string, @Param('value') value: string, @Param('id') id: string, @Req() req: CgfenceRequest): Promise<OwnerView> {
    return this.owners.removeTarget(key, value, id, actorOf(req));
  }
}
