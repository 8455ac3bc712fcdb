/**
 * openpgp.js, loaded on first use. Importing it costs ~0.1-0.2 s (it builds
 * its cipher tables at load time), which commands that handle no key or
 * signature (a build without --require-signature, inspect, diff, --help)
 * should not pay. Modules that need it call `await openpgp()`; for types,
 * `import type * as openpgp from 'openpgp'`.
 */
import type * as OpenPGP from 'openpgp';

let loading: Promise<typeof OpenPGP> | undefined;

export function openpgp(): Promise<typeof OpenPGP> {
  return (loading ??= import('openpgp'));
}
