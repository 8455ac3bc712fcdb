/**
 * The lock as a plain value with sorted lists and a fixed key order (what
 * write.ts writes), and the lock: section spliced in without the YAML
 * library where the manifest already ends in one as mkimg writes it.
 */
import { readWrittenLock, writeLockText } from '../manifest/lock-text.js';
import type { Lock } from '../manifest/types.js';

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
