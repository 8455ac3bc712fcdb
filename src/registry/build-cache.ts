/**
 * Glue for `mkimg build --cache-registry REPO [--push REF]`: look the manifest
 * up in the cache, accept a hit only when the caller's check (verify
 * --no-rebuild) passes, otherwise build and publish; then push if asked.
 * A cache that is down or refuses never fails the build: it is reported
 * through onNote and the build goes on. A failing --push does fail.
 */
import { renameSync, rmSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { cacheLookup, cachePublish, cacheReference } from './cache.js';
import type { RegistryOptions } from './client.js';
import { pushImage, type PushResult } from './push.js';
import { parseReference, parseRepository } from './reference.js';

export interface CachedBuildOptions {
  /** HOST[:PORT]/REPO of the cache. */
  cacheRepo: string;
  /** The cache key: sha256 of the manifest's bytes (the bytes the caller verified and parsed). */
  manifestSha256: string;
  /** The manifest's name and tag: recorded in a pulled tar so it equals a local build. */
  name: string;
  tag: string;
  /** The image tar to produce. */
  output: string;
  /** Build the image into `output` (called on a miss, or when a hit is rejected). */
  build: () => Promise<void>;
  /** Check a pulled image (e.g. verify --no-rebuild); throw to reject it. */
  check?: (tarPath: string) => Promise<void>;
  /** Push the result here afterwards (blobs are mounted from the cache repo when on the same registry). */
  push?: string;
  registry?: RegistryOptions;
  onNote?: (message: string) => void;
}

export interface CachedBuildResult {
  cache: 'hit' | 'miss' | 'rejected' | 'unavailable';
  cacheReference: string;
  published?: PushResult;
  pushed?: PushResult;
}

export async function cachedBuild(opts: CachedBuildOptions): Promise<CachedBuildResult> {
  const note = opts.onNote ?? (() => {});
  const manifestSha256 = opts.manifestSha256;
  const cacheRef = cacheReference(opts.cacheRepo, manifestSha256);
  const output = resolve(opts.output);
  let state: CachedBuildResult['cache'] = 'miss';
  let hit: string | null = null;
  try {
    hit = await cacheLookup(opts.cacheRepo, manifestSha256, {
      ...opts.registry,
      name: `${opts.name}:${opts.tag}`,
      dir: dirname(output),
      onWarning: note,
    });
  } catch (e) {
    state = 'unavailable';
    note(`cache ${cacheRef}: lookup failed, building: ${(e as Error).message}`);
  }
  if (hit) {
    try {
      await opts.check?.(hit);
      renameSync(hit, output);
      state = 'hit';
      note(`cache hit: ${cacheRef}`);
    } catch (e) {
      rmSync(hit, { force: true });
      state = 'rejected';
      note(`cache entry ${cacheRef} failed its check, building: ${(e as Error).message}`);
    }
  }
  const result: CachedBuildResult = { cache: state, cacheReference: cacheRef };
  if (state !== 'hit') {
    await opts.build();
    try {
      result.published = await cachePublish(opts.cacheRepo, manifestSha256, output, opts.registry);
      note(`published to cache: ${cacheRef}`);
    } catch (e) {
      note(`cache ${cacheRef}: publish failed: ${(e as Error).message}`);
    }
  }
  if (opts.push) {
    const target = parseReference(opts.push);
    const cache = parseRepository(opts.cacheRepo);
    const mountFrom = cache.registry === target.registry ? cache.repository : undefined;
    result.pushed = await pushImage(output, opts.push, { ...opts.registry, mountFrom });
  }
  return result;
}
