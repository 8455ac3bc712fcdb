/** The thread of a LayerHashThread: runs the one job it is given (see layer-hash.ts). */
import { readSync } from 'node:fs';
import { parentPort } from 'node:worker_threads';
import { runLayerHashJob, type LayerHashJob } from './layer-hash.js';

parentPort!.once('message', (job: LayerHashJob) => {
  runLayerHashJob(job, (fd, buf, position, length) => readSync(fd, buf, 0, length, position));
});
parentPort!.postMessage('ready');
