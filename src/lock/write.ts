/**
 * writeLockIntoManifest: put the lock: section into the manifest text. Only
 * the lock: section's bytes change: it is spliced into the original text
 * (the user's comments and formatting elsewhere stay byte for byte), written
 * from a sorted, fixed-key-order value, so relocking an unchanged world
 * changes no byte.
 */
import { Document, isMap, isScalar, parseDocument } from 'yaml';
import { readWrittenLock, writeLockText } from '../manifest/lock-text.js';
import type { Lock } from '../manifest/types.js';
import { MkimgError } from '../util/errors.js';
import { normalizeLock } from './normalize.js';

export { normalizeLock } from './normalize.js';

export function lockSectionText(lock: Lock): string {
  const value = normalizeLock(lock);
  // The library's bytes, without the library where every value is a plain word (manifest/lock-text.ts).
  return writeLockText(value) ?? new Document({ lock: value }).toString({ lineWidth: 0 });
}

export const LOCK_COMMENT = '# Pins written by `mkimg lock` (do not edit by hand).\n';

export function writeLockIntoManifest(yamlText: string, lock: Lock): string {
  // A lock: section last, as written before: replaced without parsing the document.
  const written = readWrittenLock(yamlText);
  if (written) return written.head + lockSectionText(lock);
  const doc = parseDocument(yamlText);
  if (doc.errors.length)
    throw new MkimgError(
      'manifest',
      `cannot write the lock: the manifest is not valid YAML: ${doc.errors[0]!.message.split('\n')[0]}`,
    );
  const section = lockSectionText(lock);
  const contents = doc.contents;
  const simple = isMap(contents) && !contents.flow && !/^\.\.\.\s*$/m.test(yamlText);
  if (!simple) {
    // Unusual layouts (flow mapping, document end markers): let the yaml library rewrite the document.
    doc.set('lock', doc.createNode(normalizeLock(lock)));
    return doc.toString({ lineWidth: 0 });
  }
  const pair = contents.items.find((p) => isScalar(p.key) && p.key.value === 'lock');
  if (!pair) {
    let t = yamlText;
    if (t.length && !t.endsWith('\n')) t += '\n';
    return t + (t.length ? '\n' : '') + LOCK_COMMENT + section;
  }
  const keyStart = (pair.key as { range?: [number, number, number] }).range?.[0];
  const valueRange = (pair.value as { range?: [number, number, number] } | null)?.range;
  if (keyStart === undefined) throw new MkimgError('internal', 'lock: key without a source range');
  const lineStart = yamlText.lastIndexOf('\n', keyStart - 1) + 1;
  let end = valueRange ? valueRange[1] : keyStart + 'lock:'.length;
  const nl = yamlText.indexOf('\n', end);
  end = nl < 0 ? yamlText.length : nl + 1;
  // Keep the end of the value where the yaml parser ended it, minus trailing blank lines it swallowed.
  const before = yamlText.slice(0, lineStart);
  let after = yamlText.slice(end);
  const swallowed = yamlText.slice(lineStart, end).match(/\n(\s*\n)+$/);
  if (swallowed) after = swallowed[0].slice(1) + after;
  return before + section + after;
}
