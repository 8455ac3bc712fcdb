/**
 * resolveLock: resolve the manifest's requested packages against its sources
 * (verified InRelease → Packages → sha256 chain) and pin the closure, plus a
 * sha256 for every files: input. The lock records suites, never mirror URLs.
 */
import { parse } from 'yaml';
import type { Lock, LockedFile, LockedPackage, Manifest } from '../manifest/types.js';
import { loadSources } from '../debian/repository.js';
import { Universe, resolveClosure, type ResolveRequest } from '../debian/resolver.js';
import { inputDigest } from '../stage/files.js';

export interface ResolveLockOptions {
  mirrors?: Record<string, string>;
  aptRoot?: string;
  cacheDir?: string;
  env?: NodeJS.ProcessEnv;
  now?: Date;
}

export async function resolveLock(manifest: Manifest, opts: ResolveLockOptions = {}): Promise<Lock> {
  const requests: ResolveRequest[] = [];
  for (const p of manifest.packages) if (p.kind === 'name') requests.push({ name: p.name, version: p.version });
  let packages: LockedPackage[] = [];
  if (requests.length > 0) {
    const { records } = await loadSources(manifest.sources, {
      arch: manifest.architecture,
      mirrors: opts.mirrors,
      aptRoot: opts.aptRoot,
      cacheDir: opts.cacheDir,
      env: opts.env,
      now: opts.now,
    });
    const closure = resolveClosure(new Universe(records, manifest.architecture), requests);
    packages = closure.map((r) => ({
      name: r.name,
      version: r.version,
      architecture: r.architecture,
      suite: r.suite,
      filename: r.filename,
      sha256: r.sha256,
      size: r.size,
    }));
  }
  return { version: 1, packages, files: await pinFiles(manifest) };
}

async function pinFiles(manifest: Manifest): Promise<LockedFile[]> {
  if (manifest.files.length === 0) return [];
  // The lock keys files by src as written in the manifest, so read the raw text.
  const raw = parse(manifest.origin.bytes.toString('utf8')) as { files?: { src?: string }[] } | null;
  const out: LockedFile[] = [];
  for (let i = 0; i < manifest.files.length; i++) {
    const f = manifest.files[i]!;
    const written = raw?.files?.[i]?.src ?? f.src;
    const hex = await inputDigest(f.src, written);
    if (!out.some((o) => o.src === written)) out.push({ src: written, sha256: hex });
  }
  return out;
}
