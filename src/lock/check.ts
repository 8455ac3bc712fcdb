/**
 * lockIsCurrent: does the manifest's lock: section still pin what it asks for?
 * Cheap and offline (no resolution): every requested name is locked (at the
 * requested version, for this architecture, from a suite the sources name),
 * and every files: input has a pin. `mkimg build` refuses a stale lock.
 */
import type { Manifest } from '../manifest/types.js';
import { forArchitecture, isMultiArch } from '../manifest/platform.js';

export interface LockStatus {
  ok: boolean;
  problems: string[];
}

export function lockIsCurrent(manifest: Manifest): LockStatus {
  if (!isMultiArch(manifest)) {
    if (manifest.lock?.architectures)
      return { ok: false, problems: ['the lock pins several architectures, the manifest builds one'] };
    return lockIsCurrentForOne(manifest);
  }
  // Several architectures: each one's view must be current, and the lock must pin no other.
  const problems: string[] = [];
  const locked = Object.keys(manifest.lock?.architectures ?? {});
  for (const a of locked)
    if (!manifest.architectures.includes(a))
      problems.push(`the lock pins architecture ${a}, which the manifest does not build`);
  if (manifest.lock && manifest.lock.packages.length > 0)
    problems.push('the lock pins packages for one architecture, the manifest builds several');
  for (const arch of manifest.architectures) {
    if (manifest.lock && !manifest.lock.architectures?.[arch] && manifest.packages.some((p) => p.kind === 'name')) {
      problems.push(`${arch}: the lock has no pins for this architecture`);
      continue;
    }
    for (const p of lockIsCurrentForOne(forArchitecture(manifest, arch)).problems) {
      if (!problems.includes(p))
        problems.push(p.startsWith('files: ') || p.startsWith('the manifest has no lock') ? p : `${arch}: ${p}`);
    }
  }
  return { ok: problems.length === 0, problems };
}

function lockIsCurrentForOne(manifest: Manifest): LockStatus {
  const problems: string[] = [];
  const lock = manifest.lock;
  const requested = manifest.packages.filter((p) => p.kind === 'name');
  if (!lock) {
    if (requested.length > 0 || manifest.files.length > 0) problems.push('the manifest has no lock: section');
    return { ok: problems.length === 0, problems };
  }
  if (lock.version !== 1) problems.push(`lock version ${String(lock.version)} is not supported (expected 1)`);
  const byName = new Map(lock.packages.map((p) => [p.name, p]));
  for (const r of requested) {
    if (r.kind !== 'name') continue;
    const l = byName.get(r.name);
    if (!l) problems.push(`${r.name} is requested but not in the lock`);
    else if (r.version !== undefined && l.version !== r.version)
      problems.push(`${r.name}=${r.version} is requested but the lock pins ${l.version}`);
  }
  // Pins with nothing requested are stale, unless local .debs are there: the
  // resolver pins their dependencies from the sources.
  const localDebs = manifest.packages.some((p) => p.kind === 'deb');
  if (requested.length === 0 && !localDebs && lock.packages.length > 0)
    problems.push('the lock pins packages but none are requested');
  const suites = new Set(manifest.sources.flatMap((s) => s.suites));
  for (const l of lock.packages) {
    if (l.architecture !== manifest.architecture && l.architecture !== 'all') {
      problems.push(`${l.name} is locked for ${l.architecture}, the manifest builds ${manifest.architecture}`);
    }
    if (!suites.has(l.suite)) problems.push(`${l.name} is locked from suite "${l.suite}", which no source names`);
  }
  for (const f of manifest.files) {
    if (!f.sha256) problems.push(`files: ${f.src} has no pin in the lock`);
  }
  for (const v of manifest.variants) {
    const pins = lock.variants?.[v.name]?.packages;
    if (!pins) {
      problems.push(`variants.${v.name} has no pins in the lock`);
      continue;
    }
    for (const r of v.packages) {
      const l = pins.find((p) => p.name === r.name) ?? byName.get(r.name);
      if (!l) problems.push(`variants.${v.name}: ${r.name} is requested but not in the lock`);
      else if (r.version !== undefined && l.version !== r.version)
        problems.push(`variants.${v.name}: ${r.name}=${r.version} is requested but the lock pins ${l.version}`);
    }
  }
  for (const name of Object.keys(lock.variants ?? {}))
    if (!manifest.variants.some((v) => v.name === name))
      problems.push(`the lock pins variant ${name}, which the manifest does not build`);
  return { ok: problems.length === 0, problems };
}
