/** The thread of a LayerHashThread: runs the one job it is given (see layer-hash.ts). */
import { parentPort } from 'node:worker_threads';
import { runLayerHashJob, type LayerHashJob } from './layer-hash.js';

parentPort!.once('message', (job: LayerHashJob) => {
  runLayerHashJob(job);
});
parentPort!.postMessage('ready');
