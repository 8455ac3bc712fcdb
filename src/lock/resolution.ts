/**
 * What a package resolution depended on, as one digest stored in the lock
 * (`resolution:`): the architectures, the sources as written (suites,
 * components, keyring bytes, an explicit url), and the package requests
 * (names, versions, per-architecture limits, local .debs by pin; each
 * variant's). Mirror
 * choice is configuration and is left out. When the digest is unchanged,
 * `mkimg lock` knows the package pins still answer the manifest and re-pins
 * only files: inputs, offline.
 */
import { readFileSync } from 'node:fs';
import { dirname, relative } from 'node:path';
import type { Manifest } from '../manifest/types.js';
import { canonicalJson } from '../util/canonical-json.js';
import { sha256Hex } from '../util/digest.js';
import { MkimgError } from '../util/errors.js';

/** Bumped when what resolution means changes (resolver rules, pinned fields). */
const RESOLUTION_FORMAT = 1;

export function resolutionDigest(manifest: Manifest): string {
  const base = dirname(manifest.origin.path);
  const keyringDigest = (path: string): string => {
    try {
      return sha256Hex(readFileSync(path));
    } catch (e) {
      throw new MkimgError('input', `cannot read keyring ${path}: ${(e as NodeJS.ErrnoException).code ?? e}`, {
        hint: "check the source's keyring: path",
      });
    }
  };
  return sha256Hex(
    canonicalJson({
      format: RESOLUTION_FORMAT,
      architectures: manifest.architectures,
      sources: manifest.sources.map((s) => ({
        url: s.url ?? null,
        suites: s.suites,
        components: s.components,
        keyring: s.keyring ? keyringDigest(s.keyring) : null,
        allowUnsigned: s.allowUnsigned,
      })),
      packages: manifest.packages.map((p) =>
        p.kind === 'name'
          ? { name: p.name, version: p.version ?? null, architectures: p.architectures ?? null }
          : { deb: relative(base, p.path), sha256: p.sha256 },
      ),
      ...(manifest.variants.length
        ? {
            variants: manifest.variants.map((v) => ({
              name: v.name,
              packages: v.packages.map((p) => ({ name: p.name, version: p.version ?? null })),
            })),
          }
        : {}),
    }),
  );
}
