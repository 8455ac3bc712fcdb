/**
 * `mkimg lock` and `mkimg lock --check` as functions: load the manifest,
 * resolve (or check), write the lock section into the manifest atomically
 * when it changed. The CLI parses flags and prints; this decides.
 */
import { writeFileAtomicAsync } from '../util/atomic-write.js';
import { loadManifest } from '../manifest/load.js';
import type { Lock } from '../manifest/types.js';
import { lockIsCurrent } from './check.js';
import { resolveLock, type ResolveLockOptions } from './resolve.js';
import { normalizeLock, writeLockIntoManifest } from './write.js';

export interface LockedPackageLine {
  name: string;
  version: string;
}

export interface LockOutcome {
  /** The manifest's path as loaded. */
  manifest: string;
  /** Whether the manifest's bytes changed (and were written). */
  changed: boolean;
  lock: Lock;
  /** One architecture: its packages; several: each one's. */
  packages?: LockedPackageLine[];
  architectures?: Record<string, { packages: (LockedPackageLine & { architecture: string })[] }>;
}

/** Resolve and pin the manifest at `path`; the manifest is rewritten only when its lock changed. */
export async function lockManifest(path: string, opts: ResolveLockOptions = {}): Promise<LockOutcome> {
  const manifest = loadManifest(path);
  const lock = await resolveLock(manifest, opts);
  const before = manifest.origin.bytes.toString('utf8');
  const after = writeLockIntoManifest(before, lock);
  const changed = after !== before;
  if (changed) await writeFileAtomicAsync(manifest.origin.path, after);
  const norm = normalizeLock(lock) as Pick<LockOutcome, 'packages' | 'architectures'>;
  return {
    manifest: manifest.origin.path,
    changed,
    lock,
    ...(norm.architectures ? { architectures: norm.architectures } : { packages: norm.packages ?? [] }),
  };
}

/** `lock --check`: whether the manifest's lock matches its requests and files:, offline. */
export function checkManifestLock(path: string): { manifest: string; current: boolean; problems: string[] } {
  const manifest = loadManifest(path);
  const st = lockIsCurrent(manifest);
  return { manifest: manifest.origin.path, current: st.ok, problems: st.problems };
}
