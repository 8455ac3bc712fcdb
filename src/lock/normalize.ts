/**
 * The lock as a plain value with sorted lists and a fixed key order (what
 * write.ts and write-quick.ts write).
 */
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
