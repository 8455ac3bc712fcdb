/**
 * mkimg verify image.tar manifest.sig: in order, stopping at the first failure,
 *   1. signature  — the manifest's detached signature is good, by a trusted key (exit 6)
 *   2. integrity  — the image tar is whole (exit 7)
 *   3. binding    — the config label org.mkimg.manifest.sha256 is the manifest's sha256 (exit 8)
 *   4. rebuild    — unless --no-rebuild, building the manifest again gives the same bytes (exit 9)
 * Steps 1 and 2 run concurrently (the image is hashed while the signature is
 * checked) but are reported in this order.
 */
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { MkimgError } from '../util/errors.js';
import { readInputFile } from '../util/input-file.js';
import { sha256Hex } from '../util/digest.js';
import type { SignatureCheck } from '../sign/verify-signature.js';
import { checkImageIntegrityInWorker, MANIFEST_LABEL, type CheckedImageSummary } from './integrity.js';
import { diffImages, type Difference } from './diff.js';

function readFileOr(path: string, kind: 'usage', what: string, hint: string): Buffer {
  return readInputFile(path, what, hint, kind);
}

/** The signature's name without .sig, else manifest.yaml beside it (kept here so verify loads openpgp.js only after the image scan started). */
function defaultManifestPath(sigPath: string): string {
  const abs = resolve(sigPath);
  if (abs.endsWith('.sig') || abs.endsWith('.asc')) {
    const base = abs.slice(0, -4);
    if (existsSync(base)) return base;
  }
  return join(dirname(abs), 'manifest.yaml');
}

export interface BuildImageOptions {
  manifestPath: string;
  output: string;
  cacheDir?: string;
  mirrors?: Record<string, string>;
  quiet?: boolean;
  /** Whether staged roots and compressed layers kept in the cache may be reused (verify: never; nothing vouches for them). */
  cachedWork?: boolean;
}
export interface BuildImageResult {
  imageId: string;
  manifestDigest: string;
  output: string;
  sizeBytes: number;
}
export type BuildImageFn = (opts: BuildImageOptions) => Promise<BuildImageResult>;

export interface VerifyOptions {
  image: string;
  signature: string;
  /** Default: the signature's path without .sig, else manifest.yaml beside it. */
  manifest?: string;
  keyring: string;
  /** Default true. */
  rebuild?: boolean;
  cacheDir?: string;
  mirrors?: Record<string, string>;
  quiet?: boolean;
  /** The builder used for step 4; default: buildImage from src/build/build.ts. */
  build?: BuildImageFn;
  /** Where the rebuilt image goes (default: a temp dir, removed afterwards). */
  keepRebuild?: string;
}

export interface VerifyReport {
  image: string;
  manifest: string;
  signature: SignatureCheck;
  imageId: string;
  manifestDigest: string;
  manifestSha256: string;
  repoTags: string[];
  /** An image of several platforms: each one's manifest and config digests (manifestDigest is the index's). */
  platforms?: { platform: string; manifestDigest: string; imageId: string }[];
  rebuild: 'identical' | 'skipped';
}

async function defaultBuild(): Promise<BuildImageFn> {
  // Loaded only when a rebuild is asked for: verify --no-rebuild stays light.
  const mod = await import('../build/build.js');
  return mod.buildImage;
}

export function summarizeDifferences(diffs: Difference[], max = 20): string {
  const lines = diffs.slice(0, max).map((d) => '  ' + d.message);
  if (diffs.length > max) lines.push(`  ... and ${diffs.length - max} more (mkimg diff shows them all)`);
  return lines.join('\n');
}

export async function verifyImage(opts: VerifyOptions): Promise<VerifyReport> {
  const image = resolve(opts.image);
  const sigPath = resolve(opts.signature);
  const manifestPath = resolve(opts.manifest ?? defaultManifestPath(sigPath));
  const manifestBytes = readFileOr(
    manifestPath,
    'usage',
    'manifest',
    opts.manifest
      ? 'check --manifest'
      : `no manifest beside the signature: give it with --manifest (looked for ${manifestPath})`,
  );
  const sigBytes = readFileOr(
    sigPath,
    'usage',
    'signature',
    "give the path of the manifest's detached signature (mkimg sign writes <manifest>.sig)",
  );
  try {
    if (!statSync(image).isFile()) throw Object.assign(new Error(), { code: 'not a file' });
  } catch (e) {
    throw new MkimgError('usage', `cannot read image ${image}: ${(e as NodeJS.ErrnoException).code ?? e}`, {
      hint: 'give the path of an image tar written by mkimg build',
    });
  }

  // 2 runs alongside 1; its result (or failure) is looked at only after 1 passed.
  const integrity: Promise<CheckedImageSummary> = checkImageIntegrityInWorker(image);
  integrity.catch(() => undefined);

  // 1. signature (openpgp.js loads while the worker hashes)
  const { readKeyring } = await import('../sign/keys.js');
  const { verifyDetachedSignature } = await import('../sign/verify-signature.js');
  const keys = await readKeyring(opts.keyring);
  const signature = await verifyDetachedSignature(
    new Uint8Array(manifestBytes),
    new Uint8Array(sigBytes),
    sigPath,
    keys,
    opts.keyring,
  );

  // 2. integrity
  const checked = await integrity;

  // 3. binding
  const manifestSha256 = sha256Hex(manifestBytes);
  // An image of several platforms: every platform's config must carry the binding.
  for (const p of checked.platforms ?? []) {
    const l = p.labels[MANIFEST_LABEL];
    if (l !== manifestSha256) {
      const name = [p.platform?.os, p.platform?.architecture, p.platform?.variant].filter(Boolean).join('/');
      throw new MkimgError(
        'binding',
        `image ${image}: the ${name} image ${l === undefined ? `carries no ${MANIFEST_LABEL} label` : `was built from a different manifest (its ${MANIFEST_LABEL} label is ${l})`}, but ${manifestPath} has sha256 ${manifestSha256}`,
        {
          hint: 'every platform of the index must be built from the signed manifest; rebuild the image from it',
          details: { platform: name, label: l, manifestSha256 },
        },
      );
    }
  }
  const label = checked.labels[MANIFEST_LABEL];
  if (label === undefined) {
    throw new MkimgError(
      'binding',
      `image ${image} carries no ${MANIFEST_LABEL} label, so it cannot be tied to ${manifestPath}`,
      {
        hint: 'the image was not built by mkimg build; build it from the signed manifest',
      },
    );
  }
  if (label !== manifestSha256) {
    throw new MkimgError(
      'binding',
      `image ${image} was built from a different manifest: its ${MANIFEST_LABEL} label is ${label}, but ${manifestPath} has sha256 ${manifestSha256}`,
      {
        hint: 'verify the image against the manifest (and signature) it was built from',
        details: { label, manifestSha256 },
      },
    );
  }

  const report: VerifyReport = {
    image,
    manifest: manifestPath,
    signature,
    imageId: checked.configDigest,
    manifestDigest: checked.manifestDigest,
    manifestSha256,
    repoTags: checked.repoTags,
    ...(checked.platforms
      ? {
          platforms: checked.platforms.map((p) => ({
            platform: [p.platform?.os, p.platform?.architecture, p.platform?.variant].filter(Boolean).join('/'),
            manifestDigest: p.manifestDigest,
            imageId: p.configDigest,
          })),
        }
      : {}),
    rebuild: 'skipped',
  };
  if (opts.rebuild === false) return report;

  // 4. rebuild
  const build = opts.build ?? (await defaultBuild());
  const tmp = opts.keepRebuild ? undefined : mkdtempSync(join(tmpdir(), 'mkimg-verify-'));
  const out = opts.keepRebuild ? resolve(opts.keepRebuild) : join(tmp!, 'rebuilt.tar');
  try {
    await build({
      manifestPath,
      output: out,
      cacheDir: opts.cacheDir,
      mirrors: opts.mirrors,
      quiet: opts.quiet ?? true,
      cachedWork: false,
    });
    // A variant image (variants:, tag TAG-NAME) is compared with the variant the rebuild wrote beside `out`.
    const variantOf = (report.repoTags[0] ?? '').match(/-([a-z0-9][a-z0-9-]{0,31})$/)?.[1];
    const candidate = variantOf ? out.replace(/(\.tar)?$/, `-${variantOf}$1`) : undefined;
    const against = candidate && existsSync(candidate) ? candidate : out;
    const diff = await diffImages(image, against);
    if (!diff.identical) {
      throw new MkimgError(
        'rebuild',
        `rebuilding ${manifestPath} gave different bytes than ${image}:\n${summarizeDifferences(diff.differences)}`,
        {
          hint: 'the image was not built from this manifest by a faithful mkimg, or the build is not reproducible here; mkimg diff compares two images',
          details: { differences: diff.differences },
        },
      );
    }
  } finally {
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  }
  report.rebuild = 'identical';
  return report;
}
