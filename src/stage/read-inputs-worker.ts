/** The second thread of InputHasher: given paths and the shared counter, the same loop, results posted back. */
import { parentPort } from 'node:worker_threads';
import { drain, type InputDigests } from './read-inputs.js';

parentPort!.on('message', ({ paths, counter }: { paths: string[]; counter: Int32Array }) => {
  const results: Array<[number, InputDigests]> = [];
  try {
    drain(paths, counter, (i, d) => results.push([i, d]));
    parentPort!.postMessage({ results });
  } catch (e) {
    const err = e as { message?: string; hint?: string };
    parentPort!.postMessage({ error: { message: err.message ?? String(e), hint: err.hint } });
  }
});
