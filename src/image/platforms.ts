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
import { blobName, openImageTar, type ImageTar } from '../registry/image-tar.js';
import { canonicalJsonBytes } from '../util/canonical-json.js';
import { dockerManifestJson, jsonBlob, MEDIA, OCI_LAYOUT, ociPlatform, type Blob } from '../oci/model.js';
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
  const annotations: Record<string, string> = {};
  const first = images[0]!.image;
  if (first.imageName) annotations['io.containerd.image.name'] = first.imageName;
  if (first.tag) annotations['org.opencontainers.image.ref.name'] = first.tag;
  const indexJson = canonicalJsonBytes({
    schemaVersion: 2,
    manifests: [{ ...index.descriptor, ...(Object.keys(annotations).length ? { annotations } : {}) }],
  });
  const members = new Map<string, LayoutMember>();
  for (const { image } of images) {
    for (const d of [image.manifestDescriptor, image.manifest.config, ...image.manifest.layers]) {
      const name = blobName(d.digest);
      const m = image.members.get(name)!;
      members.set(name, { name, type: 'file', hostPath: image.path, offset: m.offset, size: m.size });
    }
  }
  members.set(blobName(index.descriptor.digest), {
    name: blobName(index.descriptor.digest),
    type: 'file',
    bytes: index.bytes,
  });
  const docker = (images.find((i) => i.architecture === hostArchitecture) ?? images[0]!).image;
  const [name, tag] = splitReference(first.imageName, first.tag);
  const list: LayoutMember[] = [
    { name: 'blobs', type: 'dir' },
    { name: 'blobs/sha256', type: 'dir' },
    ...members.values(),
    { name: 'index.json', type: 'file', bytes: indexJson },
    {
      name: 'manifest.json',
      type: 'file',
      bytes: dockerManifestJson(
        docker.manifest.config.digest,
        docker.manifest.layers.map((l) => l.digest),
        name,
        tag,
      ),
    },
    { name: 'oci-layout', type: 'file', bytes: OCI_LAYOUT },
  ];
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

/** NAME:TAG as dockerManifestJson wants it, from the containerd annotation (whose name may be qualified). */
function splitReference(imageName: string | undefined, tag: string | undefined): [string, string] {
  const t = tag ?? 'latest';
  if (!imageName) return ['image', t];
  const suffix = `:${t}`;
  return [imageName.endsWith(suffix) ? imageName.slice(0, -suffix.length) : imageName, t];
}
