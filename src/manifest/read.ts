/**
 * Reading a manifest the quick way first: the plain reader (interpret.ts)
 * when the text allows, the YAML library (load.ts, loaded only then)
 * otherwise. A module of its own so that neither of the two imports the other
 * both ways.
 */
import { resolve } from 'node:path';
import { MANIFEST_MAX_BYTES, parsePlain, readManifestBytes } from './interpret.js';
import type { Manifest } from './types.js';

/**
 * parseManifest (load.ts), the same Manifest or the same error, without the
 * YAML library where a manifest allows: a lock: section as mkimg writes it
 * and a head in the plain subset (head-text.ts). Anything else, and any
 * error (placed by the whole-document path), goes to parseManifest.
 */
export async function parseManifestQuickly(bytes: Buffer, absPath: string): Promise<Manifest> {
  const quick = bytes.length <= MANIFEST_MAX_BYTES ? parsePlain(bytes, absPath) : undefined;
  return quick ?? (await import('./load.js')).parseManifest(bytes, absPath);
}

/** loadManifest (load.ts) through parseManifestQuickly. */
export async function loadManifestQuickly(path: string): Promise<Manifest> {
  const abs = resolve(path);
  return parseManifestQuickly(readManifestBytes(abs), abs);
}
