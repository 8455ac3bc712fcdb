/** The second thread of readInputs: the same loop over the same counter. */
import { parentPort, workerData } from 'node:worker_threads';
import { drain, type InputDigests } from './read-inputs.js';

const { paths, counter } = workerData as { paths: string[]; counter: Int32Array };
const results: Array<[number, InputDigests]> = [];
try {
  drain(paths, counter, (i, d) => results.push([i, d]));
  parentPort!.postMessage({ results });
} catch (e) {
  const err = e as { message?: string; hint?: string };
  parentPort!.postMessage({ error: { message: err.message ?? String(e), hint: err.hint } });
}
