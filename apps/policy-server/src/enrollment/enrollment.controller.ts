import { Body, Controller, Delete, Get, HttpCode, Param, Post, Req } from '@nestjs/common';
import { ApiBearerAuth, ApiBody, ApiOperation, ApiTags } from '@nestjs/swagger';
import { CreateEnrollTokenRequest, EnrollRequest, type EnrollResponse, type EnrollTokenView } from '@cgfence/proto';
import { Public, RequireRole } from '../auth/roles';
import { toOpenApi } from '../common/openapi-schema';
import { actorOf, CgfenceRequest } from '../common/request-context';
import { ZodBodyPipe } from '../common/zod-body.pipe';
import { EnrollmentService } from './enrollment.service';

@ApiTags('enrollment')
@ApiBearerAuth()
@Controller()
export class EnrollmentController {
  constructor(private readonly enrollment: EnrollmentService) {}

  @Post('enroll-tokens')
  @RequireRole('operator')
  @ApiOperation({ summary: 'Create a host enrollment (join) token; the secret is shown once' })
  @ApiBody({ schema: toOpenApi(CreateEnrollTokenRequest) })
  create(@Body(new ZodBodyPipe(CreateEnrollTokenRequest)) body: CreateEnrollTokenRequest, @Req() req: CgfenceRequest): Promise<{ token: EnrollTokenView; secret: string }> {
    return this.enrollment.createToken(body, actorOf(req));
  }

  @Get('enroll-tokens')
  @RequireRole('operator')
  @ApiOperation({ summary: 'List enrollment tokens with their uses and status' })
  list(): Promise<EnrollTokenView[]> {
    return this.enrollment.list();
  }

  @Delete('enroll-tokens/:id')
  @RequireRole('operator')
  @HttpCode(204)
  @ApiOperation({ summary: 'Revoke an enrollment token' })
  revoke(@Param('id') id: string, @Req() req: CgfenceRequest): Promise<void> {
    return this.enrollment.revokeToken(id, actorOf(req));
  }

  @Post('enroll')
  @Public()
  @ApiOperation({ summary: 'A new host enrolls with a join token and its NATS public key; it gets its NATS user JWT' })
  @ApiBody({ schema: toOpenApi(EnrollRequest) })
  enroll(@Body(new ZodBodyPipe(EnrollRequest)) body: EnrollRequest, @Req() req: CgfenceRequest): Promise<EnrollResponse> {
    return this.enrollment.enroll(body, req.correlationId ?? 'none');
  }

  @Delete('hosts/:id')
  @RequireRole('operator')
  @ApiOperation({ summary: "Remove a host: its NATS credentials are revoked (it is disconnected and cannot reconnect)" })
  remove(@Param('id') id: string, @Req() req: CgfenceRequest): Promise<{ hostId: string; revokedKeys: string[] }> {
    return this.enrollment.removeHost(id, actorOf(req));
  }
}
