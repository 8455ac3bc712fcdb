/**
 * Writing a lock into a manifest the quick way first: as text when the
 * manifest ends in a lock: section as mkimg writes it (lock-text.ts), with the
 * YAML library (write.ts, loaded only then) otherwise. A module of its own so
 * that write.ts and normalize.ts do not import each other both ways.
 */
import { readWrittenLock, writeLockText } from '../manifest/lock-text.js';
import type { Lock } from '../manifest/types.js';
import { normalizeLock } from './normalize.js';

/**
 * writeLockIntoManifest (write.ts), the same text, without the YAML library
 * when the manifest ends in a lock: section as mkimg writes it and the new
 * one is all plain words (lock-text.ts); write.ts, with the library, for any
 * other manifest.
 */
export async function writeLockQuickly(yamlText: string, lock: Lock): Promise<string> {
  const written = readWrittenLock(yamlText);
  const section = written && writeLockText(normalizeLock(lock));
  if (written && section !== undefined) return written.head + section;
  return (await import('./write.js')).writeLockIntoManifest(yamlText, lock);
}
