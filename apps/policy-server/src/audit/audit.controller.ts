import { Controller, Get, Query } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiQuery, ApiTags } from '@nestjs/swagger';
import type { AuditRecord } from '@cgfence/proto';
import { RequireRole } from '../auth/roles';
import { AuditQuery, AuditService } from './audit.service';

@ApiTags('audit')
@ApiBearerAuth()
@RequireRole('operator')
@Controller('audit')
export class AuditController {
  constructor(private readonly audit: AuditService) {}

  @Get()
  @ApiOperation({ summary: 'Who did what, newest first; page with ?before=<next>' })
  @ApiQuery({ name: 'limit', required: false })
  @ApiQuery({ name: 'before', required: false })
  @ApiQuery({ name: 'actor', required: false })
  @ApiQuery({ name: 'stream', required: false, description: 'stream id prefix, e.g. blocklist-' })
  list(@Query() q: AuditQuery): Promise<{ records: AuditRecord[]; next: string | null }> {
    return this.audit.list(q);
  }
}
