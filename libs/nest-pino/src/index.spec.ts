// NestJS's log calls through pino: levels kept, except the NATS transport's
// routine disconnect, which is a warning.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { PinoNestLogger } from './index';

function capture(options?: { nestLogLevel: 'info' | 'debug' }): { nest: PinoNestLogger; lines: { level: number; msg: string; context?: string }[] } {
  const lines: { level: number; msg: string; context?: string }[] = [];
  const logger = pino({ level: 'trace' }, { write: (s: string) => void lines.push(JSON.parse(s) as { level: number; msg: string }) });
  return { nest: new PinoNestLogger(logger, options), lines };
}

describe(PinoNestLogger.name, () => {
  it('keeps NestJS levels and logs a routine NATS disconnect as a warning', () => {
    const { nest, lines } = capture();
    nest.log('started', 'NestFactory');
    nest.error('NatsError: type: "disconnect".', undefined, 'Server');
    nest.error('NatsError: type: "error", error: "boom".', 'trace', 'Server');
    nest.warn('careful', 'X');
    assert.deepEqual(
      lines.map((l) => [l.level, l.msg, l.context]),
      [
        [30, 'started', 'NestFactory'],
        [40, 'NatsError: type: "disconnect".', 'Server'],
        [50, 'NatsError: type: "error", error: "boom".', 'Server'],
        [40, 'careful', 'X'],
      ],
    );
  });

  it("logs NestJS's chatter at debug when asked (the agent), and an Error by its message", () => {
    const { nest, lines } = capture({ nestLogLevel: 'debug' });
    nest.log('Nest application successfully started', 'NestApplication');
    nest.error(new Error('boom'), undefined, 'X');
    nest.error('NatsStatus: type: "reconnect"', undefined, 'ClientNats');
    assert.deepEqual(
      lines.map((l) => [l.level, l.msg, l.context]),
      [
        [20, 'Nest application successfully started', 'NestApplication'],
        [50, 'boom', 'X'],
        [40, 'NatsStatus: type: "reconnect"', 'ClientNats'],
      ],
    );
  });
});
