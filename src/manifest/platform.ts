/**
 * A manifest with several architectures builds one image per architecture.
 * forArchitecture gives the manifest as one architecture's build sees it: that
 * architecture, the package requests that apply to it, and its pins, so every
 * stage below the build loop handles one architecture and needs no change.
 */
import type { Lock, Manifest } from './types.js';
import { MkimgError } from '../util/errors.js';

/** Does this manifest lock its pins per architecture (`lock.architectures`)? */
export function isMultiArch(manifest: Manifest): boolean {
  return manifest.architectures.length > 1;
}

export function forArchitecture(manifest: Manifest, arch: string): Manifest {
  if (!manifest.architectures.includes(arch)) {
    throw new MkimgError(
      'usage',
      `the manifest does not build ${arch}: it builds ${manifest.architectures.join(', ')}`,
      {
        hint: 'pick one of those with --platform, or add it to architectures: and run mkimg lock',
      },
    );
  }
  const packages = manifest.packages.filter(
    (p) => p.kind !== 'name' || !p.architectures || p.architectures.includes(arch),
  );
  let lock: Lock | undefined = manifest.lock;
  if (lock && isMultiArch(manifest)) {
    const pins = lock.architectures?.[arch];
    lock = {
      version: lock.version,
      packages: pins?.packages ?? [],
      ...(pins?.variants ? { variants: pins.variants } : {}),
      files: lock.files,
    };
  }
  return { ...manifest, architecture: arch, architectures: [arch], packages, lock };
}

/** Debian architecture names of the OCI platforms mkimg builds. */
const OCI_TO_DEBIAN: Record<string, string> = {
  'linux/amd64': 'amd64',
  'linux/arm64': 'arm64',
  'linux/arm64/v8': 'arm64',
  'linux/arm/v7': 'armhf',
  'linux/arm': 'armhf',
  'linux/386': 'i386',
  'linux/ppc64le': 'ppc64el',
  'linux/s390x': 's390x',
  'linux/riscv64': 'riscv64',
};

/** `--platform linux/arm64` (or a Debian name, `arm64`) → the Debian architecture. */
export function platformToArchitecture(platform: string): string {
  const p = platform.trim().toLowerCase();
  const deb = OCI_TO_DEBIAN[p] ?? (Object.values(OCI_TO_DEBIAN).includes(p) ? p : undefined);
  if (!deb) {
    throw new MkimgError('usage', `unknown platform ${JSON.stringify(platform)}`, {
      hint: `use one of ${Object.keys(OCI_TO_DEBIAN).join(', ')}`,
    });
  }
  return deb;
}
