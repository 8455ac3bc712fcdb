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
import type { Descriptor } from '../oci/model.js';
import {
  checkedJson,
  chooseManifest,
  isSha256Digest,
  JSON_LIMIT,
  platformText,
  type LayoutDocs,
} from '../oci/image-tar.js';

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
interface BlobStore extends LayoutDocs {
  stream(desc: Descriptor): Readable;
}

function bad(source: string, msg: string): MkimgError {
  return new MkimgError('integrity', `${source}: ${msg}`, {
    hint: 'give an image tar written by mkimg build or mkimg pull, or an OCI layout directory',
  });
}

async function tarStore(path: string): Promise<BlobStore> {
  const { indexImageTar, readJsonMember, memberStream, blobMember } = await import('../oci/image-tar.js');
  const tar = await indexImageTar(path);
  const fail = (msg: string) => bad(path, msg);
  const member = (digest: string) => {
    if (!isSha256Digest(digest)) throw fail(`"${digest}" is not sha256:<64 hex>`);
    const m = blobMember(tar, digest);
    if (!m) throw fail(`blob ${digest} is missing`);
    return m;
  };
  return {
    name: path,
    fail,
    json: async (d, what) =>
      checkedJson(await readJsonMember(path, member(d.digest), `${what} ${d.digest}`, fail), d, what, fail),
    stream: (desc) => {
      const m = member(desc.digest);
      if (m.size !== desc.size) throw fail(`blob ${desc.digest} has ${m.size} bytes, its descriptor says ${desc.size}`);
      return memberStream(path, m);
    },
    index: async () => {
      const m = tar.members.get('index.json');
      if (!m) throw fail('has no index.json (not an OCI image layout)');
      return readJsonMember(path, m, 'index.json', fail);
    },
  };
}

function layoutStore(dir: string): BlobStore {
  const fail = (msg: string) => bad(dir, msg);
  const file = (digest: string) => {
    if (!isSha256Digest(digest)) throw fail(`"${digest}" is not sha256:<64 hex>`);
    return join(dir, 'blobs', 'sha256', digest.slice(7));
  };
  /** A JSON document's bytes, refused unread if larger than JSON_LIMIT. */
  const readJsonFile = async (f: string, what: string, missing: string): Promise<Buffer> => {
    const size = statSync(f, { throwIfNoEntry: false })?.size;
    if (size === undefined) throw fail(missing);
    if (size > JSON_LIMIT)
      throw fail(`${what} has ${size} bytes, more than the ${JSON_LIMIT} a JSON document may have`);
    return readFile(f).catch(() => {
      throw fail(missing);
    });
  };
  return {
    name: dir,
    fail,
    json: async (d, what) =>
      checkedJson(
        await readJsonFile(file(d.digest), `${what} ${d.digest}`, `blob ${d.digest} is missing`),
        d,
        what,
        fail,
      ),
    stream: (desc) => {
      const f = file(desc.digest);
      let size: number;
      try {
        size = statSync(f).size;
      } catch {
        throw fail(`blob ${desc.digest} is missing`);
      }
      if (size !== desc.size) throw fail(`blob ${desc.digest} has ${size} bytes, its descriptor says ${desc.size}`);
      return createReadStream(f, { highWaterMark: 1 << 20 });
    },
    index: async () =>
      readJsonFile(join(dir, 'index.json'), 'index.json', 'has no index.json (not an OCI image layout)'),
  };
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
  const mdesc = await chooseManifest(store, opts.platform);
  const manifest: any = await store.json(mdesc, 'manifest');
  if (!manifest || typeof manifest !== 'object' || !manifest.config || !Array.isArray(manifest.layers))
    throw bad(source, `manifest ${mdesc.digest} is not an image manifest (no config/layers)`);
  const config: any = await store.json(manifest.config, 'config');
  const plat = platformText({ os: config?.os, architecture: config?.architecture, variant: config?.variant });
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
    if (!isSha256Digest(d?.digest) || !isSha256Digest(diffId))
      throw bad(source, `layer ${i}: digest "${d?.digest}" / diff_id "${diffId}" is not sha256:<hex>`);
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
