/**
 * The one reader of image tars: an OCI image layout (oci-layout, index.json,
 * blobs/sha256/<hex>, and Docker's manifest.json) in one uncompressed tar, as
 * `mkimg build` and `mkimg pull` write it. Push, pull's cache, verify, diff,
 * inspect and run all read image tars through here.
 *
 * One pass over the headers indexes the members (name, body offset, size);
 * bodies are seeked past, so memory is bounded by the number of members,
 * whatever the layers weigh. A body is read later, by its offset: whole for a
 * JSON document (up to JSON_LIMIT bytes), streamed for a layer.
 */
import { createReadStream } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { MkimgError } from '../util/errors.js';
import { sha256Hex } from '../util/digest.js';
import { TarFormatError, TarParser, type TarBodySink, type TarHeader } from '../image/tar-reader.js';
import { BLOCK } from '../image/tar-header.js';
import {
  blobPath,
  isImageManifestType,
  isIndexType,
  type Descriptor,
  type ImageManifestDoc,
  type Platform,
} from './model.js';

/** One entry of an image tar, located but not read. */
export interface TarMember {
  /** The entry name without a leading "./". */
  name: string;
  header: TarHeader;
  /** Byte offset of the body in the tar file. */
  offset: number;
  size: number;
  type: string; // '0' file, '5' dir, ...
}

/** The members of an image tar, from one pass over its headers. */
export interface ImageTarIndex {
  path: string;
  fileSize: number;
  /** Every entry in tar order (a name that appears twice is here twice). */
  entries: TarMember[];
  /** By name; of a name that appears twice, the last. */
  members: Map<string, TarMember>;
  /** Byte offset of the end-of-archive marker. */
  endOffset: number;
  /** Non-zero bytes follow the end-of-archive marker. */
  trailingGarbage: boolean;
}

/** How a command words the failures of reading a tar for its users (each has its own hints). */
export interface IndexOptions {
  /** The file is not a whole tar; `seen` holds the entries read before the fault. */
  formatError?: (e: TarFormatError, seen: TarMember[]) => MkimgError;
  /** The file cannot be opened or read. */
  readError?: (e: NodeJS.ErrnoException) => MkimgError;
}

/** A JSON document of an image (index.json, a manifest, an index, a config) is at most this big: a larger one is refused unread. */
export const JSON_LIMIT = 8 << 20;

const DIGEST_RE = /^sha256:[0-9a-f]{64}$/;

/** A digest mkimg can read: "sha256:" and 64 lowercase hex digits. */
export function isSha256Digest(d: unknown): d is string {
  return typeof d === 'string' && DIGEST_RE.test(d);
}

function integrity(path: string, msg: string, hint?: string): MkimgError {
  return new MkimgError('integrity', `image tar ${path}: ${msg}`, {
    hint: hint ?? 'rebuild the image, or check that the file was copied whole',
  });
}

const defaultFormatError = (path: string) => (e: TarFormatError) =>
  integrity(path, e.truncated ? e.message : `${e.message}; is this an uncompressed image tar written by mkimg build?`);

const defaultReadError = (path: string) => (e: NodeJS.ErrnoException) =>
  new MkimgError('usage', `cannot open image tar ${path}: ${e.message}`);

/**
 * Index the members of an uncompressed tar: headers are read with the shared
 * tar reader, one block at a time; bodies are seeked past, not read.
 */
export async function indexImageTar(path: string, opts: IndexOptions = {}): Promise<ImageTarIndex> {
  const formatError = opts.formatError ?? defaultFormatError(path);
  const readError = opts.readError ?? defaultReadError(path);
  let fh: FileHandle;
  try {
    fh = await open(path, 'r');
  } catch (e) {
    throw readError(e as NodeJS.ErrnoException);
  }
  const entries: TarMember[] = [];
  const members = new Map<string, TarMember>();
  try {
    const { size: fileSize } = await fh.stat();
    const parser = new TarParser((h) => {
      const m: TarMember = {
        name: h.name.replace(/^\.\//, ''),
        header: h,
        offset: parser.bytesConsumed,
        size: h.size,
        type: h.type,
      };
      entries.push(m);
      members.set(m.name, m);
      return undefined;
    });
    const block = Buffer.alloc(BLOCK);
    let pos = 0;
    let trailingGarbage = false;
    try {
      while (pos < fileSize && !parser.ended) {
        const { bytesRead } = await fh.read(block, 0, Math.min(BLOCK, fileSize - pos), pos);
        if (bytesRead === 0) break;
        parser.push(block.subarray(0, bytesRead));
        pos += bytesRead + parser.skip();
      }
      if (pos > fileSize) {
        const last = entries[entries.length - 1];
        throw new TarFormatError(
          `tar is truncated at byte ${fileSize}, inside the entry that starts at byte ${last?.header.offset ?? 0}`,
          fileSize,
          true,
        );
      }
      parser.end();
      // After the marker only zeros may follow (the second zero block, record padding).
      trailingGarbage = await nonZeroAfter(fh, pos, fileSize);
    } catch (e) {
      if (e instanceof TarFormatError) throw formatError(e, entries);
      throw e;
    }
    return { path, fileSize, entries, members, endOffset: parser.endOffset, trailingGarbage };
  } catch (e) {
    if (e instanceof MkimgError || !(e as NodeJS.ErrnoException).code) throw e;
    throw readError(e as NodeJS.ErrnoException);
  } finally {
    await fh.close();
  }
}

/** Whether any byte from `pos` to `end` is not zero (stops at the first). */
async function nonZeroAfter(fh: FileHandle, pos: number, end: number): Promise<boolean> {
  const buf = Buffer.alloc(64 * 1024);
  while (pos < end) {
    const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, end - pos), pos);
    if (bytesRead === 0) return false;
    for (let i = 0; i < bytesRead; i++) if (buf[i] !== 0) return true;
    pos += bytesRead;
  }
  return false;
}

/** A member's whole body. */
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

/** A member's body, or bytes [start, end) of it, as a stream. */
export function memberStream(path: string, m: TarMember, start = 0, end = m.size): Readable {
  if (end <= start) return Readable.from([]);
  return createReadStream(path, { start: m.offset + start, end: m.offset + end - 1, highWaterMark: 1 << 20 });
}

const PUMP_CHUNK = 4 * 1024 * 1024;

/**
 * Feed the bodies of `members` (in tar order) to the sinks `sinkFor` gives, in
 * one sequential read of the file: two buffers alternate, so the sinks work on
 * one while the next read fills the other: verify hashes every member at the
 * speed of reading the file. A sink must copy what it keeps (the buffers are
 * reused).
 */
export async function pumpMembers(
  tar: ImageTarIndex,
  members: TarMember[],
  sinkFor: (m: TarMember) => TarBodySink | undefined,
): Promise<void> {
  const fh = await open(tar.path, 'r');
  try {
    const bufs = [Buffer.allocUnsafe(PUMP_CHUNK), Buffer.allocUnsafe(PUMP_CHUNK)];
    let which = 0;
    for (const m of members) {
      const sink = sinkFor(m);
      if (!sink) continue;
      const end = m.offset + m.size;
      let pos = m.offset;
      const read = (at: number) => fh.read(bufs[which]!, 0, Math.min(PUMP_CHUNK, end - at), at);
      let next = pos < end ? read(pos) : undefined;
      while (next) {
        const { bytesRead } = await next;
        if (bytesRead === 0) break; // the index saw the whole body: only a file cut short since gets here
        const cur = bufs[which]!;
        which ^= 1;
        pos += bytesRead;
        next = pos < end ? read(pos) : undefined;
        sink.write(cur.subarray(0, bytesRead));
      }
      if (pos < end)
        throw new TarFormatError(
          `tar is truncated at byte ${pos}, inside the entry that starts at byte ${m.header.offset}`,
          pos,
          true,
        );
      sink.end();
    }
  } finally {
    await fh.close();
  }
}

/** The member of the blob `digest` names, if the tar has it. */
export function blobMember(tar: { members: Map<string, TarMember> }, digest: string): TarMember | undefined {
  return tar.members.get(blobPath(digest));
}

/** "os/architecture[/variant]"; '' for no platform. */
export function platformText(p: Partial<Platform> | undefined): string {
  return p ? [p.os, p.architecture, p.variant].filter(Boolean).join('/') : '';
}

/**
 * The entry of `entries` for the platform `want` ("os/arch[/variant]"): the
 * exact one, else one that differs only in that one side names no variant
 * ("linux/arm64" is "linux/arm64/v8", and the other way round).
 */
export function findPlatform<T extends { platform?: Partial<Platform> }>(entries: T[], want: string): T | undefined {
  const exact = entries.find((e) => platformText(e.platform) === want);
  if (exact) return exact;
  const [os, arch, variant] = want.split('/');
  return entries.find(
    (e) => e.platform?.os === os && e.platform?.architecture === arch && (!variant || !e.platform?.variant),
  );
}

/**
 * Parse a JSON document, checked against its descriptor's digest and size;
 * `fail` words the error for the caller's users.
 */
export function checkedJson<T>(bytes: Buffer, desc: Descriptor, what: string, fail: (msg: string) => MkimgError): T {
  if (`sha256:${sha256Hex(bytes)}` !== desc.digest || bytes.length !== desc.size) {
    throw fail(`${what} ${desc.digest} does not match its digest or size`);
  }
  return parseJson<T>(bytes, `${what} ${desc.digest}`, fail);
}

/** Parse a JSON document; `fail` words the error. */
export function parseJson<T>(bytes: Buffer, what: string, fail: (msg: string) => MkimgError): T {
  try {
    return JSON.parse(bytes.toString('utf8')) as T;
  } catch (e) {
    throw fail(`${what} is not valid JSON: ${(e as Error).message}`);
  }
}

/** Why a JSON document of `size` bytes is refused unread: one wording wherever an image's documents are read. */
export function jsonTooLarge(what: string, size: number): string {
  return `${what} has ${size} bytes, more than the ${JSON_LIMIT} a JSON document may have`;
}

/** A member that holds a JSON document: its bytes, refused unread if larger than JSON_LIMIT. */
export async function readJsonMember(
  path: string,
  m: TarMember,
  what: string,
  fail: (msg: string) => MkimgError,
): Promise<Buffer> {
  if (m.size > JSON_LIMIT) throw fail(jsonTooLarge(what, m.size));
  return readMember(path, m);
}

/**
 * Where an image layout's documents come from (an image tar's members, a
 * layout directory's files), for choosing a manifest by platform.
 */
export interface LayoutDocs {
  /** index.json's bytes. */
  index(): Promise<Buffer>;
  /** The JSON document `desc` names, checked against its digest and size. */
  json(desc: Descriptor, what: string): Promise<unknown>;
  /** An error about the layout's contents, worded for the caller. */
  fail(msg: string): MkimgError;
  /** The layout's name in messages (its path). */
  name: string;
}

/**
 * The image manifest for `platform` ("os/arch[/variant]") from index.json:
 * the only entry, or the one for the platform; nested indexes are followed, at
 * most 4 deep.
 */
export async function chooseManifest(docs: LayoutDocs, platform: string): Promise<Descriptor> {
  let index = parseJson<{ manifests?: Descriptor[] }>(await docs.index(), 'index.json', docs.fail);
  for (let depth = 0; depth < 4; depth++) {
    const all = Array.isArray(index?.manifests) ? index.manifests : [];
    if (all.length === 0) throw docs.fail('index.json lists no manifests');
    const pick = all.length === 1 ? all[0] : findPlatform(all, platform);
    if (!pick) {
      const have = all.map((m) => platformText(m.platform) || '?').join(', ');
      throw new MkimgError('usage', `${docs.name} has no image for ${platform} (it has: ${have})`, {
        hint: 'pick one of its platforms with --platform, on a host that can run it',
      });
    }
    if (!isSha256Digest(pick?.digest))
      throw docs.fail(`index.json: manifest digest "${pick?.digest}" is not sha256:<hex>`);
    if (!isIndexType(pick.mediaType ?? '')) return pick;
    index = (await docs.json(pick, 'index')) as { manifests?: Descriptor[] };
  }
  throw docs.fail('indexes nest more than 4 deep');
}

export type { Descriptor, ImageManifestDoc };

/** One image of an image tar: its manifest, read and checked. */
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

/** Read a JSON blob named by `desc`, checked against its digest and size. */
async function readBlob(
  path: string,
  members: Map<string, TarMember>,
  desc: Descriptor,
  what: string,
): Promise<Buffer> {
  const fail = (msg: string) => integrity(path, msg);
  if (!isSha256Digest(desc.digest)) throw fail(`${what}: digest "${desc.digest}" is not sha256:<hex>`);
  const m = blobMember({ members }, desc.digest);
  if (!m) throw fail(`${what} blob ${desc.digest} is missing`);
  const bytes = await readJsonMember(path, m, `${what} blob ${desc.digest}`, fail);
  if (`sha256:${sha256Hex(bytes)}` !== desc.digest || bytes.length !== desc.size) {
    throw fail(`${what} blob ${desc.digest} does not match its digest or size`);
  }
  return bytes;
}

/** The image manifest `desc` names, with its config and layers checked present and of the right size. */
async function readImage(path: string, members: Map<string, TarMember>, desc: Descriptor): Promise<ImageTar> {
  const fail = (msg: string) => integrity(path, msg);
  const manifestBytes = await readBlob(path, members, desc, 'manifest');
  const manifest = parseJson<ImageManifestDoc>(manifestBytes, `manifest ${desc.digest}`, fail);
  if (!manifest?.config || !Array.isArray(manifest.layers)) {
    throw fail(`manifest ${desc.digest} is not an image manifest (no config/layers)`);
  }
  for (const d of [manifest.config, ...manifest.layers]) {
    if (!isSha256Digest(d?.digest)) throw fail(`manifest references "${d?.digest}", not sha256:<hex>`);
    const m = blobMember({ members }, d.digest);
    if (!m) throw fail(`blob ${d.digest} referenced by the manifest is missing`);
    if (m.size !== d.size) throw fail(`blob ${d.digest} has ${m.size} bytes, the manifest says ${d.size}`);
  }
  return {
    path,
    members,
    manifestDescriptor: desc,
    manifestBytes,
    manifest,
    ...namesOf(desc),
  };
}

/** The tag and the containerd image name index.json gives an entry. */
function namesOf(desc: Descriptor): { tag?: string; imageName?: string } {
  return {
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
  const fail = (msg: string) => integrity(path, msg);
  const { members } = await indexImageTar(path);
  const indexM = members.get('index.json');
  if (!indexM) throw fail('has no index.json (not an OCI image layout)');
  const index = parseJson<{ manifests?: Descriptor[] }>(
    await readJsonMember(path, indexM, 'index.json', fail),
    'index.json',
    fail,
  );
  const manifests = index?.manifests ?? [];
  if (manifests.length !== 1) {
    throw fail(
      `index.json lists ${manifests.length} entries; mkimg reads image tars whose index.json names one image or one image index`,
    );
  }
  const desc = manifests[0]!;
  if (!isIndexType(desc.mediaType)) return { kind: 'image', image: await readImage(path, members, desc) };

  const indexBytes = await readBlob(path, members, desc, 'image index');
  const doc = parseJson<{ manifests?: Descriptor[] }>(indexBytes, `image index ${desc.digest}`, fail);
  if (!Array.isArray(doc?.manifests) || doc.manifests.length === 0) {
    throw fail(`image index ${desc.digest} lists no manifests`);
  }
  const platforms: IndexPlatform[] = [];
  const seen = new Set<string>();
  for (const entry of doc.manifests) {
    if (!isImageManifestType(entry.mediaType)) {
      throw fail(
        `image index ${desc.digest}: entry ${entry.digest} has media type "${entry.mediaType}", not an image manifest`,
      );
    }
    if (!entry.platform?.os || !entry.platform.architecture) {
      throw fail(`image index ${desc.digest}: entry ${entry.digest} has no platform`);
    }
    const key = platformText(entry.platform);
    if (seen.has(key)) throw fail(`image index ${desc.digest} lists ${key} twice`);
    seen.add(key);
    const image = await readImage(path, members, entry);
    const config = parseJson<Platform>(
      await readBlob(path, members, image.manifest.config, 'config'),
      `config ${image.manifest.config.digest}`,
      fail,
    );
    const fromConfig: Platform = { os: config?.os, architecture: config?.architecture, variant: config?.variant };
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
      ...namesOf(desc),
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
