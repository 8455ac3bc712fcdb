/**
 * Runs checkImageIntegrity in a worker thread, so that verify hashes the image
 * on one core while the main thread loads openpgp.js and checks the signature.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { isMkimgError } from '../util/errors.js';
import { checkImageIntegrity } from './integrity.js';

const { path } = workerData as { path: string };
checkImageIntegrity(path).then(
  (checked) => {
    // Only what verify needs crosses the thread boundary (not the scan's buffers).
    const { scan: _scan, ...rest } = checked;
    parentPort!.postMessage({ ok: rest });
  },
  (e: unknown) => {
    if (isMkimgError(e))
      parentPort!.postMessage({ error: { kind: e.kind, message: e.message, hint: e.hint, details: e.details } });
    else parentPort!.postMessage({ crash: e instanceof Error ? (e.stack ?? e.message) : String(e) });
  },
);
