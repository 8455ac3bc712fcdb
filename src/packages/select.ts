/** Which package source serves a manifest (the interface: source.ts). */
import type { Manifest } from '../manifest/types.js';
import { debianSource } from '../debian/source.js';
import type { PackageSource } from './source.js';

/** Debian: the only source today; a manifest field would choose among several. */
export function packageSourceFor(_manifest: Manifest): PackageSource {
  return debianSource;
}
