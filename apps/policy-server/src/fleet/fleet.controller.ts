import { Body, Controller, Get, Inject, Param, Post, Query, Req } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiTags } from '@nestjs/swagger';
import { z } from 'zod';
import {
  AssignRequest,
  AuditModeRequest,
  FleetView,
  FleetViewSchema,
  HostsQuery,
  HostView,
  HostViewSchema,
  IdParams,
  NameParams,
  SigningKeyView,
  SigningKeyViewSchema,
} from '@cgfence/proto';
import { Public, RequireRole } from '../auth/roles';
import { Contract } from '../common/contract';
import { actorOf, CgfenceRequest } from '../common/request-context';
import { HostsService } from '../hosts/hosts.service';
import { FleetService } from './fleet.service';
import { SIGNING_KEY } from './fleet.tokens';
import type { SigningKey } from './signing-key';

@ApiTags('fleet')
@ApiBearerAuth()
@Controller()
export class FleetController {
  constructor(
    private readonly fleet: FleetService,
    private readonly hosts: HostsService,
    @Inject(SIGNING_KEY) private readonly key: SigningKey,
  ) {}

  @Post('blocklists/:name/assign')
  @RequireRole('operator')
  @ApiOperation({
    summary: 'Make a blocklist version the fleet baseline',
    description: 'Every host enforces the baseline unless a rollout stage covers it. Going back to an older version needs rollback: true.',
  })
  @Contract({ params: NameParams, body: { json: AssignRequest }, responses: [{ status: 200, json: FleetViewSchema }], errors: [404, 409] })
  async assign(@Param('name') name: string, @Body() body: AssignRequest, @Req() req: CgfenceRequest): Promise<FleetView> {
    await this.fleet.assign(name, body.version, body.rollback === true, actorOf(req));
    return this.fleet.view(await this.hosts.list());
  }

  @Get('fleet')
  @ApiOperation({ summary: 'The fleet: baseline, audit switches, revision, host counts' })
  @Contract({ responses: [{ status: 200, json: FleetViewSchema }] })
  async status(): Promise<FleetView> {
    return this.fleet.view(await this.hosts.list());
  }

  @Post('fleet/audit-mode')
  @RequireRole('operator')
  @ApiOperation({ summary: 'Audit instead of enforce, fleet-wide (the kill switch) or for one cohort' })
  @Contract({ body: { json: AuditModeRequest }, responses: [{ status: 200, json: FleetViewSchema }] })
  async auditMode(@Body() body: AuditModeRequest, @Req() req: CgfenceRequest): Promise<FleetView> {
    await this.fleet.setAuditMode(body.on, body.cohort ?? null, actorOf(req));
    return this.fleet.view(await this.hosts.list());
  }

  @Get('fleet/signing-key')
  @Public()
  @ApiOperation({ summary: 'The public key agents verify bundles with (give it to cgfence agent --server-key)' })
  @Contract({ responses: [{ status: 200, json: SigningKeyViewSchema }] })
  signingKey(): SigningKeyView {
    return { keyId: this.key.keyId, publicKeyPem: this.key.publicPem };
  }

  @Get('hosts')
  @ApiOperation({ summary: 'Hosts with desired vs applied version, health and drift' })
  @Contract({ query: HostsQuery, responses: [{ status: 200, json: z.array(HostViewSchema) }] })
  list(@Query() q: HostsQuery): Promise<HostView[]> {
    return this.hosts.list(q);
  }

  @Get('hosts/:id')
  @ApiOperation({ summary: 'One host' })
  @Contract({ params: IdParams, responses: [{ status: 200, json: HostViewSchema }], errors: [404] })
  get(@Param('id') id: string): Promise<HostView> {
    return this.hosts.get(id);
  }
}

