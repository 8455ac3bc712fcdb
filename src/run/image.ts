/**
 * Where `mkimg run` gets an image from: an image tar (mkimg build / pull
 * output, an OCI layout in one tar), an OCI layout directory, or a registry
 * reference (pulled to a temporary tar first). Either way the result is one
 * image for one platform: its manifest digest, its config and its layers
 * (descriptor, diff_id, and a way to read the blob's bytes).
 */
import { createReadStream, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { MkimgError } from '../util/errors.js';
import { sha256Hex } from '../util/digest.js';

export interface Descriptor {
  mediaType?: string;
  digest: string;
  size: number;
  platform?: { os?: string; architecture?: string; variant?: string };
  annotations?: Record<string, string>;
}

/** The parts of an OCI image config `mkimg run` uses. */
export interface RunConfig {
  entrypoint: string[];
  cmd: string[];
  env: string[];
  workdir: string;
  user: string;
}

export interface RunLayer {
  desc: Descriptor;
  /** sha256:<hex> of the uncompressed layer tar, from the config's rootfs.diff_ids. */
  diffId: string;
  open(): Readable;
}

export interface RunImage {
  source: string;
  manifestDigest: string;
  platform: string;
  config: RunConfig;
  layers: RunLayer[];
}

/** Where blobs come from: a tar's members or a layout directory's files. */
interface BlobStore {
  read(digest: string): Promise<Buffer>;
  stream(desc: Descriptor): Readable;
  /** index.json's bytes. */
  index(): Promise<Buffer>;
}

const DIGEST_RE = /^sha256:[0-9a-f]{64}$/;
const INDEX_TYPES = new Set([
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
]);

function bad(source: string, msg: string): MkimgError {
  return new MkimgError('integrity', `${source}: ${msg}`, {
    hint: 'give an image tar written by mkimg build or mkimg pull, or an OCI layout directory',
  });
}

function platformOf(p: { os?: string; architecture?: string; variant?: string } | undefined): string {
  if (!p) return '';
  return [p.os ?? '', p.architecture ?? '', ...(p.variant ? [p.variant] : [])].join('/');
}

async function tarStore(path: string): Promise<BlobStore> {
  const { indexImageTar, readMember, memberStream, blobMember } = await import('../oci/image-tar.js');
  const tar = await indexImageTar(path);
  const members = tar.members;
  const member = (digest: string) => {
    if (!DIGEST_RE.test(digest)) throw bad(path, `"${digest}" is not sha256:<64 hex>`);
    const m = blobMember(tar, digest);
    if (!m) throw bad(path, `blob ${digest} is missing`);
    return m;
  };
  return {
    read: async (d) => readMember(path, member(d)),
    stream: (desc) => {
      const m = member(desc.digest);
      if (m.size !== desc.size)
        throw bad(path, `blob ${desc.digest} has ${m.size} bytes, its descriptor says ${desc.size}`);
      return memberStream(path, m);
    },
    index: async () => {
      const m = members.get('index.json');
      if (!m) throw bad(path, 'has no index.json (not an OCI image layout)');
      return readMember(path, m);
    },
  };
}

function layoutStore(dir: string): BlobStore {
  const file = (digest: string) => {
    if (!DIGEST_RE.test(digest)) throw bad(dir, `"${digest}" is not sha256:<64 hex>`);
    return join(dir, 'blobs', 'sha256', digest.slice(7));
  };
  return {
    read: async (d) =>
      readFile(file(d)).catch(() => {
        throw bad(dir, `blob ${d} is missing`);
      }),
    stream: (desc) => {
      const f = file(desc.digest);
      let size: number;
      try {
        size = statSync(f).size;
      } catch {
        throw bad(dir, `blob ${desc.digest} is missing`);
      }
      if (size !== desc.size) throw bad(dir, `blob ${desc.digest} has ${size} bytes, its descriptor says ${desc.size}`);
      return createReadStream(f, { highWaterMark: 1 << 20 });
    },
    index: async () =>
      readFile(join(dir, 'index.json')).catch(() => {
        throw bad(dir, 'has no index.json (not an OCI image layout)');
      }),
  };
}

async function readJson(store: BlobStore, source: string, d: Descriptor, what: string): Promise<any> {
  const bytes = await store.read(d.digest);
  if (`sha256:${sha256Hex(bytes)}` !== d.digest || bytes.length !== d.size)
    throw bad(source, `${what} ${d.digest} does not match its digest or size`);
  try {
    return JSON.parse(bytes.toString('utf8'));
  } catch (e) {
    throw bad(source, `${what} ${d.digest} is not valid JSON: ${(e as Error).message}`);
  }
}

/** Pick the manifest for `platform` from index.json (nested indexes followed, at most 4 deep). */
async function chooseManifest(store: BlobStore, source: string, platform: string): Promise<Descriptor> {
  let index: { manifests?: Descriptor[] };
  try {
    index = JSON.parse((await store.index()).toString('utf8'));
  } catch (e) {
    if (e instanceof MkimgError) throw e;
    throw bad(source, `index.json is not valid JSON: ${(e as Error).message}`);
  }
  for (let depth = 0; depth < 4; depth++) {
    const all = index.manifests ?? [];
    if (all.length === 0) throw bad(source, 'index.json lists no manifests');
    let pick: Descriptor | undefined;
    if (all.length === 1) pick = all[0];
    else {
      pick =
        all.find((m) => platformOf(m.platform) === platform) ??
        all.find((m) => platformOf(m.platform) === platform.split('/').slice(0, 2).join('/'));
      if (!pick) {
        const have = all.map((m) => platformOf(m.platform) || '?').join(', ');
        throw new MkimgError('usage', `${source} has no image for ${platform} (it has: ${have})`, {
          hint: 'pick one of its platforms with --platform, on a host that can run it',
        });
      }
    }
    if (!pick || !DIGEST_RE.test(pick.digest))
      throw bad(source, `index.json: manifest digest "${pick?.digest}" is not sha256:<hex>`);
    if (!INDEX_TYPES.has(pick.mediaType ?? '')) return pick;
    index = await readJson(store, source, pick, 'index');
  }
  throw bad(source, 'indexes nest more than 4 deep');
}

export interface OpenOptions {
  platform: string;
}

/** Open an image tar or an OCI layout directory. */
export async function openRunImage(source: string, opts: OpenOptions): Promise<RunImage> {
  let st;
  try {
    st = statSync(source);
  } catch {
    throw new MkimgError('usage', `${source} does not exist`, {
      hint: 'give an image tar, an OCI layout directory or a registry reference',
    });
  }
  const store = st.isDirectory() ? layoutStore(source) : await tarStore(source);
  const mdesc = await chooseManifest(store, source, opts.platform);
  const manifest = await readJson(store, source, mdesc, 'manifest');
  if (!manifest || typeof manifest !== 'object' || !manifest.config || !Array.isArray(manifest.layers))
    throw bad(source, `manifest ${mdesc.digest} is not an image manifest (no config/layers)`);
  const config = await readJson(store, source, manifest.config, 'config');
  const plat = platformOf({ os: config.os, architecture: config.architecture, variant: config.variant });
  const [wantOs, wantArch] = opts.platform.split('/');
  if (config.os !== wantOs || config.architecture !== wantArch) {
    throw new MkimgError(
      'sandbox',
      `${source} is a ${plat || 'unknown-platform'} image; this host runs ${opts.platform} images only`,
      {
        hint: "build or pull the image for this host's platform (--platform); mkimg run does not emulate other architectures",
      },
    );
  }
  const diffIds: unknown = config.rootfs?.diff_ids;
  if (!Array.isArray(diffIds) || diffIds.length !== manifest.layers.length)
    throw bad(source, `config ${manifest.config.digest}: rootfs.diff_ids does not list one digest per layer`);
  const layers: RunLayer[] = manifest.layers.map((d: Descriptor, i: number) => {
    const diffId = String(diffIds[i]);
    if (!DIGEST_RE.test(d.digest) || !DIGEST_RE.test(diffId))
      throw bad(source, `layer ${i}: digest "${d.digest}" / diff_id "${diffId}" is not sha256:<hex>`);
    return { desc: d, diffId, open: () => store.stream(d) };
  });
  const c = config.config ?? {};
  const strings = (v: unknown): string[] => (Array.isArray(v) ? v.map(String) : []);
  return {
    source,
    manifestDigest: mdesc.digest,
    platform: plat,
    config: {
      entrypoint: strings(c.Entrypoint),
      cmd: strings(c.Cmd),
      env: strings(c.Env),
      workdir: typeof c.WorkingDir === 'string' ? c.WorkingDir : '',
      user: typeof c.User === 'string' ? c.User : '',
    },
    layers,
  };
}
