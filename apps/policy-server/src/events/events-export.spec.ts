// An export that fails after its headers went out ends with the documented
// error record (ndjson: {"error": ...}; csv: #error,...), not a silent cut.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Writable } from 'node:stream';
import express from 'express';
import pino from 'pino';
import { ExportErrorRecordSchema } from '@cgfence/proto';
import { EventsController } from './events.controller';
import type { EventsQueryService } from './events-query.service';

/** A query service whose export writes one line, then loses its database. */
class FailingExport {
  async export(_q: unknown, format: 'ndjson' | 'csv', out: Writable): Promise<number> {
    out.write(format === 'csv' ? 'time,id\r\n2025-01-01T00:00:00Z,1\r\n' : '{"id":"1"}\n');
    await new Promise((r) => setTimeout(r, 10));
    throw new Error('terminating connection due to administrator command');
  }
}

async function get(format: 'ndjson' | 'csv'): Promise<{ status: number; text: string }> {
  const sut = new EventsController(new FailingExport() as unknown as EventsQueryService, pino({ level: 'silent' }));
  const app = express();
  app.get('/events', (req, res) => {
    (req as { correlationId?: string }).correlationId = 'corr-1';
    void sut.list({ format }, req, res);
  });
  const server = createServer(app).listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  try {
    const res = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/events`);
    return { status: res.status, text: await res.text() };
  } finally {
    server.close();
  }
}

describe(EventsController.name, () => {
  it('ends a failed ndjson export with an error record a client can detect', async () => {
    const { status, text } = await get('ndjson');
    assert.equal(status, 200);
    const lines = text.trim().split('\n');
    assert.equal(lines.length, 2);
    const last = ExportErrorRecordSchema.parse(JSON.parse(lines[1]!));
    assert.deepEqual([last.error.code, last.error.correlationId], ['internal', 'corr-1']);
  });

  it('ends a failed csv export with an #error line', async () => {
    const { text } = await get('csv');
    const lines = text.trim().split('\r\n');
    assert.match(lines[lines.length - 1]!, /^#error,internal,corr-1,/);
  });
});
