/** A thread of compress-pool.ts: compresses the layer pieces it is sent, one at a time. */
import { parentPort } from 'node:worker_threads';
import { compressPiece } from './compress-piece.js';
import type { ThreadJob, ThreadResult } from './compress-pool.js';

parentPort!.on('message', (job: ThreadJob) => {
  compressPiece(job.piece, job.compression).then(
    (compressed) => {
      // Moved, not copied, when it has a buffer of its own (never a view of a WebAssembly memory).
      const own = compressed.byteOffset === 0 && compressed.byteLength === compressed.buffer.byteLength;
      parentPort!.postMessage(
        { ok: true, compressed } satisfies ThreadResult,
        own ? [compressed.buffer as ArrayBuffer] : [],
      );
    },
    (e: Error) => parentPort!.postMessage({ ok: false, message: e.message } satisfies ThreadResult),
  );
});
