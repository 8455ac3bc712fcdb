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
import type { Descriptor, ImageManifestDoc } from '../oci/model.js';

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

/** Open an image tar: index.json → the (single) image manifest → its config and layers, all checked present. */
export async function openImageTar(path: string): Promise<ImageTar> {
  const members = await indexTar(path);
  const indexM = members.get('index.json');
  if (!indexM) throw integrity(path, 'has no index.json (not an OCI image layout)');
  let index: { manifests?: Descriptor[] };
  try {
    index = JSON.parse((await readMember(path, indexM)).toString('utf8'));
  } catch (e) {
    throw integrity(path, `index.json is not valid JSON: ${(e as Error).message}`);
  }
  const manifests = index.manifests ?? [];
  if (manifests.length !== 1) {
    throw integrity(path, `index.json lists ${manifests.length} manifests; mkimg pushes images with exactly one`);
  }
  const desc = manifests[0]!;
  if (!DIGEST_RE.test(desc.digest))
    throw integrity(path, `index.json: manifest digest "${desc.digest}" is not sha256:<hex>`);
  const mm = members.get(blobName(desc.digest));
  if (!mm) throw integrity(path, `manifest blob ${desc.digest} is missing`);
  const manifestBytes = await readMember(path, mm);
  if (`sha256:${sha256Hex(manifestBytes)}` !== desc.digest || manifestBytes.length !== desc.size) {
    throw integrity(path, `manifest blob ${desc.digest} does not match its digest or size`);
  }
  let manifest: ImageManifestDoc;
  try {
    manifest = JSON.parse(manifestBytes.toString('utf8'));
  } catch (e) {
    throw integrity(path, `manifest ${desc.digest} is not valid JSON: ${(e as Error).message}`);
  }
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
