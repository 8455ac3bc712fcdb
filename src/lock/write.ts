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

const byStr = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/** The lock as a plain value with sorted lists and a fixed key order. */
export function normalizeLock(lock: Lock): Record<string, unknown> {
  const files = [...lock.files].sort((a, b) => byStr(a.src, b.src)).map((f) => ({ src: f.src, sha256: f.sha256 }));
  const resolution = lock.resolution !== undefined ? { resolution: lock.resolution } : {};
  if (lock.architectures) {
    const architectures: Record<string, unknown> = {};
    for (const a of Object.keys(lock.architectures).sort(byStr)) {
      const pins = lock.architectures[a]!;
      architectures[a] = {
        packages: normalizePackages(pins.packages),
        ...(pins.variants ? { variants: normalizeVariants(pins.variants) } : {}),
      };
    }
    return { version: 1, ...resolution, architectures, files };
  }
  return {
    version: 1,
    ...resolution,
    packages: normalizePackages(lock.packages),
    ...(lock.variants ? { variants: normalizeVariants(lock.variants) } : {}),
    files,
  };
}

function normalizeVariants(variants: NonNullable<Lock['variants']>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const v of Object.keys(variants).sort(byStr)) out[v] = { packages: normalizePackages(variants[v]!.packages) };
  return out;
}

function normalizePackages(list: Lock['packages']): Record<string, unknown>[] {
  return [...list]
    .sort((a, b) => byStr(a.name, b.name) || byStr(a.architecture, b.architecture))
    .map((p) => ({
      name: p.name,
      version: p.version,
      architecture: p.architecture,
      suite: p.suite,
      filename: p.filename,
      size: p.size,
      sha256: p.sha256,
      ...(p.dataSha256 !== undefined ? { dataSha256: p.dataSha256 } : {}),
    }));
}

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
