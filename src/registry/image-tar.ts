/**
 * Read an mkimg image tar (an OCI image layout in one uncompressed tar) without
 * unpacking it: one pass over the headers gives each member's byte offset, so
 * blobs are streamed to a registry straight from the tar file.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { createReadStream } from 'node:fs';
import { Readable } from 'node:stream';
import { MkimgError } from '../util/errors.js';
import { sha256Hex } from '../util/digest.js';
import { TarFormatError, TarParser } from '../image/tar-reader.js';
import { BLOCK } from '../image/tar-header.js';
import {
  isImageManifestType,
  isIndexType,
  type Descriptor,
  type ImageManifestDoc,
  type Platform,
} from '../oci/model.js';

export interface TarMember {
  name: string;
  offset: number; // of the content
  size: number;
  type: string; // '0' file, '5' dir, ...
}

export type { Descriptor, ImageManifestDoc };

export interface ImageTar {
  path: string;
  members: Map<string, TarMember>;
  /** The manifest descriptor from index.json. */
  manifestDescriptor: Descriptor;
  manifestBytes: Buffer;
  manifest: ImageManifestDoc;
  /** Tag from the index annotation org.opencontainers.image.ref.name, if any. */
  tag?: string;
  /** "NAME:TAG" from io.containerd.image.name, if any. */
  imageName?: string;
}

function integrity(path: string, msg: string, hint?: string): MkimgError {
  return new MkimgError('integrity', `image tar ${path}: ${msg}`, {
    hint: hint ?? 'rebuild the image, or check that the file was copied whole',
  });
}

/**
 * Index the members of an uncompressed tar: headers are read with the shared
 * tar reader, member contents are seeked past, not read.
 */
export async function indexTar(path: string): Promise<Map<string, TarMember>> {
  let fh: FileHandle;
  try {
    fh = await open(path, 'r');
  } catch (e) {
    throw new MkimgError('usage', `cannot open image tar ${path}: ${(e as Error).message}`);
  }
  try {
    const { size: fileSize } = await fh.stat();
    const members = new Map<string, TarMember>();
    let last: TarMember | undefined;
    const parser = new TarParser((h) => {
      const name = h.name.replace(/^\.\//, '');
      last = { name, offset: parser.bytesConsumed, size: h.size, type: h.type };
      members.set(name, last);
      return undefined;
    });
    const block = Buffer.alloc(BLOCK);
    let pos = 0;
    try {
      while (pos < fileSize && !parser.ended) {
        const { bytesRead } = await fh.read(block, 0, Math.min(BLOCK, fileSize - pos), pos);
        if (bytesRead === 0) break;
        parser.push(block.subarray(0, bytesRead));
        pos += bytesRead + parser.skip();
      }
      if (pos > fileSize) throw integrity(path, `member ${last?.name ?? '?'} is truncated`);
      parser.end();
    } catch (e) {
      if (e instanceof TarFormatError) {
        throw integrity(path, `${e.message}; is this an uncompressed image tar written by mkimg build?`);
      }
      throw e;
    }
    return members;
  } finally {
    await fh.close();
  }
}

export async function readMember(path: string, m: TarMember): Promise<Buffer> {
  const fh = await open(path, 'r');
  try {
    const buf = Buffer.alloc(m.size);
    await fh.read(buf, 0, m.size, m.offset);
    return buf;
  } finally {
    await fh.close();
  }
}

export function memberStream(path: string, m: TarMember, start = 0, end = m.size): Readable {
  if (end <= start) return Readable.from([]);
  return createReadStream(path, { start: m.offset + start, end: m.offset + end - 1, highWaterMark: 1 << 20 });
}

export function blobName(digest: string): string {
  const [alg, hex] = digest.split(':');
  return `blobs/${alg}/${hex}`;
}

const DIGEST_RE = /^sha256:[0-9a-f]{64}$/;

/** One platform of an image index: its entry in the index and the image it names. */
export interface IndexPlatform {
  platform: Platform;
  image: ImageTar;
}

/** An image tar whose index.json names an OCI image index (several platforms). */
export interface ImageIndexTar {
  path: string;
  members: Map<string, TarMember>;
  /** The index descriptor from index.json. */
  indexDescriptor: Descriptor;
  indexBytes: Buffer;
  platforms: IndexPlatform[];
  tag?: string;
  imageName?: string;
}

/** What an image tar holds: one image, or an index of platform images. */
export type ImageLayout = { kind: 'image'; image: ImageTar } | { kind: 'index'; index: ImageIndexTar };

function platformText(p: Platform | undefined): string {
  if (!p) return '(no platform)';
  return [p.os, p.architecture, p.variant].filter(Boolean).join('/');
}

/** Read a blob named by `desc`, checked against its digest and size. */
async function readBlob(
  path: string,
  members: Map<string, TarMember>,
  desc: Descriptor,
  what: string,
): Promise<Buffer> {
  if (!DIGEST_RE.test(desc.digest)) throw integrity(path, `${what}: digest "${desc.digest}" is not sha256:<hex>`);
  const m = members.get(blobName(desc.digest));
  if (!m) throw integrity(path, `${what} blob ${desc.digest} is missing`);
  const bytes = await readMember(path, m);
  if (`sha256:${sha256Hex(bytes)}` !== desc.digest || bytes.length !== desc.size) {
    throw integrity(path, `${what} blob ${desc.digest} does not match its digest or size`);
  }
  return bytes;
}

function parseJsonBlob<T>(path: string, what: string, bytes: Buffer): T {
  try {
    return JSON.parse(bytes.toString('utf8')) as T;
  } catch (e) {
    throw integrity(path, `${what} is not valid JSON: ${(e as Error).message}`);
  }
}

/** The image manifest `desc` names, with its config and layers checked present and of the right size. */
async function readImage(path: string, members: Map<string, TarMember>, desc: Descriptor): Promise<ImageTar> {
  const manifestBytes = await readBlob(path, members, desc, 'manifest');
  const manifest = parseJsonBlob<ImageManifestDoc>(path, `manifest ${desc.digest}`, manifestBytes);
  if (!manifest.config || !Array.isArray(manifest.layers)) {
    throw integrity(path, `manifest ${desc.digest} is not an image manifest (no config/layers)`);
  }
  for (const d of [manifest.config, ...manifest.layers]) {
    if (!DIGEST_RE.test(d.digest)) throw integrity(path, `manifest references "${d.digest}", not sha256:<hex>`);
    const m = members.get(blobName(d.digest));
    if (!m) throw integrity(path, `blob ${d.digest} referenced by the manifest is missing`);
    if (m.size !== d.size) throw integrity(path, `blob ${d.digest} has ${m.size} bytes, the manifest says ${d.size}`);
  }
  return {
    path,
    members,
    manifestDescriptor: desc,
    manifestBytes,
    manifest,
    tag: desc.annotations?.['org.opencontainers.image.ref.name'],
    imageName: desc.annotations?.['io.containerd.image.name'],
  };
}

/**
 * Open an image tar: index.json names one image manifest, or one image index
 * whose platform manifests are read in turn. Every platform's config must
 * agree with the platform the index gives it.
 */
export async function openImageLayout(path: string): Promise<ImageLayout> {
  const members = await indexTar(path);
  const indexM = members.get('index.json');
  if (!indexM) throw integrity(path, 'has no index.json (not an OCI image layout)');
  const index = parseJsonBlob<{ manifests?: Descriptor[] }>(path, 'index.json', await readMember(path, indexM));
  const manifests = index.manifests ?? [];
  if (manifests.length !== 1) {
    throw integrity(
      path,
      `index.json lists ${manifests.length} entries; mkimg reads image tars whose index.json names one image or one image index`,
    );
  }
  const desc = manifests[0]!;
  if (!isIndexType(desc.mediaType)) return { kind: 'image', image: await readImage(path, members, desc) };

  const indexBytes = await readBlob(path, members, desc, 'image index');
  const doc = parseJsonBlob<{ manifests?: Descriptor[] }>(path, `image index ${desc.digest}`, indexBytes);
  if (!Array.isArray(doc.manifests) || doc.manifests.length === 0) {
    throw integrity(path, `image index ${desc.digest} lists no manifests`);
  }
  const platforms: IndexPlatform[] = [];
  const seen = new Set<string>();
  for (const entry of doc.manifests) {
    if (!isImageManifestType(entry.mediaType)) {
      throw integrity(
        path,
        `image index ${desc.digest}: entry ${entry.digest} has media type "${entry.mediaType}", not an image manifest`,
      );
    }
    if (!entry.platform?.os || !entry.platform.architecture) {
      throw integrity(path, `image index ${desc.digest}: entry ${entry.digest} has no platform`);
    }
    const key = platformText(entry.platform);
    if (seen.has(key)) throw integrity(path, `image index ${desc.digest} lists ${key} twice`);
    seen.add(key);
    const image = await readImage(path, members, entry);
    const config = parseJsonBlob<Platform>(
      path,
      `config ${image.manifest.config.digest}`,
      await readBlob(path, members, image.manifest.config, 'config'),
    );
    const fromConfig: Platform = { os: config.os, architecture: config.architecture, variant: config.variant };
    if (
      fromConfig.os !== entry.platform.os ||
      fromConfig.architecture !== entry.platform.architecture ||
      (fromConfig.variant ?? '') !== (entry.platform.variant ?? '')
    ) {
      throw integrity(
        path,
        `image index ${desc.digest}: the entry for ${key} names an image whose config says ${platformText(fromConfig)}`,
        'the index and its images disagree; rebuild the image',
      );
    }
    platforms.push({ platform: entry.platform, image });
  }
  return {
    kind: 'index',
    index: {
      path,
      members,
      indexDescriptor: desc,
      indexBytes,
      platforms,
      tag: desc.annotations?.['org.opencontainers.image.ref.name'],
      imageName: desc.annotations?.['io.containerd.image.name'],
    },
  };
}

/** Open an image tar of one image (an index is refused, naming its platforms). */
export async function openImageTar(path: string): Promise<ImageTar> {
  const layout = await openImageLayout(path);
  if (layout.kind === 'image') return layout.image;
  throw new MkimgError(
    'usage',
    `image tar ${path} is an image index of ${layout.index.platforms.length} platforms (${layout.index.platforms.map((p) => platformText(p.platform)).join(', ')}); this needs one image`,
    { hint: 'build or pull one platform with --platform' },
  );
}
