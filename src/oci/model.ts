/**
 * The OCI model: media types, descriptors, labels and the JSON documents of
 * an image, as pure functions of their inputs (serialized with
 * canonicalJson, so their digests depend on values only). Every part of
 * mkimg that reads or writes an image (build, pull, push, verify, inspect,
 * diff) takes these from here.
 *
 * The shape is general: an index lists N manifests (one per platform), each
 * with a config and N layers. mkimg writes one manifest per image today.
 */
import type { ImageConfig } from '../manifest/types.js';
import { canonicalJsonBytes } from '../util/canonical-json.js';
import { sha256Hex } from '../util/digest.js';

export const MEDIA = {
  index: 'application/vnd.oci.image.index.v1+json',
  manifest: 'application/vnd.oci.image.manifest.v1+json',
  config: 'application/vnd.oci.image.config.v1+json',
  layer: 'application/vnd.oci.image.layer.v1.tar',
  layerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  layerZstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  dockerLayer: 'application/vnd.docker.image.rootfs.diff.tar',
  dockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
} as const;

/** How a layer blob is compressed. */
export type Compression = 'none' | 'gzip' | 'zstd';

/** The layer media type mkimg writes for a compression. */
export function layerMediaType(c: Compression): string {
  return c === 'gzip' ? MEDIA.layerGzip : c === 'zstd' ? MEDIA.layerZstd : MEDIA.layer;
}

/** The compression of a layer media type mkimg reads; undefined for anything else (not a layer it knows). */
export function layerCompression(mediaType: string): Compression | undefined {
  switch (mediaType) {
    case MEDIA.layer:
    case MEDIA.dockerLayer:
      return 'none';
    case MEDIA.layerGzip:
    case MEDIA.dockerLayerGzip:
      return 'gzip';
    case MEDIA.layerZstd:
      return 'zstd';
    default:
      return undefined;
  }
}

export function isImageManifestType(t: string): boolean {
  return t === MEDIA.manifest || t === MEDIA.dockerManifest;
}
export function isIndexType(t: string): boolean {
  return t === MEDIA.index || t === MEDIA.dockerList;
}
export function isConfigType(t: string): boolean {
  return t === MEDIA.config || t === MEDIA.dockerConfig;
}

export const MANIFEST_SHA_LABEL = 'org.mkimg.manifest.sha256';
/** Where the SPDX SBOM sits in every image mkimg builds. */
export const SBOM_IMAGE_PATH = '/usr/share/mkimg/sbom.spdx.json';
/** The blob member of an OCI layout for a digest ("sha256:<hex>"). */
export function blobPath(digest: string): string {
  return `blobs/sha256/${digest.slice('sha256:'.length)}`;
}
export const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

export interface Descriptor {
  mediaType: string;
  digest: string; // "sha256:<hex>"
  size: number;
  annotations?: Record<string, string>;
  /** In an index: the platform of the manifest it points at. */
  platform?: Platform;
}

/** An image manifest document (OCI or Docker v2 schema 2). */
export interface ImageManifestDoc {
  schemaVersion: number;
  mediaType?: string;
  config: Descriptor;
  layers: Descriptor[];
  annotations?: Record<string, string>;
}

export interface Blob {
  descriptor: Descriptor;
  bytes: Buffer;
}

export function jsonBlob(mediaType: string, value: unknown): Blob {
  const bytes = canonicalJsonBytes(value);
  return { descriptor: { mediaType, digest: `sha256:${sha256Hex(bytes)}`, size: bytes.length }, bytes };
}

export function isoTime(epochSeconds: number): string {
  return new Date(epochSeconds * 1000).toISOString().replace(/\.000Z$/, 'Z');
}

export interface ConfigInput {
  architecture: string; // Debian name; mapped to the OCI/Go name
  sourceDateEpoch: number;
  config: ImageConfig;
  manifestSha256: string;
  layerDigests: string[]; // "sha256:<hex>" of the uncompressed layers
  /** What each layer holds, for its history entry (default: one generic comment). */
  layerComments?: string[];
}

const GOARCH: Record<string, { architecture: string; variant?: string }> = {
  amd64: { architecture: 'amd64' },
  arm64: { architecture: 'arm64', variant: 'v8' },
  armhf: { architecture: 'arm', variant: 'v7' },
  i386: { architecture: '386' },
  ppc64el: { architecture: 'ppc64le' },
  s390x: { architecture: 's390x' },
  riscv64: { architecture: 'riscv64' },
};

export function ociPlatform(debArch: string): { architecture: string; os: 'linux'; variant?: string } {
  const p = GOARCH[debArch] ?? { architecture: debArch };
  return { os: 'linux', ...p };
}

export function imageConfig(input: ConfigInput): Blob {
  const c = input.config;
  const env = Object.entries(c.env).map(([k, v]) => `${k}=${v}`);
  if (!('PATH' in c.env)) env.unshift(`PATH=${DEFAULT_PATH}`);
  const created = isoTime(input.sourceDateEpoch);
  const toSet = (xs: string[] | undefined) =>
    xs && xs.length ? Object.fromEntries(xs.map((x) => [x.includes('/') ? x : `${x}/tcp`, {}])) : undefined;
  const platform = ociPlatform(input.architecture);
  return jsonBlob(MEDIA.config, {
    ...platform,
    created,
    config: {
      Entrypoint: c.entrypoint,
      Cmd: c.cmd,
      Env: env,
      WorkingDir: c.workdir,
      User: c.user,
      Labels: { ...c.labels, [MANIFEST_SHA_LABEL]: input.manifestSha256 },
      ExposedPorts: toSet(c.exposedPorts),
      StopSignal: c.stopSignal,
      Volumes: c.volumes && c.volumes.length ? Object.fromEntries(c.volumes.map((v) => [v, {}])) : undefined,
    },
    rootfs: { type: 'layers', diff_ids: input.layerDigests },
    history: input.layerDigests.map((_, i) => ({
      created,
      created_by: 'mkimg build',
      comment:
        input.layerComments && input.layerComments.length > 1
          ? `mkimg: ${input.layerComments[i]}`
          : 'mkimg: minimized from pinned inputs',
    })),
  });
}

export function imageManifest(config: Descriptor, layers: Descriptor[]): Blob {
  return jsonBlob(MEDIA.manifest, {
    schemaVersion: 2,
    mediaType: MEDIA.manifest,
    config,
    layers,
  });
}

/** An OCI index listing `manifests` (each descriptor with its platform and annotations), in the order given. */
export function indexOf(manifests: Descriptor[]): Blob {
  return jsonBlob(MEDIA.index, { schemaVersion: 2, mediaType: MEDIA.index, manifests });
}

/** The index of an image tar with one manifest: its platform and the name annotations. */
/**
 * The fully qualified reference containerd, the kubelet and Docker use for
 * NAME:TAG, by Docker's normalization: a first path component that holds a
 * "." or ":" or is "localhost" names a registry and stays; otherwise the name
 * is on Docker Hub: "name" -> "docker.io/library/name", "org/name" ->
 * "docker.io/org/name". (`ctr import` keeps the annotation as the image name:
 * unqualified, no pod reference would ever match it.)
 */
export function qualifiedReference(name: string, tag: string): string {
  const first = name.split('/')[0]!;
  const hasRegistry = name.includes('/') && (first.includes('.') || first.includes(':') || first === 'localhost');
  const full = hasRegistry ? name : name.includes('/') ? `docker.io/${name}` : `docker.io/library/${name}`;
  return `${full}:${tag}`;
}

export function imageIndex(manifest: Descriptor, name: string, tag: string, debArch: string): Blob {
  return indexOf([
    {
      ...manifest,
      platform: ociPlatform(debArch),
      annotations: {
        'io.containerd.image.name': qualifiedReference(name, tag),
        'org.opencontainers.image.ref.name': tag,
      },
    },
  ]);
}

/** Docker's `docker save` manifest.json, so `docker load` takes the same tar. */
export function dockerManifestJson(configDigest: string, layerDigests: string[], name: string, tag: string): Buffer {
  return canonicalJsonBytes([
    {
      Config: `blobs/sha256/${configDigest.slice(7)}`,
      RepoTags: [qualifiedReference(name, tag)],
      Layers: layerDigests.map((d) => `blobs/sha256/${d.slice(7)}`),
    },
  ]);
}

export const OCI_LAYOUT = canonicalJsonBytes({ imageLayoutVersion: '1.0.0' });
