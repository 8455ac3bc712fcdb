/**
 * An image of several platforms: the images built for each architecture,
 * gathered into one image tar whose index.json names one OCI image index
 * (the platforms' manifests, each with its platform), as `docker buildx` and
 * containerd write them. Docker's manifest.json names the image of the host's
 * architecture (or the first), so `docker load` still takes the tar. Blobs
 * the platforms share are stored once. A pure function of the platform
 * images' bytes and their order.
 */
import { MkimgError } from '../util/errors.js';
import { openImageTar, type ImageTar } from '../oci/image-tar.js';
import { canonicalJsonBytes } from '../util/canonical-json.js';
import {
  blobPath,
  dockerManifestJson,
  jsonBlob,
  MEDIA,
  OCI_LAYOUT,
  ociPlatform,
  qualifiedReference,
  type Blob,
  type Descriptor,
} from '../oci/model.js';
import { writeLayoutTar, type LayoutMember } from './write-image.js';

export interface PlatformImage {
  /** Debian architecture name. */
  architecture: string;
  /** A one-platform image tar, as writeImageTar made it. */
  tar: string;
}

export interface WrittenIndexImage {
  output: string;
  sizeBytes: number;
  /** sha256:… of the image index (what a registry reports for the tag). */
  indexDigest: string;
  platforms: { architecture: string; manifestDigest: string; imageId: string }[];
}

/** The OCI image index of the platforms' manifests, in the given order. */
export function platformIndex(images: { architecture: string; image: ImageTar }[]): Blob {
  return jsonBlob(MEDIA.index, {
    schemaVersion: 2,
    mediaType: MEDIA.index,
    manifests: images.map(({ architecture, image }) => ({
      mediaType: image.manifestDescriptor.mediaType,
      digest: image.manifestDescriptor.digest,
      size: image.manifestDescriptor.size,
      platform: ociPlatform(architecture),
    })),
  });
}

/** One platform of an index tar, as the writer needs it: where its blobs are. */
export interface IndexTarPlatform {
  /** Debian architecture (picks the image Docker's manifest.json names). */
  architecture: string;
  manifest: Descriptor;
  config: Descriptor;
  layers: Descriptor[];
  /** Where the content of one of this platform's blobs (manifest, config or layer) is. */
  source(d: Descriptor): LayoutMember;
}

/**
 * The members of an image tar holding an image index: index.json names the
 * index blob (with the image's name and tag), every platform's blobs once,
 * and Docker's manifest.json naming the host's image (or the first). Build
 * and pull both write index tars through this, so a pulled index is
 * byte-identical to the built one.
 */
export function indexTarMembers(
  index: Blob,
  platforms: IndexTarPlatform[],
  reference: { name: string; tag: string } | undefined,
  hostArchitecture: string,
): LayoutMember[] {
  const annotations: Record<string, string> = {};
  if (reference) {
    annotations['io.containerd.image.name'] = qualifiedReference(reference.name, reference.tag);
    annotations['org.opencontainers.image.ref.name'] = reference.tag;
  }
  const indexJson = canonicalJsonBytes({
    schemaVersion: 2,
    manifests: [{ ...index.descriptor, ...(Object.keys(annotations).length ? { annotations } : {}) }],
  });
  const members = new Map<string, LayoutMember>();
  for (const p of platforms) {
    for (const d of [p.manifest, p.config, ...p.layers]) members.set(blobPath(d.digest), p.source(d));
  }
  const indexName = blobPath(index.descriptor.digest);
  members.set(indexName, { name: indexName, type: 'file', bytes: index.bytes });
  const docker = platforms.find((p) => p.architecture === hostArchitecture) ?? platforms[0]!;
  const [name, tag] = reference ? [reference.name, reference.tag] : ['image', 'latest'];
  return [
    { name: 'blobs', type: 'dir' },
    { name: 'blobs/sha256', type: 'dir' },
    ...members.values(),
    { name: 'index.json', type: 'file', bytes: indexJson },
    {
      name: 'manifest.json',
      type: 'file',
      bytes: dockerManifestJson(
        docker.config.digest,
        docker.layers.map((l) => l.digest),
        name,
        tag,
      ),
    },
    { name: 'oci-layout', type: 'file', bytes: OCI_LAYOUT },
  ];
}

export async function writePlatformImages(
  parts: PlatformImage[],
  output: string,
  mtime: number,
  hostArchitecture: string,
): Promise<WrittenIndexImage> {
  if (parts.length === 0) throw new MkimgError('internal', 'writePlatformImages: no platforms');
  const images = [];
  for (const p of parts) images.push({ architecture: p.architecture, image: await openImageTar(p.tar) });
  const index = platformIndex(images);
  // The reference (name, tag) is the one every platform image carries.
  const first = images[0]!.image;
  const list = indexTarMembers(
    index,
    images.map(({ architecture, image }) => ({
      architecture,
      manifest: image.manifestDescriptor,
      config: image.manifest.config,
      layers: image.manifest.layers,
      source: (d: Descriptor): LayoutMember => {
        const name = blobPath(d.digest);
        const m = image.members.get(name)!;
        return { name, type: 'file', hostPath: image.path, offset: m.offset, size: m.size };
      },
    })),
    first.imageName ? splitReference(first.imageName, first.tag) : undefined,
    hostArchitecture,
  );
  const sizeBytes = writeLayoutTar(list, mtime, output);
  return {
    output,
    sizeBytes,
    indexDigest: index.descriptor.digest,
    platforms: images.map(({ architecture, image }) => ({
      architecture,
      manifestDigest: image.manifestDescriptor.digest,
      imageId: image.manifest.config.digest,
    })),
  };
}

/** NAME and TAG from the containerd annotation (whose name may be qualified). */
function splitReference(imageName: string, tag: string | undefined): { name: string; tag: string } {
  const t = tag ?? 'latest';
  const suffix = `:${t}`;
  return { name: imageName.endsWith(suffix) ? imageName.slice(0, -suffix.length) : imageName, tag: t };
}
