import { Controller, Get, HttpCode, Res } from '@nestjs/common';
import { ApiOperation, ApiTags } from '@nestjs/swagger';
import type { Response } from 'express';
import { DataSource } from 'typeorm';
import { Public } from '../auth/roles';

@ApiTags('health')
@Public()
@Controller()
export class HealthController {
  constructor(private readonly db: DataSource) {}

  @Get('health')
  @HttpCode(200)
  @ApiOperation({ summary: 'Liveness: the process answers' })
  health(): { status: 'ok' } {
    return { status: 'ok' };
  }

  @Get('ready')
  @ApiOperation({ summary: 'Readiness: the database answers and every migration has run' })
  async ready(@Res({ passthrough: true }) res: Response): Promise<{ status: 'ready' | 'not ready'; reason?: string }> {
    try {
      await this.db.query('select 1');
      if (await this.db.showMigrations()) {
        res.status(503);
        return { status: 'not ready', reason: 'migrations pending' };
      }
      return { status: 'ready' };
    } catch (err) {
      res.status(503);
      return { status: 'not ready', reason: `database: ${(err as Error).message}` };
    }
  }
}
