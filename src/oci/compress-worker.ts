/** A thread of compress-pool.ts: compresses the layer files it is sent, one at a time. */
import { parentPort } from 'node:worker_threads';
import { compressFile } from './compress.js';
import type { CompressJob } from './compress-pool.js';

parentPort!.on('message', (job: CompressJob) => {
  compressFile(job.input, job.size, job.output, job.compression).then(
    (result) => parentPort!.postMessage({ ok: true, result }),
    (e: Error & { kind?: string }) =>
      parentPort!.postMessage({ ok: false, message: e.message, kind: e.kind ?? 'internal' }),
  );
});
