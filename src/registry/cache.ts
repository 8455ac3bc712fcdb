/**
 * A registry repository as a shared build cache. An image built from manifest
 * bytes with sha256 H is stored under the tag `mkimg-<first 40 hex of H>`;
 * any machine that builds the same manifest bytes finds it there.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MkimgError } from '../util/errors.js';
import { MANIFEST_SHA_LABEL } from '../oci/model.js';
import { blobMember, openImageLayout, readMember } from '../oci/image-tar.js';
import { pullImage, type PullOptions } from './pull.js';
import { pushImage, type PushOptions, type PushResult } from './push.js';
import { parseRepository } from './reference.js';

export function cacheTag(manifestSha256: string): string {
  if (!/^[0-9a-f]{64}$/.test(manifestSha256))
    throw new MkimgError('internal', `cache: "${manifestSha256}" is not a sha256 hex`);
  return `mkimg-${manifestSha256.slice(0, 40)}`;
}

/** "host/repo" + the cache tag. */
export function cacheReference(registryRepo: string, manifestSha256: string): string {
  const r = parseRepository(registryRepo);
  return `${r.registry}/${r.repository}:${cacheTag(manifestSha256)}`;
}

export interface CacheLookupOptions extends PullOptions {
  /** NAME:TAG to record in the pulled tar: the manifest's name and tag, so the tar equals a local build. */
  name?: string;
  /** Folder for the pulled tar (default: a new temp folder). The caller removes the file (and the folder it made). */
  dir?: string;
  /** Told why a present entry was not used. */
  onWarning?: (message: string) => void;
}

/**
 * Pull the cached image for `manifestSha256` from `registryRepo` ("host/repo").
 * Returns the path of the pulled image tar, or null when the registry has no
 * entry (or one whose config label org.mkimg.manifest.sha256 is not this
 * manifest's: it is then ignored, with a warning, and a build replaces it).
 */
export async function cacheLookup(
  registryRepo: string,
  manifestSha256: string,
  opts: CacheLookupOptions = {},
): Promise<string | null> {
  const ref = cacheReference(registryRepo, manifestSha256);
  const madeDir = opts.dir === undefined;
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), 'mkimg-cache-'));
  const out = join(dir, `${cacheTag(manifestSha256)}.tar`);
  const cleanup = () => {
    rmSync(out, { force: true });
    if (madeDir) rmSync(dir, { recursive: true, force: true });
  };
  try {
    const r = await pullImage(ref, out, { ...opts, allowMissing: true });
    if (!r) {
      cleanup();
      return null;
    }
    // An image of several platforms carries the same label in every platform's config.
    const layout = await openImageLayout(out);
    const img = layout.kind === 'image' ? layout.image : layout.index.platforms[0]!.image;
    const cfg = JSON.parse((await readMember(out, blobMember(img, img.manifest.config.digest)!)).toString('utf8')) as {
      config?: { Labels?: Record<string, string> };
    };
    const label = cfg.config?.Labels?.[MANIFEST_SHA_LABEL];
    if (label !== manifestSha256) {
      opts.onWarning?.(
        `cache entry ${ref} has ${MANIFEST_SHA_LABEL}=${label ?? '(none)'}, not ${manifestSha256}: ignored (a build will replace it)`,
      );
      cleanup();
      return null;
    }
    return out;
  } catch (e) {
    cleanup();
    throw e;
  }
}

/** Push a built image tar to the cache tag for `manifestSha256` in `registryRepo`. */
export async function cachePublish(
  registryRepo: string,
  manifestSha256: string,
  imageTarPath: string,
  opts: PushOptions = {},
): Promise<PushResult> {
  return pushImage(imageTarPath, cacheReference(registryRepo, manifestSha256), opts);
}
