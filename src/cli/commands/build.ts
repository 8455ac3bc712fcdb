import { type Command, Option } from 'commander';
import type { BuildOptions, BuildResult } from '../../build/build.js';
import { action, type CommandOutput, progressEnabled, reportError } from '../output.js';
import { MkimgError } from '../../util/errors.js';
import { collect } from '../options.js';

interface BuildFlags {
  output: string;
  json?: boolean;
  cacheDir?: string;
  mirror?: string[];
  report?: string;
  reportHtml?: string;
  sbom?: string;
  requireSignature?: boolean;
  keyring?: string;
  signature?: string;
  workDir?: string;
  push?: string;
  cacheRegistry?: string;
  insecure?: boolean;
  dataCache?: boolean;
  platform?: string;
  repin?: boolean;
  watch?: boolean;
}

export function registerBuild(program: Command): void {
  program
    .command('build')
    .summary('build a byte-identical OCI image tar from a manifest')
    .description(
      'Fetch the pinned .debs (sha256-checked), unpack them into a staging root without maintainer\n' +
        'scripts, write accounts and system files, trace the checks, keep only what they touch, prove\n' +
        'the minimized root behaves the same, and write one normalized OCI image tar. The output is\n' +
        'written to a temporary name and renamed: a failed build leaves no image behind.',
    )
    .argument('<manifest>', 'manifest.yaml')
    .option('-o, --output <file>', 'image tar to write', 'image.tar')
    .option('--json', 'print one JSON object (imageId, manifestDigest, output, sizeBytes, ...) and no progress')
    .option('--cache-dir <dir>', 'content-addressed .deb cache (default $XDG_CACHE_HOME/mkimg)')
    .option(
      '--mirror <suite=url>',
      'mirror for a suite, repeatable (overrides MKIMG_MIRROR_* and the host apt config)',
      collect,
      [],
    )
    .option('--report <file>', 'write the minimization report (JSON)')
    .option(
      '--report-html <file>',
      'write a self-contained HTML report of the image: treemaps, packages before/after minimization, why each file was kept, layers, config, SBOM',
    )
    .option('--sbom <file>', 'also write the SPDX 2.3 SBOM here (it is always stored in the image)')
    .addOption(
      new Option('--require-signature', 'refuse a manifest without a good OpenPGP signature').env(
        'MKIMG_REQUIRE_SIGNATURE',
      ),
    )
    .addOption(new Option('--keyring <file>', 'trusted public keys for --require-signature').env('MKIMG_KEYRING'))
    .option('--signature <file>', 'detached signature (default: <manifest>.sig, then manifest.sig beside it)')
    .option(
      '--platform <os/arch>',
      "build one of the manifest's architectures (linux/amd64, linux/arm64, or the Debian name)",
    )
    .option('--work-dir <dir>', 'parent folder for the temporary staging root (default: system temp dir)')
    .option('--push <reference>', 'after building, push the image to REGISTRY/REPO[:TAG]')
    .addOption(
      new Option(
        '--cache-registry <repo>',
        'use REGISTRY/REPO as a shared build cache: pull an image built from the same manifest bytes instead of building, publish after building',
      ).env('MKIMG_CACHE_REGISTRY'),
    )
    .option('--insecure', 'allow plain HTTP to a registry that is not on loopback')
    .option(
      '--repin',
      're-pin changed files: inputs into the manifest first (offline; for local iteration: the manifest changes, so not with --require-signature)',
    )
    .option(
      '--watch',
      'build, then build again (re-pinning files: inputs, as --repin) whenever the manifest or an input changes, until Ctrl-C; one result per build',
    )
    .addOption(
      new Option(
        '--data-cache',
        'also reuse cached decompressed .deb data for packages whose lock has no dataSha256 (older locks; trusts the cache folder, see SPEC.md). Pinned ones are always reused',
      ).env('MKIMG_DATA_CACHE'),
    )
    .addHelpText(
      'after',
      `
Examples:
  $ mkimg build examples/static/manifest.yaml -o static.tar
  $ mkimg build manifest.yaml -o app.tar --json | jq -r .imageId
  $ mkimg build manifest.yaml -o app.tar --report-html app.html
  $ MKIMG_MIRROR_BOOKWORM=http://127.0.0.1:8080/debian mkimg build manifest.yaml
  $ mkimg build manifest.yaml --repin -o app.tar      # after editing app files: no separate lock step
  $ mkimg build manifest.yaml --watch -o app.tar      # rebuild on every edit of the manifest or its inputs
  $ mkimg build manifest.yaml --require-signature --keyring team.asc
  $ mkimg build manifest.yaml --push registry.example:5000/team/app:1.0
  $ mkimg build manifest.yaml --cache-registry registry.example:5000/mkimg-cache

Exit codes: 0 ok, 3 manifest, 4 input sha256/hostile package, 5 repository, 6 signature,
10 check failed, 11 lock stale, 12 registry, 14 sandbox (see SPEC.md).`,
    )
    .action(
      action(
        async (manifest: string, flags: BuildFlags) => {
          if (flags.watch) return watch(manifest, flags);
          const r = await build(flags, { ...(await buildOptions(manifest, flags)), repin: flags.repin });
          return buildOutput(r, manifest, flags);
        },
        (_m: string, flags: BuildFlags) => Boolean(flags.json),
      ),
    );
}

async function buildOptions(manifest: string, flags: BuildFlags): Promise<BuildOptions> {
  const showProgress = progressEnabled(Boolean(flags.json));
  const { parseMirrorFlags } = await import('../../debian/mirrors.js');
  return {
    manifestPath: manifest,
    output: flags.output,
    cacheDir: flags.cacheDir,
    mirrors: parseMirrorFlags(flags.mirror),
    quiet: !showProgress,
    reportPath: flags.report,
    sbomPath: flags.sbom,
    workDir: flags.workDir,
    push: flags.push,
    cacheRegistry: flags.cacheRegistry,
    insecure: flags.insecure,
    dataCache: Boolean(flags.dataCache),
    platform: flags.platform,
    requireSignature: flags.requireSignature
      ? { keyring: requireKeyring(flags.keyring), signature: flags.signature }
      : undefined,
    onProgress: showProgress ? (m) => process.stderr.write(`mkimg: ${m}\n`) : undefined,
  };
}

/** One build, and its HTML report when asked for. */
async function build(flags: BuildFlags, opts: BuildOptions): Promise<BuildResult> {
  // Loaded on use: `mkimg --help` should not pay for the whole pipeline.
  const { buildImage } = await import('../../build/build.js');
  const r = await buildImage(opts);
  await writeHtmlReport(r, flags);
  return r;
}

async function writeHtmlReport(r: BuildResult, flags: BuildFlags): Promise<void> {
  if (!flags.reportHtml) return;
  const { imageReportHtml, writeReport } = await import('../../report/report.js');
  writeReport(flags.reportHtml, await imageReportHtml(flags.output, r.minimize)); // the name as given, like inspect
}

/**
 * --watch: every build's result printed as it comes (one JSON object per line
 * with --json), errors reported without ending the watch. Only a signal ends it.
 */
async function watch(manifest: string, flags: BuildFlags): Promise<CommandOutput> {
  const json = Boolean(flags.json);
  const opts = await buildOptions(manifest, flags);
  const { watchBuilds } = await import('../../build/watch.js');
  let told = false;
  return watchBuilds(opts, {
    onBuild: async (b) => {
      if (!b.ok) {
        reportError(b.error, json);
        return;
      }
      try {
        await writeHtmlReport(b.result, flags);
      } catch (e) {
        reportError(e, json);
      }
      const out = buildOutput(b.result, manifest, flags);
      if (json) process.stdout.write(`${JSON.stringify({ ...out.json, seconds: round(b.seconds) })}\n`);
      else
        for (const line of [...out.human, `built in:        ${round(b.seconds)} s`]) process.stdout.write(`${line}\n`);
    },
    onWarning: (m) => process.stderr.write(`mkimg: warning: ${m}\n`),
    onWatching: (folders) => {
      if (!json && !told) process.stderr.write(`mkimg: watching ${folders} folder(s) for changes (Ctrl-C ends)\n`);
      told = true;
    },
  });
}

const round = (s: number) => Math.round(s * 1000) / 1000;

function buildOutput(r: BuildResult, manifest: string, flags: BuildFlags): CommandOutput {
  const summary = r.minimize as
    | undefined
    | { before?: { files: number; bytes: number }; after?: { files: number; bytes: number } };
  return {
    json: {
      imageId: r.imageId,
      manifestDigest: r.manifestDigest,
      output: r.output,
      sizeBytes: r.sizeBytes,
      reference: `${r.name}:${r.tag}`,
      manifestSha256: r.manifestSha256,
      layers: r.layers,
      packages: r.packages,
      files: r.files,
      signer: r.signer,
      minimize: summary ? { before: summary.before, after: summary.after } : undefined,
      cache: r.cache,
      platforms: r.platforms?.map((p) => ({
        architecture: p.architecture,
        manifestDigest: p.manifestDigest,
        imageId: p.imageId,
        minimize: p.minimize ? { before: p.minimize.before, after: p.minimize.after } : undefined,
      })),
      pushed: r.pushed,
      ...(r.repinned ? { repinned: r.repinned } : {}),
      ...(r.variants ? { variants: r.variants } : {}),
      warnings: r.warnings,
      ...(flags.reportHtml ? { reportHtml: flags.reportHtml } : {}),
    },
    human: [
      `image ${r.name}:${r.tag} written to ${r.output} (${r.sizeBytes} bytes, ${r.files} layer entries)`,
      ...(r.platforms
        ? [
            `index digest:    ${r.manifestDigest}`,
            ...r.platforms.map(
              (p) =>
                `${`${p.architecture}:`.padEnd(17)}manifest ${p.manifestDigest}, image id ${p.imageId}${p.minimize ? `, minimized ${p.minimize.before.files} → ${p.minimize.after.files} files` : ''}`,
            ),
          ]
        : [`image id:        ${r.imageId}`, `manifest digest: ${r.manifestDigest}`]),
      ...(summary?.before && summary.after && !r.platforms
        ? [
            `minimized:       ${summary.before.files} → ${summary.after.files} files, ${summary.before.bytes} → ${summary.after.bytes} bytes`,
          ]
        : []),
      ...(r.signer ? [`signed by:       ${r.signer}`] : []),
      ...(r.variants ?? []).map(
        (v) =>
          `variant ${`${v.name}:`.padEnd(9)}${r.name}:${r.tag}-${v.name} written to ${v.output} (image id ${v.imageId}; + ${v.packages.join(', ')})`,
      ),
      ...(r.repinned?.length
        ? [
            `re-pinned:       ${r.repinned.join(', ')} in ${manifest} (the manifest's bytes changed: its signature, if any, no longer covers it)`,
          ]
        : []),
      ...(r.cache === 'hit' ? ['cache:           pulled from the cache registry (checked, not rebuilt)'] : []),
      ...(r.cache === 'published' ? ['cache:           published to the cache registry'] : []),
      ...r.warnings.map((w) => `warning:         ${w}`),
      ...(r.pushed ? [`pushed:          ${r.pushed.reference}@${r.pushed.manifestDigest}`] : []),
      ...(flags.reportHtml ? [`html report:     ${flags.reportHtml}`] : []),
    ],
  };
}

function requireKeyring(k: string | undefined): string {
  if (!k) throw new MkimgError('usage', '--require-signature needs --keyring FILE (or MKIMG_KEYRING)');
  return k;
}
