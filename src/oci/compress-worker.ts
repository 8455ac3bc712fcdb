/** A thread of compress-pool.ts: compresses the layer pieces it is sent, one at a time. */
import { parentPort } from 'node:worker_threads';
import { compressPiece } from './compress.js';
import type { ThreadJob, ThreadResult } from './compress-pool.js';

parentPort!.on('message', (job: ThreadJob) => {
  compressPiece(job.piece, job.compression, { last: job.last, dictionary: job.dictionary }).then(
    (compressed) => parentPort!.postMessage({ ok: true, compressed } satisfies ThreadResult),
    (e: Error) => parentPort!.postMessage({ ok: false, message: e.message } satisfies ThreadResult),
  );
});
