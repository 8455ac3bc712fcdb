/**
 * A CommonJS file loaded with V8's code cache beside it: the compiled code
 * of its functions kept from an earlier run, so that a big generated module
 * (the manifest's schema validator: 140 KB, one function) is neither parsed
 * nor compiled again at every start (~15 ms of each lock and build).
 *
 * The cache is derived data only: `<file>.v8-cache` holds the sha256 of
 * what it was made from (the file's text, Node.js's version, the platform)
 * and the sha256 of its payload. One that does not match both is not used,
 * and V8 refuses any it cannot use (another V8, other flags): the file is
 * then compiled from its text, as without a cache, and the cache made again
 * once its functions ran (make()). Writing it is best effort (a read-only
 * install goes without), by rename, so concurrent runs leave a whole one.
 */
import { readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire, Module } from 'node:module';
import { dirname } from 'node:path';
import { Script } from 'node:vm';
import { sha256Hex } from '../util/digest.js';

const HEX = 64;

export interface CachedModule<T> {
  exports: T;
  /** 'used': compiled from the cache; 'compiled': from the text (no usable cache). */
  cache: 'used' | 'compiled';
  /** Write the cache now, with whatever of the module's code has been compiled so far (after 'compiled'). */
  make(): void;
}

export function cacheFileOf(path: string): string {
  return `${path}.v8-cache`;
}

export function loadCommonJsCached<T>(path: string): CachedModule<T> {
  const source = readFileSync(path, 'utf8');
  const key = sha256Hex(`${process.version}\0${process.platform}\0${process.arch}\0${source}`);
  const cacheFile = cacheFileOf(path);
  let cachedData: Buffer | undefined;
  try {
    const raw = readFileSync(cacheFile);
    const payload = raw.subarray(2 * HEX);
    if (raw.toString('latin1', 0, HEX) === key && raw.toString('latin1', HEX, 2 * HEX) === sha256Hex(payload))
      cachedData = payload;
  } catch {
    // none yet
  }
  // Node.js's own CommonJS wrapper, so the module sees what require() would give it.
  const script = new Script(`(function (exports, require, module, __filename, __dirname) {${source}\n})`, {
    filename: path,
    ...(cachedData ? { cachedData } : {}),
  });
  const used = cachedData !== undefined && !script.cachedDataRejected;
  // A module as require() makes it, in require's cache: a later require(path) gets this one.
  const require = createRequire(path);
  const module = new Module(path);
  module.filename = path;
  (script.runInThisContext() as (...a: unknown[]) => void)(module.exports, require, module, path, dirname(path));
  module.loaded = true;
  require.cache[path] = module;
  return {
    exports: module.exports as T,
    cache: used ? 'used' : 'compiled',
    make() {
      const tmp = `${cacheFile}.${process.pid}.tmp`;
      try {
        const payload = script.createCachedData();
        writeFileSync(tmp, Buffer.concat([Buffer.from(key + sha256Hex(payload), 'latin1'), payload]));
        renameSync(tmp, cacheFile);
      } catch {
        rmSync(tmp, { force: true });
      }
    },
  };
}
