/**
 * `mkimg inspect`: what is in an image tar, each blob read once.
 *
 * The image tar's members are indexed (src/oci/image-tar.ts); every blob is
 * hashed as it streams by, and any blob that is itself a tar (the layer) is
 * parsed on the fly for its file list and the embedded SBOM. Only then are
 * index.json / the manifest consulted to say which blob was what. Blob
 * digests are checked on the way (a mismatch is an integrity error).
 */
import { createHash, type Hash } from 'node:crypto';
import { MkimgError } from '../util/errors.js';
import { LayerDecoder } from '../oci/decompress.js';
import {
  findPlatform,
  indexImageTar,
  memberStream,
  parseJson as parseJsonDoc,
  platformText,
  readJsonMember,
  type TarMember,
} from '../oci/image-tar.js';
import { isIndexType, layerCompression, ociPlatform, SBOM_IMAGE_PATH } from '../oci/model.js';
import { hostArchitecture } from '../debian/arch.js';
import { type TarFormatError, TarParser, type TarBodySink, type TarHeader } from '../image/tar-reader.js';

type ScanType = InspectFile['type'];

/** An entry as inspect shows it: the name without a leading "./", the kind, permission bits, a link target only for links. */
interface ScanHeader {
  name: string;
  type: ScanType;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  linkName?: string;
}

function scanHeader(h: TarHeader): ScanHeader {
  const t = h.type;
  const type: ScanType =
    t === '0' || t === '7' ? 'file' : t === '1' ? 'hardlink' : t === '2' ? 'symlink' : t === '5' ? 'dir' : 'other';
  return {
    name: h.name.replace(/^\.\//, ''),
    type,
    mode: h.mode & 0o7777,
    uid: h.uid,
    gid: h.gid,
    size: type === 'hardlink' || type === 'symlink' || type === 'dir' ? 0 : h.size, // no content, whatever the header says
    ...(h.linkname !== '' && type !== 'file' && type !== 'dir' ? { linkName: h.linkname } : {}),
  };
}

function tarError(label: string, e: TarFormatError): MkimgError {
  return new MkimgError('integrity', `${label}: ${e.message}`, {
    hint: e.truncated ? 'the file was cut short: copy or download it again' : 'the file is not a tar or is corrupt',
  });
}

export const SBOM_IN_LAYER = SBOM_IMAGE_PATH.slice(1);
const SBOM_LIMIT = 256 << 20;

export interface InspectFile {
  path: string; // absolute image path
  type: 'file' | 'dir' | 'symlink' | 'hardlink' | 'other';
  mode: number;
  uid: number;
  gid: number;
  size: number;
  linkTarget?: string;
  /** Owning Debian package (from the embedded SBOM), "(files: input)", "(generated)", or undefined. */
  package?: string;
  /** Index of the layer that holds it (a directory: the first layer that has it). */
  layer?: number;
  /** sha256 of a regular file's content, with `inspectImage(…, { digests: true })`. */
  sha256?: string;
}

export interface InspectOptions {
  /** Return every entry (InspectResult.files). */
  files?: boolean;
  /** Hash every regular file's content (InspectFile.sha256), e.g. to compare two images file by file. */
  digests?: boolean;
  /** Keep the content of these image paths (regular files up to CONTENT_LIMIT bytes each) in InspectResult.contents. */
  contents?: Set<string>;
  /** Of an image of several platforms, the one to describe: OS/ARCH[/VARIANT] or a Debian name (default: the host's, else the first). */
  platform?: string;
}

const CONTENT_LIMIT = 1 << 20;

export interface InspectResult {
  file: string;
  name?: string; // NAME:TAG from the index annotation
  imageId: string;
  manifestDigest: string;
  platform: { os?: string; architecture?: string; variant?: string };
  /** An image of several platforms: the index's digest and every platform (the rest describes the one chosen). */
  index?: { digest: string; platforms: { platform: string; manifestDigest: string; imageId: string }[] };
  created?: string;
  config: {
    entrypoint?: string[];
    cmd?: string[];
    env: string[];
    user?: string;
    workdir?: string;
    labels: Record<string, string>;
    exposedPorts: string[];
    stopSignal?: string;
    volumes: string[];
  };
  layers: { digest: string; size: number; mediaType: string; files: number; bytes: number }[];
  fileCount: number;
  fileBytes: number;
  files?: InspectFile[];
  sbom?: {
    path: string;
    packageCount: number;
    fileCount: number;
    packages: { name: string; version: string; purl?: string; license?: string }[];
  };
  /** The embedded SBOM's exact bytes (not printed; for `inspect --sbom FILE`). */
  sbomBytes?: Buffer;
  /** Content of the paths asked for with InspectOptions.contents (not printed). */
  contents?: Map<string, Buffer>;
}

interface BlobInfo {
  hex: string;
  size: number;
  computed?: string;
  files?: InspectFile[];
  sbom?: Buffer;
  isTar: boolean;
  compression?: 'gzip' | 'zstd';
  decodeError?: Error;
}

class BlobReader implements TarBodySink {
  private hash: Hash = createHash('sha256');
  private inner: TarParser | undefined;
  private innerFailed = false;
  private files: InspectFile[] = [];
  private sbomChunks: Buffer[] | undefined;
  private sbom: Buffer | undefined;
  private first = true;
  private decoder: LayerDecoder | undefined;
  private decodeError: Error | undefined;
  readonly contents = new Map<string, Buffer>();

  constructor(
    readonly info: BlobInfo,
    private opts: InspectOptions = {},
  ) {}

  write(chunk: Buffer): void {
    this.hash.update(chunk);
    if (this.first && chunk.length > 0) {
      this.first = false;
      if (chunk[0] === 0x7b /* { */ || chunk[0] === 0x5b /* [ */) this.innerFailed = true; // JSON, not a tar
      // A compressed layer (gzip or zstd magic): its tar is read through the bounded decoder.
      const compression =
        chunk.length >= 4 && chunk[0] === 0x1f && chunk[1] === 0x8b
          ? 'gzip'
          : chunk.length >= 4 && chunk.readUInt32LE(0) === 0xfd2fb528
            ? 'zstd'
            : undefined;
      if (compression) {
        this.decoder = new LayerDecoder(
          compression,
          this.info.size,
          `blob sha256:${this.info.hex} (${compression})`,
          (c) => this.innerWrite(Buffer.from(c.buffer, c.byteOffset, c.length)),
        );
        this.info.compression = compression;
      }
    }
    if (this.decoder) {
      if (!this.innerFailed) {
        try {
          this.decoder.write(chunk);
        } catch (e) {
          this.decodeError = e as Error;
          this.innerFailed = true;
          this.inner = undefined;
        }
      }
      return;
    }
    this.innerWrite(chunk);
  }

  private innerWrite(chunk: Buffer): void {
    if (!this.innerFailed) {
      try {
        this.inner ??= new TarParser((h) => this.layerEntry(scanHeader(h)));
        if (!this.inner.ended) this.inner.push(chunk);
      } catch {
        this.innerFailed = true;
        this.inner = undefined;
      }
    }
  }

  private layerEntry(h: ScanHeader): TarBodySink | undefined {
    const path = '/' + h.name.replace(/\/+$/, '');
    const f: InspectFile = {
      path: path === '/' ? '/' : path,
      type: h.type,
      mode: h.mode,
      uid: h.uid,
      gid: h.gid,
      size: h.size,
      ...(h.linkName !== undefined
        ? { linkTarget: h.type === 'hardlink' ? '/' + h.linkName.replace(/^\.\//, '') : h.linkName }
        : {}),
    };
    this.files.push(f);
    const wantContent = h.type === 'file' && h.size <= CONTENT_LIMIT && this.opts.contents?.has(f.path);
    if ((this.opts.digests || wantContent) && h.type === 'file' && h.name !== SBOM_IN_LAYER) {
      const hash = this.opts.digests ? createHash('sha256') : undefined;
      const chunks: Buffer[] | undefined = wantContent ? [] : undefined;
      return {
        write: (b) => {
          hash?.update(b);
          chunks?.push(b);
        },
        end: () => {
          if (hash) f.sha256 = hash.digest('hex');
          if (chunks) this.contents.set(f.path, Buffer.concat(chunks));
        },
      };
    }
    if (h.name === SBOM_IN_LAYER && h.type === 'file' && h.size <= SBOM_LIMIT) {
      this.sbomChunks = [];
      return {
        write: (b) => this.sbomChunks!.push(b),
        end: () => {
          this.sbom = Buffer.concat(this.sbomChunks!);
          this.sbomChunks = undefined;
          if (this.opts.digests) f.sha256 = createHash('sha256').update(this.sbom).digest('hex');
          if (wantContent) this.contents.set(f.path, this.sbom);
        },
      };
    }
    return undefined;
  }

  end(): void {
    this.info.computed = this.hash.digest('hex');
    if (this.decoder && !this.innerFailed) {
      try {
        this.decoder.end();
      } catch (e) {
        this.decodeError = e as Error;
        this.innerFailed = true;
      }
    }
    this.info.decodeError = this.decodeError;
    if (this.inner && !this.innerFailed) {
      try {
        this.inner.end();
        this.info.isTar = true;
      } catch {
        this.info.isTar = false;
      }
      if (this.info.isTar) {
        this.info.files = this.files;
        this.info.sbom = this.sbom;
      }
    }
  }
}

const invalid = (msg: string) => new MkimgError('integrity', msg);

function parseJson(label: string, b: Buffer | undefined): any {
  if (!b)
    throw new MkimgError('integrity', `${label} is missing from the image tar`, {
      hint: 'is this an image tar written by mkimg build (OCI layout)?',
    });
  return parseJsonDoc(b, label, invalid);
}

const BLOB_NAME = /^blobs\/sha256\/([0-9a-f]{64})$/;
const isFile = (m: TarMember) => m.type === '0' || m.type === '7';

function ownersFromSbom(sbom: any): Map<string, string> {
  const out = new Map<string, string>();
  const pkgName = new Map<string, string>();
  for (const p of sbom.packages ?? []) {
    const isDeb = (p.externalRefs ?? []).some((r: any) => r.referenceType === 'purl');
    const label = isDeb
      ? p.name
      : p.SPDXID === 'SPDXRef-Package-mkimg-inputs'
        ? '(files: input)'
        : p.SPDXID === 'SPDXRef-Package-mkimg-generated'
          ? '(generated)'
          : undefined;
    if (label) pkgName.set(p.SPDXID, label);
  }
  const fileName = new Map<string, string>();
  for (const f of sbom.files ?? []) fileName.set(f.SPDXID, f.fileName);
  for (const r of sbom.relationships ?? []) {
    if (r.relationshipType !== 'CONTAINS') continue;
    const owner = pkgName.get(r.spdxElementId);
    const file = fileName.get(r.relatedSpdxElement);
    if (owner && file) out.set(file, owner);
  }
  return out;
}

/** Inspect an image tar written by `mkimg build` (or any OCI image layout tar with uncompressed layers). */
export async function inspectImage(file: string, opts: InspectOptions = {}): Promise<InspectResult> {
  const blobs = new Map<string, BlobInfo>();
  const readers = new Map<string, BlobReader>();
  const members = new Map<string, TarMember>();
  const readError = (e: NodeJS.ErrnoException) =>
    new MkimgError(e.code === 'ENOENT' ? 'usage' : 'integrity', `cannot read ${file}: ${e.code ?? String(e)}`, {
      cause: e,
    });
  const tar = await indexImageTar(file, {
    readError,
    // A tar cut short before any blob is most likely not an image tar at all.
    formatError: (e, seen) =>
      e.truncated && !seen.some((m) => isFile(m) && BLOB_NAME.test(m.name))
        ? new MkimgError('integrity', `${file} is not an image tar (no blobs/sha256/ entries)`)
        : tarError(file, e),
  });
  for (const m of tar.entries) {
    const hex = BLOB_NAME.exec(m.name)?.[1];
    if (!hex || !isFile(m)) continue;
    const info: BlobInfo = { hex, size: m.size, isTar: false };
    const reader = new BlobReader(info, opts);
    blobs.set(hex, info);
    readers.set(hex, reader);
    members.set(hex, m);
    try {
      for await (const chunk of memberStream(file, m)) reader.write(chunk as Buffer);
    } catch (e) {
      if (e instanceof MkimgError) throw e;
      throw readError(e as NodeJS.ErrnoException);
    }
    reader.end();
  }

  for (const b of blobs.values()) {
    if (b.computed !== b.hex) {
      throw new MkimgError('integrity', `${file}: blob sha256:${b.hex} has content with digest sha256:${b.computed}`, {
        hint: 'the image tar is corrupt or was modified; run `mkimg verify` for a full check',
      });
    }
  }
  const blobJson = async (digest: string, what: string): Promise<any> => {
    const hex = String(digest).replace(/^sha256:/, '');
    const m = members.get(hex);
    if (!m) throw new MkimgError('integrity', `${file}: the ${what} ${digest} is not in blobs/sha256/`);
    return parseJson(`${what} ${digest}`, await readJsonMember(file, m, `${what} ${digest}`, invalid));
  };

  const indexMember = tar.members.get('index.json');
  const index = parseJson(
    `${file}: index.json`,
    indexMember && isFile(indexMember)
      ? await readJsonMember(file, indexMember, `${file}: index.json`, invalid)
      : undefined,
  );
  const desc = (index.manifests ?? [])[0];
  if (!desc?.digest) throw new MkimgError('integrity', `${file}: index.json lists no manifest`);
  let manifestDesc = desc;
  let indexInfo: InspectResult['index'];
  if (isIndexType(String(desc.mediaType))) {
    // An image of several platforms: describe one, list them all.
    const listed = (await blobJson(desc.digest, 'image index'))?.manifests;
    const entries: any[] = Array.isArray(listed) ? listed : [];
    if (entries.length === 0) throw new MkimgError('integrity', `${file}: the image index lists no manifests`);
    const want = opts.platform
      ? opts.platform.includes('/')
        ? opts.platform
        : platformText(ociPlatform(opts.platform))
      : platformText(ociPlatform(hostArchitecture()));
    const pick = findPlatform(entries, want) ?? (opts.platform ? undefined : entries[0]);
    if (!pick) {
      throw new MkimgError(
        'usage',
        `${file} has no image for ${opts.platform} (it has: ${entries.map((e) => platformText(e.platform)).join(', ')})`,
        { hint: 'give one of its platforms with --platform' },
      );
    }
    manifestDesc = pick;
    const platforms: NonNullable<InspectResult['index']>['platforms'] = [];
    for (const e of entries) {
      platforms.push({
        platform: platformText(e.platform),
        manifestDigest: e.digest,
        imageId: (await blobJson(e.digest, 'image manifest'))?.config?.digest,
      });
    }
    indexInfo = { digest: desc.digest, platforms };
  }
  const manifest = await blobJson(manifestDesc.digest, 'image manifest');
  const config = await blobJson(manifest?.config?.digest, 'config');
  const c = config.config ?? {};

  const layers: InspectResult['layers'] = [];
  const files: InspectFile[] = [];
  const contents = new Map<string, Buffer>();
  let sbomBuf: Buffer | undefined;
  const seenDirs = new Set<string>();
  for (const l of manifest.layers ?? []) {
    const hex = String(l.digest).replace(/^sha256:/, '');
    const b = blobs.get(hex);
    if (!b) throw new MkimgError('integrity', `${file}: layer ${l.digest} is not in blobs/sha256/`);
    const compression = layerCompression(String(l.mediaType));
    if (compression === undefined) {
      throw new MkimgError(
        'integrity',
        `${file}: layer ${l.digest} has media type ${JSON.stringify(l.mediaType)}, which mkimg does not read`,
        { hint: 'mkimg reads uncompressed, gzip and zstd tar layers' },
      );
    }
    if (b.decodeError)
      throw b.decodeError instanceof MkimgError
        ? b.decodeError
        : new MkimgError('integrity', `${file}: layer ${l.digest}: ${b.decodeError.message}`);
    if ((b.compression ?? 'none') !== compression || !b.isTar || !b.files) {
      throw new MkimgError(
        'integrity',
        `${file}: layer ${l.digest} is not a ${compression === 'none' ? 'uncompressed' : compression} tar, as its media type ${l.mediaType} says`,
      );
    }
    const regular = b.files.filter((f) => f.type === 'file');
    const index = layers.length;
    layers.push({
      digest: l.digest,
      size: b.size,
      mediaType: l.mediaType,
      files: b.files.length,
      bytes: regular.reduce((a, f) => a + f.size, 0),
    });
    // A directory repeated in later layers (as the parent of their files) is listed once, at its first layer.
    for (const f of b.files) {
      if (f.type === 'dir' && seenDirs.has(f.path)) continue;
      if (f.type === 'dir') seenDirs.add(f.path);
      files.push({ ...f, layer: index });
    }
    for (const [p, c] of readers.get(hex)?.contents ?? []) contents.set(p, c);
    if (b.sbom) sbomBuf = b.sbom;
  }

  let sbom: InspectResult['sbom'];
  if (sbomBuf) {
    const doc = parseJson(`${file}: /${SBOM_IN_LAYER}`, sbomBuf);
    const debs = (doc.packages ?? []).filter((p: any) =>
      (p.externalRefs ?? []).some((r: any) => r.referenceType === 'purl'),
    );
    sbom = {
      path: '/' + SBOM_IN_LAYER,
      packageCount: debs.length,
      fileCount: (doc.files ?? []).length,
      packages: debs
        .map((p: any) => ({
          name: p.name,
          version: p.versionInfo,
          purl: p.externalRefs.find((r: any) => r.referenceType === 'purl')?.referenceLocator,
          license: p.licenseDeclared,
        }))
        .sort((a: any, b: any) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)),
    };
    const owners = ownersFromSbom(doc);
    for (const f of files) {
      const o = owners.get(f.path);
      if (o) f.package = o;
    }
    for (const f of files) if (f.path === sbom.path) f.package = '(generated)';
  }

  const regular = files.filter((f) => f.type === 'file');
  return {
    file,
    name: desc.annotations?.['io.containerd.image.name'],
    imageId: manifest.config.digest,
    manifestDigest: manifestDesc.digest,
    platform: {
      os: config.os,
      architecture: config.architecture,
      ...(config.variant ? { variant: config.variant } : {}),
    },
    ...(indexInfo ? { index: indexInfo } : {}),
    created: config.created,
    config: {
      entrypoint: c.Entrypoint ?? undefined,
      cmd: c.Cmd ?? undefined,
      env: c.Env ?? [],
      user: c.User || undefined,
      workdir: c.WorkingDir || undefined,
      labels: c.Labels ?? {},
      exposedPorts: Object.keys(c.ExposedPorts ?? {}).sort(),
      stopSignal: c.StopSignal || undefined,
      volumes: Object.keys(c.Volumes ?? {}).sort(),
    },
    layers,
    fileCount: files.length,
    fileBytes: regular.reduce((a, f) => a + f.size, 0),
    ...(opts.files ? { files } : {}),
    sbom,
    ...(sbomBuf ? { sbomBytes: sbomBuf } : {}),
    ...(opts.contents ? { contents } : {}),
  };
}

export function humanSize(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB'];
  let v = n;
  let u = -1;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v.toFixed(1)} ${units[u]}`;
}

function modeString(f: InspectFile): string {
  const t =
    f.type === 'dir' ? 'd' : f.type === 'symlink' ? 'l' : f.type === 'hardlink' ? 'h' : f.type === 'file' ? '-' : '?';
  const bits = 'rwxrwxrwx';
  let s = '';
  for (let i = 0; i < 9; i++) s += f.mode & (1 << (8 - i)) ? bits[i] : '-';
  const a = s.split('');
  if (f.mode & 0o4000) a[2] = a[2] === 'x' ? 's' : 'S';
  if (f.mode & 0o2000) a[5] = a[5] === 'x' ? 's' : 'S';
  if (f.mode & 0o1000) a[8] = a[8] === 'x' ? 't' : 'T';
  return t + a.join('');
}

/** The human report: one fact per line, the file table when files are present. */
export function formatInspect(r: InspectResult): string[] {
  const out: string[] = [];
  const j = (v: unknown) => JSON.stringify(v);
  out.push(`${r.file}${r.name ? `: ${r.name}` : ''}`);
  const shown = [r.platform.os, r.platform.architecture, r.platform.variant].filter(Boolean).join('/');
  if (r.index) {
    out.push(`  index digest:    ${r.index.digest}`);
    for (const [i, p] of r.index.platforms.entries())
      out.push(
        `  ${i === 0 ? 'platforms:      ' : '                '} ${p.platform.padEnd(15)} ${p.manifestDigest}${p.platform === shown ? '  (shown below; --platform picks another)' : ''}`,
      );
  }
  out.push(`  image id:        ${r.imageId}`);
  out.push(`  manifest digest: ${r.manifestDigest}`);
  out.push(`  platform:        ${shown}`);
  if (r.created) out.push(`  created:         ${r.created}`);
  if (r.config.entrypoint) out.push(`  entrypoint:      ${j(r.config.entrypoint)}`);
  if (r.config.cmd) out.push(`  cmd:             ${j(r.config.cmd)}`);
  out.push(`  user:            ${r.config.user ?? '(root)'}`);
  if (r.config.workdir) out.push(`  workdir:         ${r.config.workdir}`);
  for (const [i, e] of r.config.env.entries()) out.push(`  ${i === 0 ? 'env:            ' : '                '} ${e}`);
  const labels = Object.keys(r.config.labels).sort();
  for (const [i, k] of labels.entries())
    out.push(`  ${i === 0 ? 'labels:         ' : '                '} ${k}=${r.config.labels[k]}`);
  if (r.config.exposedPorts.length) out.push(`  ports:           ${r.config.exposedPorts.join(' ')}`);
  if (r.config.stopSignal) out.push(`  stop signal:     ${r.config.stopSignal}`);
  if (r.config.volumes.length) out.push(`  volumes:         ${r.config.volumes.join(' ')}`);
  out.push(`  layers:          ${r.layers.length}`);
  for (const [i, l] of r.layers.entries()) {
    const c = layerCompression(l.mediaType);
    out.push(
      `    ${i}: ${l.digest}  ${humanSize(l.size)} (${l.size} bytes${c && c !== 'none' ? `, ${c}` : ''}), ${l.files} entries, ${humanSize(l.bytes)} in regular files`,
    );
  }
  out.push(`  files:           ${r.fileCount} entries, ${humanSize(r.fileBytes)} in regular files`);
  if (r.sbom) {
    out.push(`  sbom:            ${r.sbom.packageCount} Debian packages, ${r.sbom.fileCount} files (${r.sbom.path})`);
    for (const p of r.sbom.packages)
      out.push(`    ${p.name} ${p.version}${p.license && p.license !== 'NOASSERTION' ? `  (${p.license})` : ''}`);
  } else {
    out.push('  sbom:            none in the image');
  }
  if (r.files) {
    out.push('');
    for (const f of r.files) {
      const link =
        f.linkTarget !== undefined ? (f.type === 'hardlink' ? ` => ${f.linkTarget}` : ` -> ${f.linkTarget}`) : '';
      out.push(
        `${modeString(f)} ${String(f.uid).padStart(5)}:${String(f.gid).padEnd(5)} ${String(f.size).padStart(10)}  ${f.path}${link}${f.package ? `  [${f.package}]` : ''}${r.layers.length > 1 && f.layer !== undefined ? `  (layer ${f.layer})` : ''}`,
      );
    }
  }
  return out;
}
