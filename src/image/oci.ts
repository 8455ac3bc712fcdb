/**
 * The JSON documents of an OCI image, as pure functions of their inputs.
 * Serialized with canonicalJson, so their digests depend on values only.
 */
import type { ImageConfig } from '../manifest/types.js';
import { canonicalJsonBytes } from '../util/canonical-json.js';
import { sha256Hex } from '../util/digest.js';

export const MEDIA = {
  index: 'application/vnd.oci.image.index.v1+json',
  manifest: 'application/vnd.oci.image.manifest.v1+json',
  config: 'application/vnd.oci.image.config.v1+json',
  layer: 'application/vnd.oci.image.layer.v1.tar',
} as const;

export const MANIFEST_SHA_LABEL = 'org.mkimg.manifest.sha256';
export const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export interface Descriptor {
  mediaType: string;
  digest: string; // "sha256:<hex>"
  size: number;
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
  const toSet = (xs: string[] | undefined) => (xs && xs.length ? Object.fromEntries(xs.map((x) => [x.includes('/') ? x : `${x}/tcp`, {}])) : undefined);
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
    history: input.layerDigests.map(() => ({ created, created_by: 'mkimg build', comment: 'mkimg: minimized from pinned inputs' })),
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

export function imageIndex(manifest: Descriptor, name: string, tag: string, debArch: string): Blob {
  return jsonBlob(MEDIA.index, {
    schemaVersion: 2,
    mediaType: MEDIA.index,
    manifests: [
      {
        ...manifest,
        platform: ociPlatform(debArch),
        annotations: {
          'io.containerd.image.name': `${name}:${tag}`,
          'org.opencontainers.image.ref.name': tag,
        },
      },
    ],
  });
}

/** Docker's `docker save` manifest.json, so `docker load` takes the same tar. */
export function dockerManifestJson(configDigest: string, layerDigests: string[], name: string, tag: string): Buffer {
  return canonicalJsonBytes([
    {
      Config: `blobs/sha256/${configDigest.slice(7)}`,
      RepoTags: [`${name}:${tag}`],
      Layers: layerDigests.map((d) => `blobs/sha256/${d.slice(7)}`),
    },
  ]);
}

export const OCI_LAYOUT = canonicalJsonBytes({ imageLayoutVersion: '1.0.0' });
