/** A thread of compress-pool.ts: compresses what it is sent (a whole layer file, or a zstd piece), one at a time. */
import { parentPort } from 'node:worker_threads';
import { compressFile, compressZstdPiece } from './compress.js';
import type { ThreadJob, ThreadResult } from './compress-pool.js';

parentPort!.on('message', (m: ThreadJob) => {
  const work: Promise<ThreadResult> =
    m.kind === 'file'
      ? compressFile(m.job.input, m.job.size, m.job.output, m.job.compression).then((file) => ({ ok: true, file }))
      : compressZstdPiece(m.piece).then((compressed) => ({ ok: true, compressed }));
  work.then(
    (r) => parentPort!.postMessage(r),
    (e: Error) => parentPort!.postMessage({ ok: false, message: e.message } satisfies ThreadResult),
  );
});
