import { Body, Controller, Get, Inject, Param, Post, Query, Req } from '@nestjs/common';
import { ApiBearerAuth, ApiBody, ApiOperation, ApiQuery, ApiTags } from '@nestjs/swagger';
import { AssignRequest, AuditModeRequest, FleetView, HostView, SigningKeyView } from '@cgfence/proto';
import { Public, RequireRole } from '../auth/roles';
import { DomainError } from '../common/errors';
import { toOpenApi } from '../common/openapi-schema';
import { actorOf, CgfenceRequest } from '../common/request-context';
import { ZodBodyPipe } from '../common/zod-body.pipe';
import { HostsService } from '../hosts/hosts.service';
import { FleetService } from './fleet.service';
import { SIGNING_KEY } from './fleet.tokens';
import type { SigningKey } from './signing-key';

function parseBool(name: string, v: string | undefined): boolean | undefined {
  if (v === undefined) return undefined;
  if (v === 'true' || v === '1' || v === '') return true;
  if (v === 'false' || v === '0') return false;
  throw new DomainError('validation.failed', `${name} must be true or false, got ${JSON.stringify(v)}`);
}

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
  @ApiBody({ schema: toOpenApi(AssignRequest) })
  async assign(@Param('name') name: string, @Body(new ZodBodyPipe(AssignRequest)) body: AssignRequest, @Req() req: CgfenceRequest): Promise<FleetView> {
    await this.fleet.assign(name, body.version, body.rollback === true, actorOf(req));
    return this.fleet.view(await this.hosts.list());
  }

  @Get('fleet')
  @ApiOperation({ summary: 'The fleet: baseline, audit switches, revision, host counts' })
  async status(): Promise<FleetView> {
    return this.fleet.view(await this.hosts.list());
  }

  @Post('fleet/audit-mode')
  @RequireRole('operator')
  @ApiOperation({ summary: 'Audit instead of enforce, fleet-wide (the kill switch) or for one cohort' })
  @ApiBody({ schema: toOpenApi(AuditModeRequest) })
  async auditMode(@Body(new ZodBodyPipe(AuditModeRequest)) body: AuditModeRequest, @Req() req: CgfenceRequest): Promise<FleetView> {
    await this.fleet.setAuditMode(body.on, body.cohort ?? null, actorOf(req));
    return this.fleet.view(await this.hosts.list());
  }

  @Get('fleet/signing-key')
  @Public()
  @ApiOperation({ summary: 'The public key agents verify bundles with (give it to cgfence agent --server-key)' })
  signingKey(): SigningKeyView {
    return { keyId: this.key.keyId, publicKeyPem: this.key.publicPem };
  }

  @Get('hosts')
  @ApiOperation({ summary: 'Hosts with desired vs applied version, health and drift' })
  @ApiQuery({ name: 'cohort', required: false })
  @ApiQuery({ name: 'stale', required: false, description: 'true: only hosts silent for too long; false: only live ones' })
  list(@Query('cohort') cohort?: string, @Query('stale') stale?: string): Promise<HostView[]> {
    return this.hosts.list({ cohort, stale: parseBool('stale', stale) });
  }

  @Get('hosts/:id')
  @ApiOperation({ summary: 'One host' })
  get(@Param('id') id: string): Promise<HostView> {
    return this.hosts.get(id);
  }
}

