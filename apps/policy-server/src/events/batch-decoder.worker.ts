// The batch decode thread of BatchDecoder (batch-decoder.ts).
import { parentPort } from 'node:worker_threads';
import { decodeBatch, PackedMessages } from './batch-decoder';

parentPort?.on('message', (m: { id: number; packed: PackedMessages; keepRows: boolean; ownerKey: string | null }) => {
  try {
    parentPort?.postMessage({ id: m.id, decoded: decodeBatch(m.packed, m.keepRows, m.ownerKey) });
  } catch (err) {
    parentPort?.postMessage({ id: m.id, error: (err as Error).message });
  }
});
