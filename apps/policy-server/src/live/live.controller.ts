import { Controller, MessageEvent, Sse } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiTags } from '@nestjs/swagger';
import { interval, map, merge, Observable } from 'rxjs';
import { Contract } from '../common/contract';
import { LiveService } from './live.service';

/** A keep-alive this often, so proxies and the browser see a live connection. */
const PING_MS = 15_000;

@ApiTags('live')
@ApiBearerAuth()
@Controller()
export class LiveController {
  constructor(private readonly live: LiveService) {}

  @Sse('live')
  @ApiOperation({
    summary: 'Server-Sent Events: "ready" once, then a "change" event naming the topics (fleet, hosts, blocks) that changed, and a "ping" every 15 s',
    description: 'The dashboard refetches what a change touches. Needs a bearer token like every route (send it as the Authorization header, e.g. with fetch).',
  })
  @Contract({
    responses: [
      {
        status: 200,
        text: {
          type: 'text/event-stream',
          description:
            'event: ready, data: {} once, when every change from then on will be told (refetch then); event: change, data: {"topics": ["fleet"|"hosts"|"blocks", ...], "at": ISO time}; event: ping, data: {} every 15 s',
        },
      },
    ],
    errors: [503],
  })
  stream(): Observable<MessageEvent> {
    const changes = this.live.changes().pipe(map(({ type, ...data }): MessageEvent => ({ type, data })));
    const pings = interval(PING_MS).pipe(map((): MessageEvent => ({ type: 'ping', data: {} })));
    return merge(changes, pings);
  }
}
