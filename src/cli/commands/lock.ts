import type { Command } from 'commander';
import { action, note } from '../output.js';
import { collect } from '../options.js';
import { EXIT_CODES } from '../../util/errors.js';

interface LockFlags {
  check?: boolean;
  full?: boolean;
  mirror?: string[];
  cacheDir?: string;
  json?: boolean;
}

export function registerLock(program: Command): void {
  program
    .command('lock')
    .summary('resolve the requested Debian packages and pin them (and files: inputs) in the manifest')
    .description(
      "Fetch each suite's InRelease, verify its OpenPGP signature against the source's keyring, check\n" +
        'the Packages indexes against its SHA256 table, resolve Depends and Pre-Depends of the requested\n' +
        'packages, and write the closure (name, version, architecture, suite, pool filename, size,\n' +
        "sha256) and a sha256 for every files: input into the manifest's lock: section. Each pinned\n" +
        '.deb is downloaded (into the cache) and the sha256 of its decompressed data archive pinned too\n' +
        '(dataSha256), so builds can reuse unpacked archives from the cache. Only that\n' +
        'section changes; relocking an unchanged world changes no byte. The lock records a digest of\n' +
        'what the resolution depended on (sources, requests, keyrings, architectures): while it is\n' +
        'unchanged, lock keeps the package pins and re-pins files: inputs only, offline, in\n' +
        'milliseconds (--full resolves again). With --check, nothing is fetched or written: exit 11\n' +
        'when the lock is missing, does not match the requests, or a files: input changed.',
    )
    .argument('<manifest>', 'manifest.yaml')
    .option(
      '--check',
      'only check, offline, that the lock matches the requests and every files: input its pin (exit 11 if not)',
    )
    .option('--full', 'resolve the packages again even when nothing they depend on changed')
    .option(
      '--mirror <suite=url>',
      'mirror for a suite, repeatable (overrides MKIMG_MIRROR_*, url: and the host apt config)',
      collect,
      [],
    )
    .option('--cache-dir <dir>', 'content-addressed cache for indexes and .debs (default $XDG_CACHE_HOME/mkimg)')
    .option('--json', 'print one JSON object')
    .addHelpText(
      'after',
      `
Examples:
  $ mkimg lock examples/python/manifest.yaml
  $ mkimg lock manifest.yaml --mirror bookworm=http://127.0.0.1:8080/debian
  $ MKIMG_MIRROR_BOOKWORM_SECURITY=http://127.0.0.1:8081/debian-security mkimg lock manifest.yaml
  $ mkimg lock --check manifest.yaml || echo "run mkimg lock"
  $ mkimg lock manifest.yaml --full     # resolve again: newer package versions from the mirror

Mirror order per suite: --mirror SUITE=URL, MKIMG_MIRROR_<SUITE>, MKIMG_MIRROR, the source's url:,
then the host's /etc/apt/sources.list(.d) entry serving that suite.
Exit codes: 0 ok, 3 manifest, 4 input (a downloaded .deb that is not what its index pins),
5 repository (network, signature, index hash, a .deb the mirror does not serve), 11 lock stale
(--check), 13 resolve (unsatisfiable, conflict, unknown package).`,
    )
    .action(
      action(
        async (manifestPath: string, flags: LockFlags) => {
          // Loaded on use: `mkimg --help` should not pay for YAML and the schema.
          const { checkManifestLock, lockManifest } = await import('../../lock/lock.js');
          if (flags.check) {
            const st = await checkManifestLock(manifestPath);
            return {
              json: st,
              human: st.current
                ? [`${manifestPath}: lock is current`]
                : [
                    `${manifestPath}: lock is stale or missing:`,
                    ...st.problems.map((p) => `  - ${p}`),
                    `run: mkimg lock ${manifestPath}`,
                  ],
              exitCode: st.current ? 0 : EXIT_CODES.lock,
            };
          }
          const json = Boolean(flags.json);
          const { parseMirrorFlags } = await import('../../debian/mirrors.js');
          const r = await lockManifest(manifestPath, {
            full: flags.full,
            mirrors: parseMirrorFlags(flags.mirror),
            cacheDir: flags.cacheDir,
            progress: !json,
            onSource: (line) => note(json, line),
          });
          const files = r.lock.files.length;
          const facts = {
            manifest: r.manifest,
            changed: r.changed,
            resolved: r.resolved,
            filesChanged: r.filesChanged,
          };
          if (!r.resolved) {
            // Nothing the packages depend on changed: one line says what did.
            const what = r.filesChanged.length
              ? `re-pinned ${r.filesChanged.length} files: input${r.filesChanged.length > 1 ? 's' : ''} (${r.filesChanged.join(', ')})`
              : 'nothing changed';
            return {
              json: { ...facts, files: r.lock.files },
              human: [
                `${manifestPath}: ${what}; packages unchanged (their sources and requests are as locked: not resolved again, no network; --full resolves)`,
              ],
            };
          }
          if (r.architectures) {
            const perArch = Object.entries(r.architectures);
            return {
              json: { ...facts, architectures: r.architectures, files: r.lock.files },
              human: [
                ...perArch.flatMap(([a, l]) => l.packages.map((p) => `  ${a}: ${p.name} ${p.version}`)),
                `${manifestPath}: ${r.changed ? 'lock written' : 'lock unchanged'} (${perArch.map(([a, l]) => `${l.packages.length} packages for ${a}`).join(', ')}, ${files} files)`,
              ],
            };
          }
          const packages = r.packages ?? [];
          return {
            json: { ...facts, packages, files: r.lock.files },
            human: [
              ...packages.map((p) => `  ${p.name} ${p.version}`),
              `${manifestPath}: ${r.changed ? 'lock written' : 'lock unchanged'} (${r.lock.packages.length} packages, ${files} files)`,
            ],
          };
        },
        (_m: string, flags: LockFlags) => Boolean(flags.json),
      ),
    );
}
