/**
 * Is an image tar whole? Every blob hashes to its name, every descriptor's
 * digest and size match a blob, the config's rootfs.diff_ids match the layers,
 * index.json and Docker's manifest.json agree, no blob is missing or extra.
 * One pass over the tar (read-image.ts: every body hashed), then checks on what it saw.
 */
import { createHash } from 'node:crypto';
import { MkimgError, type ErrorKind } from '../util/errors.js';
import { canonicalJson } from '../util/canonical-json.js';
import {
  isConfigType,
  isImageManifestType,
  layerCompression,
  MANIFEST_SHA_LABEL,
  MEDIA,
  type Descriptor,
  type Platform,
} from '../oci/model.js';
import { LayerDecoder } from '../oci/decompress.js';
import { JSON_LIMIT, jsonTooLarge, parseJson as parseJsonDoc } from '../oci/image-tar.js';
import { scanImageTar, type ImageTarScan } from './read-image.js';

export const MANIFEST_LABEL = MANIFEST_SHA_LABEL;
const OCI_INDEX = MEDIA.index;

const BLOB_RE = /^blobs\/sha256\/([0-9a-f]{64})$/;
const DIGEST_RE = /^sha256:([0-9a-f]{64})$/;

export type { Descriptor };

/** One image manifest with its config, as checked. */
export interface CheckedPlatformImage {
  /** The platform its index entry names (images of several platforms only). */
  platform?: Platform;
  manifestDigest: string;
  /** Digest of the config = the image ID. */
  configDigest: string;
  config: Record<string, any>;
  manifest: Record<string, any>;
  layers: Descriptor[];
  /** Config labels (config.config.Labels). */
  labels: Record<string, string>;
}

/**
 * A checked image tar. For an image of several platforms, `manifestDigest` is
 * the index's, `platforms` lists each platform's image, and the other fields
 * are those of the image Docker's manifest.json names.
 */
export interface CheckedImage extends CheckedPlatformImage {
  /** Digest of what index.json points at: the image manifest, or the image index. */
  manifestDigest: string;
  platforms?: CheckedPlatformImage[];
  repoTags: string[];
  scan: ImageTarScan;
}

interface CompressedLayer {
  i: number;
  hex: string;
  compression: 'gzip' | 'zstd';
  size: number;
  diffId: string;
}

function failure(path: string, message: string, hint?: string, details?: Record<string, unknown>): MkimgError {
  return new MkimgError('integrity', `image ${path}: ${message}`, {
    hint: hint ?? 'the image was modified after it was built, or the copy is damaged; fetch or build it again',
    details,
  });
}

function fail(path: string, message: string, hint?: string, details?: Record<string, unknown>): never {
  throw failure(path, message, hint, details);
}

/** A JSON document of the image, through the image-tar reader's parser, its errors worded as integrity failures. */
function parseJson(path: string, what: string, entry: { bytes?: Buffer; size: number }): any {
  if (!entry.bytes)
    fail(path, entry.size > JSON_LIMIT ? jsonTooLarge(what, entry.size) : `${what} is not a regular file`);
  return parseJsonDoc(entry.bytes, what, (msg) => failure(path, msg));
}

/**
 * index.json and manifest.json are not covered by any digest, so every byte of
 * them must be accounted for: canonical JSON (as mkimg writes it), known keys only.
 */
function checkExact(path: string, what: string, bytes: Buffer, value: unknown): void {
  if (canonicalJson(value) !== bytes.toString('utf8'))
    fail(path, `${what} is not in canonical JSON form (mkimg writes sorted keys, no whitespace): it was edited`);
}

function onlyKeys(path: string, where: string, obj: Record<string, unknown>, allowed: string[]): void {
  for (const k of Object.keys(obj))
    if (!allowed.includes(k)) fail(path, `${where} has an unexpected key ${JSON.stringify(k)}`);
}

function checkDescriptor(path: string, where: string, d: any): Descriptor {
  if (!d || typeof d !== 'object') fail(path, `${where} is not a descriptor object`);
  if (typeof d.digest !== 'string' || !DIGEST_RE.test(d.digest))
    fail(path, `${where}.digest ${JSON.stringify(d.digest)} is not a sha256 digest`);
  if (typeof d.size !== 'number' || !Number.isSafeInteger(d.size) || d.size < 0)
    fail(path, `${where}.size is not a byte count`);
  if (typeof d.mediaType !== 'string') fail(path, `${where}.mediaType is missing`);
  return d as Descriptor;
}

export type CheckedImageSummary = Omit<CheckedImage, 'scan'>;

/**
 * checkImageIntegrity on a worker thread (when running compiled; in-process
 * otherwise, e.g. under vitest on the .ts sources). Same result, same errors.
 */
export async function checkImageIntegrityInWorker(path: string): Promise<CheckedImageSummary> {
  const url = new URL('../verify/integrity-worker.js', import.meta.url);
  const { existsSync } = await import('node:fs');
  const { fileURLToPath } = await import('node:url');
  if (!existsSync(fileURLToPath(url))) {
    const { scan: _scan, ...rest } = await checkImageIntegrity(path);
    return rest;
  }
  const { Worker } = await import('node:worker_threads');
  return new Promise((res, rej) => {
    const w = new Worker(url, { workerData: { path } });
    w.once(
      'message',
      (m: {
        ok?: CheckedImageSummary;
        error?: { kind: ErrorKind; message: string; hint?: string; details?: Record<string, unknown> };
        crash?: string;
      }) => {
        if (m.ok) res(m.ok);
        else if (m.error)
          rej(new MkimgError(m.error.kind, m.error.message, { hint: m.error.hint, details: m.error.details }));
        else rej(new Error(`integrity worker failed: ${m.crash}`));
        void w.terminate();
      },
    );
    w.once('error', rej);
  });
}

/** Scan and check an image tar. Throws MkimgError('integrity') at the first problem. */
export async function checkImageIntegrity(path: string): Promise<CheckedImage> {
  const scan = await scanImageTar(path);
  return checkScannedImage(scan);
}

export async function checkScannedImage(scan: ImageTarScan): Promise<CheckedImage> {
  const path = scan.path;
  const blobs = new Map<string, (typeof scan.entries)[number]>();
  for (const e of scan.entries) {
    const name = e.header.name.replace(/^\.\//, '');
    if (name === 'blobs/' || name === 'blobs/sha256/' || name === 'blobs' || name === 'blobs/sha256') {
      if (e.header.type !== '5') fail(path, `${name} is not a directory`);
      continue;
    }
    if (name === 'index.json' || name === 'manifest.json' || name === 'oci-layout') {
      if (e.header.type !== '0') fail(path, `${name} is not a regular file`);
      continue;
    }
    const m = BLOB_RE.exec(name);
    if (!m)
      fail(
        path,
        `unexpected entry ${JSON.stringify(e.header.name)} (an OCI image tar holds only blobs/sha256/<hex>, index.json, manifest.json, oci-layout)`,
      );
    if (e.header.type !== '0') fail(path, `blob ${name} is not a regular file (type ${e.header.type})`);
    if (e.size !== e.header.size) fail(path, `blob ${name} has ${e.size} bytes but its header says ${e.header.size}`);
    if (e.sha256 !== m[1]) {
      fail(path, `blob sha256:${m[1]} is corrupted: its content hashes to sha256:${e.sha256}`, undefined, {
        blob: `sha256:${m[1]}`,
        actual: `sha256:${e.sha256}`,
      });
    }
    blobs.set(m[1], e);
  }

  const get = (name: string) => scan.byName.get(name) ?? scan.byName.get('./' + name);
  const layoutEntry = get('oci-layout');
  if (!layoutEntry) fail(path, 'oci-layout is missing');
  const layout = parseJson(path, 'oci-layout', layoutEntry);
  if (layout?.imageLayoutVersion !== '1.0.0')
    fail(path, `oci-layout has imageLayoutVersion ${JSON.stringify(layout?.imageLayoutVersion)}, expected "1.0.0"`);
  checkExact(path, 'oci-layout', layoutEntry.bytes!, layout);
  onlyKeys(path, 'oci-layout', layout, ['imageLayoutVersion']);

  const indexEntry = get('index.json');
  if (!indexEntry) fail(path, 'index.json is missing');
  const index = parseJson(path, 'index.json', indexEntry);
  if (index?.schemaVersion !== 2) fail(path, 'index.json: schemaVersion is not 2');
  if (index.mediaType !== undefined && index.mediaType !== OCI_INDEX)
    fail(path, `index.json: mediaType ${JSON.stringify(index.mediaType)} is not ${OCI_INDEX}`);
  if (!Array.isArray(index.manifests) || index.manifests.length !== 1) {
    fail(
      path,
      `index.json must list exactly one image manifest (it lists ${Array.isArray(index.manifests) ? index.manifests.length : 'none'})`,
    );
  }
  checkExact(path, 'index.json', indexEntry.bytes!, index);
  onlyKeys(path, 'index.json', index, ['schemaVersion', 'mediaType', 'manifests', 'annotations']);
  onlyKeys(path, 'index.json manifests[0]', index.manifests[0] ?? {}, [
    'mediaType',
    'digest',
    'size',
    'annotations',
    'platform',
  ]);
  onlyKeys(path, 'index.json manifests[0].annotations', index.manifests[0]?.annotations ?? {}, [
    'io.containerd.image.name',
    'org.opencontainers.image.ref.name',
  ]);

  const referenced = new Set<string>();
  const blobFor = (where: string, d: Descriptor) => {
    const hex = d.digest.slice(7);
    const e = blobs.get(hex);
    if (!e) fail(path, `${where} points at ${d.digest}, which is not in blobs/sha256/`, undefined, { blob: d.digest });
    if (e.size !== d.size) {
      fail(path, `${where} says ${d.digest} has ${d.size} bytes, but the blob has ${e.size}`, undefined, {
        blob: d.digest,
      });
    }
    referenced.add(hex);
    return e;
  };

  const compressed: CompressedLayer[] = [];
  /** One image manifest, its config and layers (uncompressed layers' diff_ids now, compressed ones queued). */
  const checkImage = (mdesc: Descriptor, where: string): CheckedPlatformImage => {
    if (!isImageManifestType(mdesc.mediaType)) {
      fail(path, `${where}.mediaType ${JSON.stringify(mdesc.mediaType)} is not an image manifest`);
    }
    const manifest = parseJson(path, `image manifest ${mdesc.digest}`, blobFor(where, mdesc));
    if (manifest?.schemaVersion !== 2) fail(path, `image manifest ${mdesc.digest}: schemaVersion is not 2`);
    if (manifest.mediaType !== undefined && manifest.mediaType !== mdesc.mediaType) {
      fail(
        path,
        `image manifest ${mdesc.digest}: mediaType ${JSON.stringify(manifest.mediaType)} differs from ${where}'s ${JSON.stringify(mdesc.mediaType)}`,
      );
    }
    const cdesc = checkDescriptor(path, `image manifest ${mdesc.digest} config`, manifest.config);
    if (!isConfigType(cdesc.mediaType))
      fail(path, `config mediaType ${JSON.stringify(cdesc.mediaType)} is not an image config`);
    const config = parseJson(path, `config ${cdesc.digest}`, blobFor('image manifest config', cdesc));
    if (!Array.isArray(manifest.layers)) fail(path, `image manifest ${mdesc.digest}: layers is not a list`);
    const layers: Descriptor[] = manifest.layers.map((l: unknown, i: number) =>
      checkDescriptor(path, `image manifest layers[${i}]`, l),
    );
    const diffIds = config?.rootfs?.diff_ids;
    if (config?.rootfs?.type !== 'layers' || !Array.isArray(diffIds))
      fail(path, `config ${cdesc.digest}: rootfs is not {type: "layers", diff_ids: [...]}`);
    if (diffIds.length !== layers.length)
      fail(path, `config has ${diffIds.length} rootfs.diff_ids but the manifest lists ${layers.length} layers`);
    layers.forEach((l, i) => {
      blobFor(`image manifest layers[${i}]`, l);
      const compression = layerCompression(l.mediaType);
      if (compression === 'none') {
        if (diffIds[i] !== l.digest)
          fail(
            path,
            `config rootfs.diff_ids[${i}] is ${diffIds[i]} but layer ${i} (uncompressed) is ${l.digest}`,
            undefined,
            { layer: i },
          );
      } else if (compression) {
        compressed.push({ i, hex: l.digest.slice(7), compression, size: l.size, diffId: diffIds[i] });
      } else {
        fail(
          path,
          `layer ${i} has media type ${JSON.stringify(l.mediaType)}, which mkimg cannot check`,
          "mkimg reads layers of media type application/vnd.oci.image.layer.v1.tar, +gzip and +zstd (and Docker's tar and tar.gzip)",
        );
      }
    });
    const labels = (config?.config?.Labels ?? {}) as Record<string, string>;
    return { manifestDigest: mdesc.digest, configDigest: cdesc.digest, config, manifest, layers, labels };
  };

  /** The platform an index entry names must be its config's. */
  const checkPlatform = (where: string, platform: Record<string, unknown>, config: Record<string, unknown>) => {
    onlyKeys(path, `${where}.platform`, platform, ['architecture', 'os', 'variant']);
    for (const k of ['architecture', 'os', 'variant']) {
      if (platform[k] !== config[k])
        fail(
          path,
          `${where}.platform.${k} ${JSON.stringify(platform[k])} disagrees with the config's ${JSON.stringify(config[k])}`,
        );
    }
  };

  const top = checkDescriptor(path, 'index.json manifests[0]', index.manifests[0]);
  let images: CheckedPlatformImage[];
  let platforms: CheckedPlatformImage[] | undefined;
  if (top.mediaType === OCI_INDEX) {
    // An image of several platforms: index.json names an image index.
    const doc = parseJson(path, `image index ${top.digest}`, blobFor('index.json manifests[0]', top));
    if (doc?.schemaVersion !== 2) fail(path, `image index ${top.digest}: schemaVersion is not 2`);
    if (doc.mediaType !== undefined && doc.mediaType !== OCI_INDEX)
      fail(path, `image index ${top.digest}: mediaType ${JSON.stringify(doc.mediaType)} is not ${OCI_INDEX}`);
    if (!Array.isArray(doc.manifests) || doc.manifests.length === 0)
      fail(path, `image index ${top.digest} lists no manifests`);
    const seen = new Set<string>();
    images = doc.manifests.map((entry: any, i: number) => {
      const where = `image index manifests[${i}]`;
      const d = checkDescriptor(path, where, entry);
      if (!entry.platform || typeof entry.platform !== 'object') fail(path, `${where} has no platform`);
      const key = canonicalJson(entry.platform);
      if (seen.has(key)) fail(path, `image index ${top.digest} lists the platform ${key} twice`);
      seen.add(key);
      const image = checkImage(d, where);
      checkPlatform(where, entry.platform, image.config);
      return { ...image, platform: entry.platform };
    });
    platforms = images;
    if (index.manifests[0].platform !== undefined)
      fail(path, 'index.json manifests[0] names an index but has a platform');
  } else {
    images = [checkImage(top, 'index.json manifests[0]')];
    const platform = (index.manifests[0] as { platform?: Record<string, unknown> }).platform;
    if (platform !== undefined) checkPlatform('index.json manifests[0]', platform, images[0]!.config);
  }
  if (compressed.length) await checkCompressedDiffIds(scan, compressed);

  for (const hex of blobs.keys()) {
    if (!referenced.has(hex))
      fail(
        path,
        `blob sha256:${hex} is not referenced by index.json, the manifest or the config (extra blob)`,
        undefined,
        { blob: `sha256:${hex}` },
      );
  }

  // Docker's manifest.json must describe the same image.
  const dockerEntry = get('manifest.json');
  if (!dockerEntry) fail(path, 'manifest.json (Docker) is missing');
  const docker = parseJson(path, 'manifest.json', dockerEntry);
  if (!Array.isArray(docker) || docker.length !== 1) fail(path, 'manifest.json must be a list with one image');
  checkExact(path, 'manifest.json', dockerEntry.bytes!, docker);
  const d0 = docker[0];
  onlyKeys(path, 'manifest.json[0]', d0 ?? {}, ['Config', 'RepoTags', 'Layers']);
  // One image: that one. An index: one of its platforms (the builder's host's).
  const named = images.find((im) => d0?.Config === `blobs/sha256/${im.configDigest.slice(7)}`);
  if (!named) {
    fail(
      path,
      `manifest.json Config ${JSON.stringify(d0?.Config)} disagrees with index.json's config${images.length > 1 ? 's' : ''} ${images.map((im) => `blobs/sha256/${im.configDigest.slice(7)}`).join(', ')}`,
    );
  }
  const wantLayers = named.layers.map((l) => `blobs/sha256/${l.digest.slice(7)}`);
  if (
    !Array.isArray(d0.Layers) ||
    d0.Layers.length !== wantLayers.length ||
    d0.Layers.some((x: unknown, i: number) => x !== wantLayers[i])
  ) {
    fail(
      path,
      `manifest.json Layers ${JSON.stringify(d0.Layers)} disagree with the image manifest's layers ${JSON.stringify(wantLayers)}`,
    );
  }
  const repoTags: string[] = Array.isArray(d0.RepoTags) ? d0.RepoTags : [];
  const imageName = top.annotations?.['io.containerd.image.name'];
  if (imageName !== undefined && (repoTags.length !== 1 || repoTags[0] !== imageName)) {
    fail(
      path,
      `manifest.json RepoTags ${JSON.stringify(repoTags)} do not include index.json's image name ${JSON.stringify(imageName)}`,
    );
  }
  const refName = top.annotations?.['org.opencontainers.image.ref.name'];
  if (refName !== undefined && imageName !== undefined && !imageName.endsWith(':' + refName)) {
    fail(
      path,
      `index.json: ref.name ${JSON.stringify(refName)} disagrees with image name ${JSON.stringify(imageName)}`,
    );
  }

  return { ...named, manifestDigest: top.digest, platforms, repoTags, scan };
}

/**
 * Second pass, for compressed layers: decompress each (bounded: see
 * LayerDecoder) and compare the sha256 of its bytes with its diff_id.
 */
async function checkCompressedDiffIds(scan: ImageTarScan, layers: CompressedLayer[]): Promise<void> {
  // A layer two platforms share is decompressed once and compared with each diff_id.
  const want = new Map<string, CompressedLayer[]>();
  for (const l of layers) want.set(l.hex, [...(want.get(l.hex) ?? []), l]);
  const results: { l: CompressedLayer; digest: () => string }[] = [];
  await scanImageTar(scan.path, {
    keepLimit: 0,
    tap(h) {
      const m = BLOB_RE.exec(h.name.replace(/^\.\//, ''));
      const ls = m ? want.get(m[1]!) : undefined;
      if (!ls) return undefined;
      const l = ls[0]!;
      const hash = createHash('sha256');
      const decoder = new LayerDecoder(
        l.compression,
        l.size,
        `image ${scan.path}: layer ${l.i} (${l.compression})`,
        (c) => hash.update(c),
      );
      let got: string | undefined;
      const digest = () => (got ??= 'sha256:' + hash.digest('hex'));
      for (const x of ls) results.push({ l: x, digest });
      return { write: (c) => decoder.write(c), end: () => void decoder.end() };
    },
  });
  for (const { l, digest } of results) {
    const got = digest();
    if (got !== l.diffId)
      fail(
        scan.path,
        `config rootfs.diff_ids[${l.i}] is ${l.diffId} but layer ${l.i} decompresses to ${got}`,
        undefined,
        {
          layer: l.i,
        },
      );
  }
}
