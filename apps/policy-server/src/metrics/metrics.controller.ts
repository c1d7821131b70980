import { Controller, Get, Header } from '@nestjs/common';
import { ApiOperation, ApiTags } from '@nestjs/swagger';
import { Public } from '../auth/roles';
import { Contract } from '../common/contract';
import { Metrics } from './metrics.service';

@ApiTags('health')
@Public()
@Controller('metrics')
export class MetricsController {
  constructor(private readonly metrics: Metrics) {}

  @Get()
  @Header('Content-Type', 'text/plain; version=0.0.4')
  @ApiOperation({ summary: 'Prometheus metrics' })
  @Contract({ responses: [{ status: 200, text: { type: 'text/plain', description: 'Prometheus text exposition format 0.0.4' } }] })
  scrape(): Promise<string> {
    return this.metrics.registry.metrics();
  }
}
