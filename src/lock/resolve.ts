/**
 * resolveLock: pin the closure of the manifest's requested packages, per
 * architecture, through its package source (src/packages/source.ts), plus a
 * sha256 for every files: input.
 */
import type { Lock, LockedFile, LockedPackage, Manifest } from '../manifest/types.js';
import { packageSourceFor } from '../packages/select.js';
import type { ResolveOptions } from '../packages/source.js';
import { inputDigest } from '../stage/files.js';
import { MkimgError } from '../util/errors.js';
import { forArchitecture, isMultiArch } from '../manifest/platform.js';
import { lockIsCurrent } from './check.js';
import { resolutionDigest } from './resolution.js';

export interface ResolveLockOptions extends ResolveOptions {
  /** Resolve the packages again even when nothing they depend on changed. */
  full?: boolean;
}

/**
 * The manifest's lock when its package pins still answer it: the resolution
 * digest in the lock equals the manifest's (sources, requests, keyrings,
 * architectures unchanged) and the pins pass the offline check. Then only
 * files: inputs need pinning.
 */
export function reusablePackagePins(manifest: Manifest): Lock | undefined {
  const lock = manifest.lock;
  if (!lock?.resolution || lock.resolution !== resolutionDigest(manifest)) return undefined;
  const problems = lockIsCurrent(manifest).problems.filter((p) => !p.startsWith('files: '));
  return problems.length === 0 ? lock : undefined;
}

/** Re-pin the files: inputs of a manifest whose package pins are reusable; offline, no resolution. */
export async function repinFiles(manifest: Manifest, lock: Lock): Promise<Lock> {
  return { ...lock, files: await pinFilesOf(manifest) };
}

export async function resolveLock(manifest: Manifest, opts: ResolveLockOptions = {}): Promise<Lock> {
  const reusable = opts.full ? undefined : reusablePackagePins(manifest);
  if (reusable) return repinFiles(manifest, reusable);
  const resolution = resolutionDigest(manifest);
  if (!isMultiArch(manifest)) {
    const packages = await packageSourceFor(manifest).resolve(manifest, opts);
    const variants = await resolveVariants(manifest, packages, opts);
    return {
      version: 1,
      resolution,
      packages,
      ...(variants ? { variants } : {}),
      files: await pinFilesOf(manifest),
    };
  }
  // One closure per architecture, resolved from the same verified indexes of each.
  const architectures: NonNullable<Lock['architectures']> = {};
  for (const arch of manifest.architectures) {
    try {
      const one = forArchitecture(manifest, arch);
      const packages = await packageSourceFor(one).resolve(one, opts);
      const variants = await resolveVariants(one, packages, opts);
      architectures[arch] = { packages, ...(variants ? { variants } : {}) };
    } catch (e) {
      if (e instanceof MkimgError && e.kind === 'resolve') {
        throw new MkimgError('resolve', `${arch}: ${e.message}`, {
          hint: `${e.hint ? e.hint + '; ' : ''}a package that exists on some architectures only can be limited to them: packages: - {name: NAME, architectures: [amd64]}`,
        });
      }
      throw e;
    }
  }
  return { version: 1, resolution, packages: [], architectures, files: await pinFilesOf(manifest) };
}

/**
 * Each variant's pins: the closure of the main requests and the variant's,
 * less what the main closure already pins (the variant image holds the main
 * image whole, so only what it adds goes in its layer).
 */
async function resolveVariants(
  manifest: Manifest,
  main: LockedPackage[],
  opts: ResolveLockOptions,
): Promise<Lock['variants']> {
  if (manifest.variants.length === 0) return undefined;
  const out: NonNullable<Lock['variants']> = {};
  const inMain = new Set(main.map((p) => `${p.name} ${p.architecture} ${p.version}`));
  for (const v of manifest.variants) {
    const view: Manifest = { ...manifest, packages: [...manifest.packages, ...v.packages], variants: [] };
    try {
      const all = await packageSourceFor(view).resolve(view, opts);
      out[v.name] = { packages: all.filter((p) => !inMain.has(`${p.name} ${p.architecture} ${p.version}`)) };
    } catch (e) {
      if (e instanceof MkimgError) throw new MkimgError(e.kind, `variants.${v.name}: ${e.message}`, { hint: e.hint });
      throw e;
    }
  }
  return out;
}

/** The pins the manifest's files: inputs would get now (each input hashed). */
export async function pinFilesOf(manifest: Manifest): Promise<LockedFile[]> {
  if (manifest.files.length === 0) return [];
  // The lock keys files by src as written in the manifest.
  const out: LockedFile[] = [];
  for (const f of manifest.files) {
    const written = f.srcAsWritten ?? f.src;
    const hex = await inputDigest(f.src, written);
    if (!out.some((o) => o.src === written)) out.push({ src: written, sha256: hex });
  }
  return out;
}
