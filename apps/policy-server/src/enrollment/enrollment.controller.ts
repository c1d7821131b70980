import { Body, Controller, Delete, Get, Param, Post, Req } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiTags } from '@nestjs/swagger';
import { z } from 'zod';
import {
  AdoptNatsKeyRequest,
  CreateEnrollTokenRequest,
  EnrollRequest,
  EnrollResponseSchema,
  EnrollTokenViewSchema,
  HostIdParams,
  HostNatsKeysSchema,
  IdParams,
  IssuedEnrollTokenSchema,
  RemovedHostSchema,
  type EnrollResponse,
  type EnrollTokenView,
  type HostNatsKeys,
  type IssuedEnrollToken,
  type RemovedHost,
} from '@cgfence/proto';
import { Public, RequireRole } from '../auth/roles';
import { Contract } from '../common/contract';
import { actorOf, CgfenceRequest } from '../common/request-context';
import { EnrollmentService } from './enrollment.service';

@ApiTags('enrollment')
@ApiBearerAuth()
@Controller()
export class EnrollmentController {
  constructor(private readonly enrollment: EnrollmentService) {}

  @Post('enroll-tokens')
  @RequireRole('operator')
  @ApiOperation({ summary: 'Create a host enrollment (join) token; the secret is shown once' })
  @Contract({ body: { json: CreateEnrollTokenRequest }, responses: [{ status: 201, json: IssuedEnrollTokenSchema }] })
  create(@Body() body: CreateEnrollTokenRequest, @Req() req: CgfenceRequest): Promise<IssuedEnrollToken> {
    return this.enrollment.createToken(body, actorOf(req));
  }

  @Get('enroll-tokens')
  @RequireRole('operator')
  @ApiOperation({ summary: 'List enrollment tokens with their uses and status' })
  @Contract({ responses: [{ status: 200, json: z.array(EnrollTokenViewSchema) }] })
  list(): Promise<EnrollTokenView[]> {
    return this.enrollment.list();
  }

  @Delete('enroll-tokens/:id')
  @RequireRole('operator')
  @ApiOperation({ summary: 'Revoke an enrollment token' })
  @Contract({ params: IdParams, responses: [{ status: 204 }], errors: [404] })
  revoke(@Param('id') id: string, @Req() req: CgfenceRequest): Promise<void> {
    return this.enrollment.revokeToken(id, actorOf(req));
  }

  @Post('enroll')
  @Public()
  @ApiOperation({
    summary: 'A new host enrolls with a join token and its NATS public key; it gets its NATS user JWT',
    description:
      'Public: the join token is the credential. 403 `enroll.token_refused` (unknown, expired, used up or revoked token), 409 `enroll.host_exists` / `enroll.key_revoked`, 503 `enroll.not_configured`.',
  })
  @Contract({ body: { json: EnrollRequest }, responses: [{ status: 201, json: EnrollResponseSchema }], errors: [403, 409, 503] })
  enroll(@Body() body: EnrollRequest, @Req() req: CgfenceRequest): Promise<EnrollResponse> {
    return this.enrollment.enroll(body, req.correlationId ?? 'none');
  }

  @Post('hosts/:id/nats-keys')
  @RequireRole('operator')
  @ApiOperation({
    summary: "Record a host's NATS key from before enrollment (nkeys migration): renewed at a key rotation, revoked on removal",
    description:
      '`cgfence nats migrate-from-nkeys` calls this for every host it migrates. Recording a key twice changes nothing. 409 `enroll.key_revoked`: the key was revoked by a removal.',
  })
  @Contract({ params: HostIdParams, body: { json: AdoptNatsKeyRequest }, responses: [{ status: 200, json: HostNatsKeysSchema }], errors: [409] })
  adoptKey(@Param('id') id: string, @Body() body: AdoptNatsKeyRequest, @Req() req: CgfenceRequest): Promise<HostNatsKeys> {
    return this.enrollment.adoptNatsKey(id, body.natsPublicKey, actorOf(req));
  }

  @Delete('hosts/:id')
  @RequireRole('operator')
  @ApiOperation({
    summary: 'Remove a host: its NATS credentials are revoked (it is disconnected and cannot reconnect)',
    description: '503 `nats.unavailable` when the revocation cannot be pushed to NATS: ask again, the recorded revocations are pushed.',
  })
  @Contract({ params: IdParams, responses: [{ status: 200, json: RemovedHostSchema }], errors: [404, 503] })
  remove(@Param('id') id: string, @Req() req: CgfenceRequest): Promise<RemovedHost> {
    return this.enrollment.removeHost(id, actorOf(req));
  }
}
