import { Controller, Get, Query } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiTags } from '@nestjs/swagger';
import { AuditPage, AuditPageSchema, AuditQuery } from '@cgfence/proto';
import { RequireRole } from '../auth/roles';
import { Contract } from '../common/contract';
import { AuditService } from './audit.service';

@ApiTags('audit')
@ApiBearerAuth()
@RequireRole('operator')
@Controller('audit')
export class AuditController {
  constructor(private readonly audit: AuditService) {}

  @Get()
  @ApiOperation({ summary: 'Who did what, newest first; page with ?before=<next>' })
  @Contract({ query: AuditQuery, responses: [{ status: 200, json: AuditPageSchema }] })
  list(@Query() q: AuditQuery): Promise<AuditPage> {
    return this.audit.list(q);
  }
}
