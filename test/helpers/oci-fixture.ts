/**
 * A tiny OCI-layout image tar for tests, written with tar-stream (an
 * implementation independent of mkimg's own reader): one uncompressed layer,
 * an OCI config with labels, index.json, Docker manifest.json, oci-layout.
 * Entries sorted, mtimes = epoch, uid/gid 0, as mkimg's image tar format says.
 */
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';

type H = Partial<tar.Header> & { name: string };

export interface FixtureFile {
  name: string;
  content?: string | Buffer;
  type?: 'file' | 'directory' | 'symlink' | 'link';
  mode?: number;
  uid?: number;
  gid?: number;
  uname?: string;
  gname?: string;
  linkname?: string;
  mtime?: number;
}

export interface FixtureOptions {
  files: FixtureFile[];
  labels?: Record<string, string>;
  env?: string[];
  name?: string;
  tag?: string;
  epoch?: number;
  /** Rewrite the layer tar's bytes before they are hashed (e.g. to put raw, non-UTF-8 bytes in a name). */
  patchLayer?: (layer: Buffer) => Buffer;
}

export interface Fixture {
  path: string;
  imageId: string;
  manifestDigest: string;
  configDigest: string;
  layerDigest: string;
}

function canonical(v: unknown): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v);
  if (Array.isArray(v)) return '[' + v.map(canonical).join(',') + ']';
  const o = v as Record<string, unknown>;
  return (
    '{' +
    Object.keys(o)
      .sort()
      .filter((k) => o[k] !== undefined)
      .map((k) => JSON.stringify(k) + ':' + canonical(o[k]))
      .join(',') +
    '}'
  );
}

async function tarBytes(entries: { header: H; body?: Buffer }[]): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  const done = (async () => {
    for await (const c of pack) chunks.push(c as Buffer);
  })();
  for (const e of entries) {
    await new Promise<void>((res, rej) =>
      pack.entry(e.header as tar.Header, e.body ?? Buffer.alloc(0), (err) => (err ? rej(err) : res())),
    );
  }
  pack.finalize();
  await done;
  return Buffer.concat(chunks);
}

export function sha256(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

export async function layerTar(files: FixtureFile[], epoch: number): Promise<Buffer> {
  const sorted = [...files].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return tarBytes(
    sorted.map((f) => {
      const type = f.type ?? 'file';
      const body = type === 'file' ? Buffer.from(f.content ?? '') : undefined;
      return {
        header: {
          name: f.name,
          type,
          mode: f.mode ?? (type === 'directory' ? 0o755 : 0o644),
          uid: f.uid ?? 0,
          gid: f.gid ?? 0,
          uname: f.uname ?? '',
          gname: f.gname ?? '',
          linkname: f.linkname,
          mtime: new Date((f.mtime ?? epoch) * 1000),
          size: body?.length ?? 0,
        },
        body,
      };
    }),
  );
}

/** Build the image tar in memory (small images only) and write it to `path`. */
export async function writeOciFixture(path: string, opts: FixtureOptions): Promise<Fixture> {
  const epoch = opts.epoch ?? 1700000000;
  const name = opts.name ?? 'example.org/hello';
  const tag = opts.tag ?? 'latest';
  const unpatched = await layerTar(opts.files, epoch);
  const layer = opts.patchLayer ? opts.patchLayer(unpatched) : unpatched;
  const layerHex = sha256(layer);
  const config = Buffer.from(
    canonical({
      architecture: 'amd64',
      os: 'linux',
      created: new Date(epoch * 1000).toISOString().replace('.000Z', 'Z'),
      config: { Env: opts.env ?? ['PATH=/usr/bin:/bin'], Labels: opts.labels ?? {} },
      rootfs: { type: 'layers', diff_ids: [`sha256:${layerHex}`] },
      history: [
        { created: new Date(epoch * 1000).toISOString().replace('.000Z', 'Z'), created_by: 'mkimg test fixture' },
      ],
    }),
  );
  const configHex = sha256(config);
  const manifest = Buffer.from(
    canonical({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: {
        mediaType: 'application/vnd.oci.image.config.v1+json',
        digest: `sha256:${configHex}`,
        size: config.length,
      },
      layers: [
        { mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: `sha256:${layerHex}`, size: layer.length },
      ],
    }),
  );
  const manifestHex = sha256(manifest);
  const index = Buffer.from(
    canonical({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.index.v1+json',
      manifests: [
        {
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          digest: `sha256:${manifestHex}`,
          size: manifest.length,
          annotations: { 'io.containerd.image.name': `${name}:${tag}`, 'org.opencontainers.image.ref.name': tag },
        },
      ],
    }),
  );
  const docker = Buffer.from(
    canonical([
      { Config: `blobs/sha256/${configHex}`, RepoTags: [`${name}:${tag}`], Layers: [`blobs/sha256/${layerHex}`] },
    ]),
  );
  const layout = Buffer.from(canonical({ imageLayoutVersion: '1.0.0' }));
  const blobs = [
    [configHex, config],
    [layerHex, layer],
    [manifestHex, manifest],
  ].sort((a, b) => ((a[0] as string) < (b[0] as string) ? -1 : 1)) as [string, Buffer][];
  const mtime = new Date(epoch * 1000);
  const dir = (n: string) => ({ header: { name: n, type: 'directory' as const, mode: 0o755, mtime, uid: 0, gid: 0 } });
  const file = (n: string, body: Buffer) => ({
    header: { name: n, type: 'file' as const, mode: 0o644, mtime, uid: 0, gid: 0, size: body.length },
    body,
  });
  const outer = await tarBytes([
    dir('blobs/'),
    dir('blobs/sha256/'),
    ...blobs.map(([h, b]) => file(`blobs/sha256/${h}`, b)),
    file('index.json', index),
    file('manifest.json', docker),
    file('oci-layout', layout),
  ]);
  await pipeline(
    (async function* () {
      yield outer;
    })(),
    createWriteStream(path),
  );
  return {
    path,
    imageId: `sha256:${configHex}`,
    manifestDigest: `sha256:${manifestHex}`,
    configDigest: `sha256:${configHex}`,
    layerDigest: `sha256:${layerHex}`,
  };
}

export interface RawEntry {
  header: H;
  body: Buffer;
}

/** Read every entry of a (small) tar into memory, with tar-stream. */
export async function readTar(path: string | Buffer): Promise<RawEntry[]> {
  const { createReadStream } = await import('node:fs');
  const { Readable } = await import('node:stream');
  const ex = tar.extract();
  const src = Buffer.isBuffer(path) ? Readable.from([path]) : createReadStream(path);
  src.pipe(ex);
  const out: RawEntry[] = [];
  for await (const entry of ex) {
    const chunks: Buffer[] = [];
    for await (const c of entry) chunks.push(c as Buffer);
    out.push({ header: { ...entry.header }, body: Buffer.concat(chunks) });
  }
  return out;
}

export async function writeTar(path: string, entries: RawEntry[]): Promise<void> {
  const { writeFileSync } = await import('node:fs');
  writeFileSync(
    path,
    await tarBytes(
      entries.map((e) => ({
        header: { ...e.header, size: e.header.type === 'file' || !e.header.type ? e.body.length : 0 },
        body: e.header.type === 'file' || !e.header.type ? e.body : undefined,
      })),
    ),
  );
}

export interface Forgery {
  /** Change the parsed config (labels, Env, diff_ids...). */
  config?: (c: any) => void;
  /** Replace layer 0's bytes; diff_ids follow unless keepDiffIds. */
  layer?: (b: Buffer) => Buffer | Promise<Buffer>;
  keepDiffIds?: boolean;
}

/**
 * Rewrite an image tar consistently: after the mutation every digest, size,
 * index.json and manifest.json are recomputed, so the result is a *whole*
 * image that says something else (what a careful forger would make).
 */
export async function forgeImage(src: string, out: string, f: Forgery): Promise<void> {
  const entries = await readTar(src);
  const byName = new Map(entries.map((e) => [e.header.name, e]));
  const blob = (d: string) => byName.get(`blobs/sha256/${d.slice(7)}`)!;
  const index = JSON.parse(byName.get('index.json')!.body.toString());
  const manifest = JSON.parse(blob(index.manifests[0].digest).body.toString());
  const config = JSON.parse(blob(manifest.config.digest).body.toString());
  const blobs = new Map<string, Buffer>();
  for (const e of entries)
    if (e.header.name.startsWith('blobs/sha256/') && e.header.type === 'file')
      blobs.set(e.header.name.slice(13), e.body);
  const drop = (d: string) => blobs.delete(d.slice(7));
  const put = (b: Buffer) => {
    const h = sha256(b);
    blobs.set(h, b);
    return { digest: `sha256:${h}`, size: b.length };
  };
  if (f.layer) {
    const old = manifest.layers[0];
    const nb = await f.layer(blob(old.digest).body);
    drop(old.digest);
    const d = put(nb);
    manifest.layers[0] = { ...old, ...d };
    if (!f.keepDiffIds) config.rootfs.diff_ids[0] = d.digest;
  }
  f.config?.(config);
  drop(manifest.config.digest);
  manifest.config = { ...manifest.config, ...put(Buffer.from(canonical(config))) };
  drop(index.manifests[0].digest);
  index.manifests[0] = { ...index.manifests[0], ...put(Buffer.from(canonical(manifest))) };
  const docker = JSON.parse(byName.get('manifest.json')!.body.toString());
  docker[0].Config = `blobs/sha256/${manifest.config.digest.slice(7)}`;
  docker[0].Layers = manifest.layers.map((l: any) => `blobs/sha256/${l.digest.slice(7)}`);
  const tmpl = byName.get('index.json')!.header;
  const fileEntry = (name: string, body: Buffer): RawEntry => ({ header: { ...tmpl, name }, body });
  const outEntries: RawEntry[] = [
    ...entries.filter((e) => e.header.type === 'directory'),
    ...[...blobs.keys()].sort().map((h) => fileEntry(`blobs/sha256/${h}`, blobs.get(h)!)),
    fileEntry('index.json', Buffer.from(canonical(index))),
    fileEntry('manifest.json', Buffer.from(canonical(docker))),
    fileEntry('oci-layout', byName.get('oci-layout')!.body),
  ];
  await writeTar(out, outEntries);
}

/** Flip one byte of a file at `offset` (negative: from the end). */
export async function flipByte(src: string, out: string, offset: number, xor = 0x20): Promise<void> {
  const { readFileSync, writeFileSync } = await import('node:fs');
  const b = readFileSync(src);
  b[offset < 0 ? b.length + offset : offset] ^= xor;
  writeFileSync(out, b);
}

/** Byte offset of the body of entry `name` in a tar (parsing ustar headers; no pax). */
export function bodyOffset(tarBytes: Buffer, name: string): number {
  let off = 0;
  while (off + 512 <= tarBytes.length) {
    const h = tarBytes.subarray(off, off + 512);
    if (h.every((x) => x === 0)) break;
    const n = h.toString('utf8', 0, 100).replace(/\0.*$/s, '');
    const prefix = h.toString('utf8', 345, 500).replace(/\0.*$/s, '');
    const full = prefix ? `${prefix}/${n}` : n;
    const size = parseInt(h.toString('latin1', 124, 136).replace(/\0.*$/s, '').trim() || '0', 8);
    if (full === name) return off + 512;
    off += 512 + Math.ceil(size / 512) * 512;
  }
  throw new Error(`${name} not in tar`);
}

/** Replace `from` by the same number of raw bytes `to` in the name of the ustar header that holds it, and fix the checksum. */
export function patchTarName(tarBytes: Buffer, from: string, to: Buffer): Buffer {
  const out = Buffer.from(tarBytes);
  const needle = Buffer.from(from, 'utf8');
  if (needle.length !== to.length) throw new Error('patchTarName: same length only');
  for (let off = 0; off + 512 <= out.length; off += 512) {
    const at = out.subarray(off, off + 100).indexOf(needle);
    if (at < 0) continue;
    to.copy(out, off + at);
    out.fill(0x20, off + 148, off + 156);
    let sum = 0;
    for (let i = off; i < off + 512; i++) sum += out[i];
    out.write(sum.toString(8).padStart(6, '0') + '\0 ', off + 148, 'latin1');
    return out;
  }
  throw new Error(`patchTarName: ${from} not found`);
}
