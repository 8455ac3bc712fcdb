/**
 * `mkimg lock` and `mkimg lock --check` as functions: load the manifest,
 * resolve (or check), write the lock section into the manifest atomically
 * when it changed. The CLI parses flags and prints; this decides.
 */
import { writeFileAtomicAsync } from '../util/atomic-write.js';
import { loadManifestQuickly } from '../manifest/read.js';
import { MkimgError } from '../util/errors.js';
import type { Lock } from '../manifest/types.js';
import { lockIsCurrent } from './check.js';
import { pinFilesOf, resolveLock, reusablePackagePins, type ResolveLockOptions } from './resolve.js';
import { resolutionDigest } from './resolution.js';
import { normalizeLock } from './normalize.js';
import { writeLockQuickly } from './write-quick.js';

export interface LockedPackageLine {
  name: string;
  version: string;
}

export interface LockOutcome {
  /** The manifest's path as loaded. */
  manifest: string;
  /** Whether the manifest's bytes changed (and were written). */
  changed: boolean;
  /** False when the package pins were kept without resolving (nothing they depend on changed): no network. */
  resolved: boolean;
  /** files: inputs (src as written) whose pin was added, changed or dropped. */
  filesChanged: string[];
  lock: Lock;
  /** One architecture: its packages; several: each one's. */
  packages?: LockedPackageLine[];
  architectures?: Record<string, { packages: (LockedPackageLine & { architecture: string })[] }>;
}

/** Resolve and pin the manifest at `path`; the manifest is rewritten only when its lock changed. */
export async function lockManifest(
  path: string,
  opts: ResolveLockOptions & {
    /** Re-pin files: inputs only; refuse (exit 11) when the packages would need resolving (`build --repin`). */
    filesOnly?: boolean;
  } = {},
): Promise<LockOutcome> {
  const manifest = await loadManifestQuickly(path);
  const resolved = opts.full === true || reusablePackagePins(manifest) === undefined;
  if (resolved && opts.filesOnly) {
    throw new MkimgError(
      'lock',
      `${manifest.origin.path}: ${manifest.lock?.resolution ? 'the sources, package requests, keyrings or architectures changed since the lock was made' : 'the lock predates offline re-pinning (it records no resolution digest)'}; only files: inputs can be re-pinned during a build`,
      { hint: `run \`mkimg lock ${path}\` (it resolves the packages), then build` },
    );
  }
  const lock = await resolveLock(manifest, opts);
  const pinsBefore = new Map((manifest.lock?.files ?? []).map((f) => [f.src, f.sha256]));
  const pinsAfter = new Map(lock.files.map((f) => [f.src, f.sha256]));
  const filesChanged = [...new Set([...pinsBefore.keys(), ...pinsAfter.keys()])]
    .filter((src) => pinsBefore.get(src) !== pinsAfter.get(src))
    .sort();
  const before = manifest.origin.bytes.toString('utf8');
  const after = await writeLockQuickly(before, lock);
  const changed = after !== before;
  if (changed) await writeFileAtomicAsync(manifest.origin.path, after);
  const norm = normalizeLock(lock) as Pick<LockOutcome, 'packages' | 'architectures'>;
  return {
    manifest: manifest.origin.path,
    changed,
    resolved,
    filesChanged,
    lock,
    ...(norm.architectures ? { architectures: norm.architectures } : { packages: norm.packages ?? [] }),
  };
}

/**
 * `lock --check`, offline: the lock pins what the manifest asks for (lockIsCurrent),
 * nothing the resolution depended on changed since, and every files: input
 * still has the content its pin names (each is hashed).
 */
export async function checkManifestLock(
  path: string,
): Promise<{ manifest: string; current: boolean; problems: string[] }> {
  const manifest = await loadManifestQuickly(path);
  const problems = [...lockIsCurrent(manifest).problems];
  const recorded = manifest.lock?.resolution;
  if (recorded !== undefined && recorded !== resolutionDigest(manifest))
    problems.push('the sources, package requests, keyrings or architectures changed since the lock was made');
  const raw = manifest.lock ? await pinFilesOf(manifest) : [];
  const pinned = new Map((manifest.lock?.files ?? []).map((f) => [f.src, f.sha256]));
  for (const f of raw) {
    const pin = pinned.get(f.src);
    if (pin !== undefined && pin !== f.sha256)
      problems.push(
        `files: ${f.src} changed since it was pinned (its content is sha256 ${f.sha256}, the lock pins ${pin})`,
      );
  }
  return { manifest: manifest.origin.path, current: problems.length === 0, problems };
}
