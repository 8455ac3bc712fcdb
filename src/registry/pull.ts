/**
 * Pull an image from a registry into the same tar format `mkimg build` writes:
 * the manifest (an index picks linux/amd64 or its only entry), then every blob
 * verified by digest and size, then one sorted tar written to a temporary name
 * and renamed. The tar is written by the image module's writeLayoutTar with
 * its JSON builders, so an image built, pushed and pulled back is
 * byte-identical to the built one (given the same NAME:TAG).
 */
import { createHash } from 'node:crypto';
import {
  closeSync,
  createWriteStream,
  existsSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readSync,
  rmSync,
} from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Transform } from 'node:stream';
import { MkimgError } from '../util/errors.js';
import { armSignalCleanup, collectStale, escapeName, removeOnSignal } from '../util/cleanup.js';
import { pool } from '../util/pool.js';
import { sha256Hex } from '../util/digest.js';
import { writeLayoutTar, type LayoutMember } from '../image/write-image.js';
import { LayerDecoder } from '../oci/decompress.js';
import {
  dockerManifestJson,
  imageIndex,
  isIndexType,
  layerCompression,
  MEDIA,
  ociPlatform,
  OCI_LAYOUT,
} from '../oci/model.js';
import { indexTarMembers, type IndexTarPlatform } from '../image/platforms.js';
import { hostArchitecture } from '../debian/arch.js';
import { RegistryClient, isTransient, sleep, type RegistryOptions } from './client.js';
import type { Descriptor, ImageManifestDoc } from '../oci/model.js';
import { Progress } from './progress.js';
import { formatReference, parseReference, type ImageReference } from './reference.js';

export const MEDIA_TYPES = {
  ociManifest: MEDIA.manifest,
  ociIndex: MEDIA.index,
  dockerManifest: MEDIA.dockerManifest,
  dockerList: MEDIA.dockerList,
} as const;

const ACCEPT = [MEDIA_TYPES.ociManifest, MEDIA_TYPES.dockerManifest, MEDIA_TYPES.ociIndex, MEDIA_TYPES.dockerList].join(
  ', ',
);

export interface PullOptions extends RegistryOptions {
  /** NAME[:TAG] written into index.json and manifest.json (default: the repository path and the pulled tag, or "latest"). */
  name?: string;
  /** Platform picked from an index (default linux/amd64). */
  platform?: { os: string; architecture: string; variant?: string };
  /** Blobs downloaded at once (default 3). */
  concurrency?: number;
  /** The whole pull must finish within this (default PULL_DEADLINE_MS, or MKIMG_PULL_TIMEOUT seconds). */
  deadlineMs?: number;
  /** A blob download with no byte for this long is abandoned and retried (default PULL_STALL_MS, or MKIMG_PULL_STALL_TIMEOUT seconds). */
  stallMs?: number;
}

/** SPEC §4 "Limits": a pull ends after 30 minutes; a blob with no data for 60 s is restarted. */
export const PULL_DEADLINE_MS = 30 * 60_000;
export const PULL_STALL_MS = 60_000;

function msFromEnv(name: string, fallback: number): number {
  const v = process.env[name];
  if (v === undefined || v === '') return fallback;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new MkimgError('usage', `${name}=${v} is not a positive number of seconds`);
  return n * 1000;
}

export interface PullResult {
  reference: string;
  output: string;
  /** Of the image manifest, or of the image index when a whole index was pulled. */
  manifestDigest: string;
  /** Of the image's config; absent for a whole index (see platforms). */
  configDigest?: string;
  /** A whole index: each platform's manifest and config. */
  platforms?: { platform: string; manifestDigest: string; configDigest: string }[];
  /** NAME:TAG recorded in the tar. */
  name: string;
  sizeBytes: number;
  layers: number;
}

export interface FetchedManifest {
  bytes: Buffer;
  digest: string;
  mediaType: string;
  doc: ImageManifestDoc;
}

function parseJson<T>(bytes: Buffer, what: string, registry: string): T {
  try {
    return JSON.parse(bytes.toString('utf8')) as T;
  } catch (e) {
    throw new MkimgError('registry', `registry ${registry}: ${what} is not valid JSON: ${(e as Error).message}`);
  }
}

interface RawManifest {
  bytes: Buffer;
  digest: string;
  mediaType: string;
}

/** GET one manifest (image or index) by tag or digest, its digest checked; null on 404. */
async function getManifest(
  client: RegistryClient,
  repo: string,
  reference: string,
  expectDigest?: string,
): Promise<RawManifest | null> {
  const what = `GET manifest ${reference}`;
  const res = await client.request({
    method: 'GET',
    url: `/v2/${repo}/manifests/${reference}`,
    headers: { accept: ACCEPT },
    scopes: [`repository:${repo}:pull`],
    what,
    repository: repo,
  });
  if (res.status === 404) return null;
  if (res.status !== 200) throw client.fail(res, what, repo);
  const digest = `sha256:${sha256Hex(res.body)}`;
  const header = res.headers['docker-content-digest'];
  if (expectDigest && digest !== expectDigest) {
    throw new MkimgError(
      'registry',
      `registry ${client.registry}, repository "${repo}": manifest ${reference} has digest ${digest}`,
      {
        hint: 'the registry served other bytes than the digest names; do not trust this registry',
      },
    );
  }
  if (typeof header === 'string' && header.startsWith('sha256:') && header !== digest) {
    throw new MkimgError(
      'registry',
      `registry ${client.registry}, repository "${repo}": manifest ${reference} has digest ${digest}, the registry says ${header}`,
    );
  }
  const doc = parseJson<{ mediaType?: string }>(res.body, `manifest ${reference}`, client.registry);
  const ct = String(res.headers['content-type'] ?? '')
    .split(';')[0]!
    .trim();
  return { bytes: res.body, digest, mediaType: doc.mediaType ?? ct };
}

/** `m` as an image manifest: a media type mkimg reads, a config and well-formed layer descriptors. */
function asImageManifest(client: RegistryClient, repo: string, m: RawManifest): FetchedManifest {
  if (m.mediaType !== MEDIA_TYPES.ociManifest && m.mediaType !== MEDIA_TYPES.dockerManifest) {
    throw new MkimgError(
      'registry',
      `registry ${client.registry}, repository "${repo}": manifest media type "${m.mediaType}" is not supported`,
      {
        hint: `mkimg reads ${MEDIA_TYPES.ociManifest} and ${MEDIA_TYPES.dockerManifest}`,
      },
    );
  }
  const doc = parseJson<ImageManifestDoc>(m.bytes, 'image manifest', client.registry);
  if (!doc.config || !Array.isArray(doc.layers)) {
    throw new MkimgError(
      'registry',
      `registry ${client.registry}, repository "${repo}": manifest ${m.digest} has no config or layers`,
    );
  }
  for (const d of [doc.config, ...doc.layers]) {
    if (!/^sha256:[0-9a-f]{64}$/.test(d.digest) || !Number.isSafeInteger(d.size) || d.size < 0) {
      throw new MkimgError(
        'registry',
        `registry ${client.registry}, repository "${repo}": manifest ${m.digest} has a bad descriptor (${d.digest}, ${d.size})`,
      );
    }
  }
  return { ...m, doc };
}

/** GET a manifest by tag or digest; an index resolves to one image manifest for the platform. */
export async function fetchImageManifest(
  client: RegistryClient,
  ref: ImageReference,
  platform: { os: string; architecture: string; variant?: string } = { os: 'linux', architecture: 'amd64' },
): Promise<FetchedManifest | null> {
  const top = await getManifest(client, ref.repository, ref.digest ?? ref.tag ?? 'latest', ref.digest);
  if (!top) return null;
  return imageOf(client, ref.repository, top, platform);
}

/** The image manifest `top` is, or the one its index lists for `platform`. */
async function imageOf(
  client: RegistryClient,
  repo: string,
  top: RawManifest,
  platform: { os: string; architecture: string; variant?: string },
): Promise<FetchedManifest> {
  if (!isIndexType(top.mediaType)) return asImageManifest(client, repo, top);
  const list = indexEntries(client, repo, top);
  const matches = list.filter(
    (d) =>
      d.platform?.os === platform.os &&
      d.platform?.architecture === platform.architecture &&
      (!platform.variant || d.platform?.variant === platform.variant),
  );
  const pick = matches[0] ?? (list.length === 1 ? list[0] : undefined);
  if (!pick) {
    const have = list.map((d) => platformText(d.platform));
    throw new MkimgError(
      'registry',
      `registry ${client.registry}, repository "${repo}": the index has no image for ${platformText(platform)} (it has: ${have.join(', ') || 'nothing'})`,
      { hint: 'pick one of its platforms with --platform, or pull the whole index without --platform' },
    );
  }
  return asImageManifest(client, repo, await manifestByDigest(client, repo, pick.digest));
}

function platformText(p: { os?: string; architecture?: string; variant?: string } | undefined): string {
  return `${p?.os ?? '?'}/${p?.architecture ?? '?'}${p?.variant ? `/${p.variant}` : ''}`;
}

function indexEntries(client: RegistryClient, repo: string, top: RawManifest): Descriptor[] {
  const index = parseJson<{ manifests?: Descriptor[] }>(top.bytes, 'image index', client.registry);
  const list = index.manifests;
  if (!Array.isArray(list) || list.length === 0)
    throw new MkimgError(
      'registry',
      `registry ${client.registry}, repository "${repo}": image index ${top.digest} lists no manifests`,
    );
  for (const d of list) {
    if (!/^sha256:[0-9a-f]{64}$/.test(d?.digest) || !Number.isSafeInteger(d.size) || d.size < 0)
      throw new MkimgError(
        'registry',
        `registry ${client.registry}, repository "${repo}": image index ${top.digest} has a bad descriptor (${d?.digest}, ${d?.size})`,
      );
  }
  return list;
}

async function manifestByDigest(client: RegistryClient, repo: string, digest: string): Promise<RawManifest> {
  const m = await getManifest(client, repo, digest, digest);
  if (!m)
    throw new MkimgError(
      'registry',
      `registry ${client.registry}, repository "${repo}": the index names manifest ${digest}, which the registry does not have`,
    );
  return m;
}

/** Download one blob into `path`, verifying digest and size; restarts after network errors (bounded). */
async function downloadBlob(
  client: RegistryClient,
  repo: string,
  d: Descriptor,
  path: string,
  opts: RegistryOptions,
  progress: Progress,
  limits: { stallMs: number; active: Set<{ destroy(e?: Error): void }> },
): Promise<void> {
  const retries = opts.retries ?? 5;
  for (let attempt = 0; ; attempt++) {
    let got = 0;
    let stallTimer: NodeJS.Timeout | undefined;
    let stream: { destroy(e?: Error): void } | undefined;
    try {
      const what = `GET blob ${d.digest}`;
      const res = await client.request({
        method: 'GET',
        url: `/v2/${repo}/blobs/${d.digest}`,
        scopes: [`repository:${repo}:pull`],
        stream: true,
        followRedirects: true,
        what,
        repository: repo,
      });
      if (res.status !== 200 || !res.stream) throw client.fail(res, what, repo);
      const body = res.stream;
      stream = body;
      limits.active.add(body);
      const stalled = (): void => {
        body.destroy(
          new MkimgError(
            'registry',
            `registry ${client.registry}, repository "${repo}": blob ${d.digest} stalled: no data for ${limits.stallMs / 1000} s`,
            {
              details: { transient: true },
            },
          ),
        );
      };
      stallTimer = setTimeout(stalled, limits.stallMs);
      const hash = createHash('sha256');
      const check = new Transform({
        transform(chunk: Buffer, _enc, cb) {
          got += chunk.length;
          if (got > d.size) {
            cb(
              new MkimgError(
                'registry',
                `registry ${client.registry}, repository "${repo}": blob ${d.digest} is larger than the ${d.size} bytes the manifest says`,
              ),
            );
            return;
          }
          hash.update(chunk);
          progress.add(chunk.length);
          stallTimer?.refresh();
          cb(null, chunk);
        },
      });
      await pipeline(body, check, createWriteStream(path));
      const digest = `sha256:${hash.digest('hex')}`;
      if (got !== d.size || digest !== d.digest) {
        throw new MkimgError(
          'registry',
          `registry ${client.registry}, repository "${repo}": blob ${d.digest} arrived with ${got} bytes and digest ${digest}`,
          {
            hint: 'the registry served corrupt or truncated content',
            details: { transient: got < d.size },
          },
        );
      }
      return;
    } catch (e) {
      progress.add(-got);
      if (e instanceof MkimgError && e.details?.deadline) throw e;
      if (!isTransient(e) || attempt >= retries) {
        if (e instanceof MkimgError) throw e;
        throw new MkimgError(
          'registry',
          `registry ${client.registry}, repository "${repo}": download of blob ${d.digest} failed: ${(e as Error).message}`,
          { cause: e },
        );
      }
      await sleep(Math.min(opts.retryMaxMs ?? 8000, (opts.retryBaseMs ?? 250) * 2 ** attempt));
    } finally {
      clearTimeout(stallTimer);
      if (stream) limits.active.delete(stream);
    }
  }
}

/** Debian architecture whose OCI platform is `arch`/`variant` (the inverse of ociPlatform). */
function debArchOf(arch: string, variant?: string): string {
  for (const deb of ['amd64', 'arm64', 'armhf', 'i386', 'ppc64el', 's390x', 'riscv64']) {
    const p = ociPlatform(deb);
    if (p.architecture === arch && (p.variant ?? undefined) === (variant ?? undefined)) return deb;
  }
  return arch;
}

function splitName(name: string, defaultTag: string): { name: string; tag: string } {
  const slash = name.lastIndexOf('/');
  const colon = name.indexOf(':', slash + 1);
  return colon < 0 ? { name, tag: defaultTag } : { name: name.slice(0, colon), tag: name.slice(colon + 1) };
}

/**
 * Every layer of a known media type, and its uncompressed bytes hashing to
 * the config's diff_id (compressed layers are decompressed with the bounded
 * decoder: a bomb, a truncated or corrupt stream is refused). The blobs'
 * own digests were checked as they were downloaded.
 */
function checkLayers(
  layers: Descriptor[],
  diffIdsValue: unknown,
  pathOf: (d: Descriptor) => string,
  where: string,
): void {
  const fail = (
    msg: string,
    hint = 'the registry serves an image mkimg cannot vouch for; push it again or pull another reference',
  ): never => {
    throw new MkimgError('registry', `${where}: ${msg}`, { hint });
  };
  if (!Array.isArray(diffIdsValue) || diffIdsValue.length !== layers.length)
    fail(`the config's rootfs.diff_ids do not list the ${layers.length} layers of the manifest`);
  const diffIds = diffIdsValue as unknown[];
  const buf = Buffer.allocUnsafe(4 << 20);
  layers.forEach((l, i) => {
    const compression = layerCompression(l.mediaType);
    if (compression === undefined)
      return fail(
        `layer ${i} (${l.digest}) has media type "${l.mediaType}", which mkimg does not read`,
        'mkimg reads uncompressed, gzip and zstd tar layers',
      );
    if (compression === 'none') {
      if (diffIds[i] !== l.digest)
        fail(`config rootfs.diff_ids[${i}] is ${diffIds[i]}, but the uncompressed layer ${i} is ${l.digest}`);
      return;
    }
    const hash = createHash('sha256');
    const decoder = new LayerDecoder(
      compression,
      l.size,
      `${where}: layer ${i} (${l.digest}, ${compression})`,
      (c) => hash.update(c),
      'registry',
    );
    const fd = openSync(pathOf(l), 'r');
    try {
      for (let n; (n = readSync(fd, buf, 0, buf.length, null)) > 0; ) decoder.write(buf.subarray(0, n));
    } finally {
      closeSync(fd);
    }
    decoder.end();
    const got = `sha256:${hash.digest('hex')}`;
    if (got !== diffIds[i])
      fail(`layer ${i} (${l.digest}) decompresses to ${got}, but the config's rootfs.diff_ids[${i}] is ${diffIds[i]}`);
  });
}

/**
 * Pull `reference` into `output`. Returns null when the registry has no such
 * manifest (404) and `opts.allowMissing` is set; throws otherwise.
 */
export async function pullImage(
  reference: string,
  output: string,
  opts: PullOptions & { allowMissing?: boolean } = {},
): Promise<PullResult | null> {
  const ref = parseReference(reference);
  const client = new RegistryClient(ref.registry, ref.hostname, opts);
  const out = resolve(output);
  if (!existsSync(dirname(out))) {
    throw new MkimgError('usage', `cannot write ${out}: the folder ${dirname(out)} does not exist`, {
      hint: 'create it first, or choose another -o',
    });
  }
  const deadlineMs = opts.deadlineMs ?? msFromEnv('MKIMG_PULL_TIMEOUT', PULL_DEADLINE_MS);
  const stallMs = opts.stallMs ?? msFromEnv('MKIMG_PULL_STALL_TIMEOUT', PULL_STALL_MS);
  // Work folders of killed pulls (their pid is in the name) go first.
  collectStale(dirname(out), new RegExp(`^\\.${escapeName(basename(out))}\\.pull-(\\d+)-`));
  armSignalCleanup();
  const work = mkdtempSync(join(dirname(out), `.${basename(out)}.pull-${process.pid}-`));
  const unregister = removeOnSignal(work);
  let progress: Progress | undefined;
  const active = new Set<{ destroy(e?: Error): void }>();
  let deadlineTimer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    deadlineTimer = setTimeout(() => {
      const e = new MkimgError(
        'registry',
        `registry ${ref.registry}, repository "${ref.repository}": the pull did not finish within ${deadlineMs / 1000} s`,
        {
          hint: 'the registry is too slow or trickles data; raise MKIMG_PULL_TIMEOUT (seconds) if it is only slow',
          details: { deadline: true },
        },
      );
      for (const s of active) s.destroy(e);
      client.close();
      reject(e);
    }, deadlineMs);
  });
  expired.catch(() => {});
  try {
    return await Promise.race([
      expired,
      pullInto(ref, client, out, work, opts, { stallMs, active }, (p) => (progress = p)),
    ]);
  } finally {
    clearTimeout(deadlineTimer);
    progress?.finish();
    client.close();
    rmSync(work, { recursive: true, force: true });
    unregister();
  }
}

async function pullInto(
  ref: ImageReference,
  client: RegistryClient,
  out: string,
  work: string,
  opts: PullOptions & { allowMissing?: boolean },
  limits: { stallMs: number; active: Set<{ destroy(e?: Error): void }> },
  setProgress: (p: Progress) => void,
): Promise<PullResult | null> {
  let progress: Progress | undefined;
  {
    await client.ping(ref.repository);
    const top = await getManifest(client, ref.repository, ref.digest ?? ref.tag ?? 'latest', ref.digest);
    if (!top) {
      if (opts.allowMissing) return null;
      throw new MkimgError(
        'registry',
        `registry ${ref.registry}, repository "${ref.repository}": no manifest ${ref.digest ?? ref.tag ?? 'latest'} (HTTP 404)`,
        {
          hint: 'check the repository name and tag',
          details: { registry: ref.registry, repository: ref.repository, status: 404 },
        },
      );
    }
    if (isIndexType(top.mediaType) && !opts.platform)
      return pullIndexInto(ref, client, out, work, top, opts, limits, setProgress);
    const m = await imageOf(client, ref.repository, top, opts.platform ?? { os: 'linux', architecture: 'amd64' });
    const blobs = [...new Map([m.doc.config, ...m.doc.layers].map((d) => [d.digest, d])).values()];
    progress = new Progress(
      opts.progress ?? false,
      `pulling ${formatReference(ref)}`,
      blobs.reduce((a, d) => a + d.size, 0),
    );
    setProgress(progress);
    const pathOf = (d: Descriptor) => join(work, d.digest.slice(7));
    await pool(blobs, opts.concurrency ?? 3, (d) =>
      downloadBlob(client, ref.repository, d, pathOf(d), opts, progress!, limits),
    );

    const config = parseJson<{ created?: string; os?: string; architecture?: string; variant?: string }>(
      readFileSync(pathOf(m.doc.config)),
      `config ${m.doc.config.digest}`,
      ref.registry,
    );
    checkLayers(
      m.doc.layers,
      (config as { rootfs?: { diff_ids?: unknown } }).rootfs?.diff_ids,
      pathOf,
      `registry ${client.registry}, repository "${ref.repository}"`,
    );
    const created = config.created ? Date.parse(config.created) : NaN;
    const mtime = Number.isFinite(created) && created >= 0 ? Math.floor(created / 1000) : 0;
    const { name, tag } = splitName(opts.name ?? ref.repository, ref.tag ?? 'latest');
    const manifestDesc = { mediaType: m.mediaType, digest: m.digest, size: m.bytes.length };
    const index = imageIndex(manifestDesc, name, tag, debArchOf(config.architecture ?? 'amd64', config.variant));
    const layerDigests = new Set(m.doc.layers.map((l) => l.digest));
    const members: LayoutMember[] = [
      { name: 'blobs', type: 'dir' },
      { name: 'blobs/sha256', type: 'dir' },
      { name: `blobs/sha256/${m.digest.slice(7)}`, type: 'file', bytes: m.bytes },
      // Layers marked: the image tar's layer rule (SPEC §5) pads the first one, as mkimg build does.
      ...blobs.map((d) => ({
        name: `blobs/sha256/${d.digest.slice(7)}`,
        type: 'file' as const,
        hostPath: pathOf(d),
        size: d.size,
        layer: layerDigests.has(d.digest),
      })),
      { name: 'index.json', type: 'file', bytes: index.bytes },
      {
        name: 'manifest.json',
        type: 'file',
        bytes: dockerManifestJson(
          m.doc.config.digest,
          m.doc.layers.map((l) => l.digest),
          name,
          tag,
        ),
      },
      { name: 'oci-layout', type: 'file', bytes: OCI_LAYOUT },
    ];
    const sizeBytes = writeLayoutTar(members, mtime, out);
    return {
      reference: formatReference(ref),
      output: out,
      manifestDigest: m.digest,
      configDigest: m.doc.config.digest,
      name: `${name}:${tag}`,
      sizeBytes,
      layers: m.doc.layers.length,
    };
  }
}

/**
 * Pull a whole image index (no --platform): every manifest it lists and every
 * blob of those, each checked by digest; each platform's config must say the
 * platform the index gives it and its layers must decompress to its diff_ids
 * (entries for no platform, such as attestations, are kept with their blobs
 * checked by digest only). Written through the same index-tar writer as a
 * multi-platform build, so a pushed and pulled index is byte-identical.
 */
async function pullIndexInto(
  ref: ImageReference,
  client: RegistryClient,
  out: string,
  work: string,
  top: RawManifest,
  opts: PullOptions,
  limits: { stallMs: number; active: Set<{ destroy(e?: Error): void }> },
  setProgress: (p: Progress) => void,
): Promise<PullResult> {
  const repo = ref.repository;
  const where = `registry ${client.registry}, repository "${repo}"`;
  const entries = indexEntries(client, repo, top);
  const images: { entry: Descriptor; m: FetchedManifest }[] = [];
  for (const entry of entries) {
    const raw = await manifestByDigest(client, repo, entry.digest);
    if (isIndexType(raw.mediaType))
      throw new MkimgError('registry', `${where}: image index ${top.digest} lists another index (${entry.digest})`, {
        hint: 'mkimg reads one level of index; pull one platform with --platform',
      });
    images.push({ entry, m: asImageManifest(client, repo, raw) });
  }
  const blobs = [
    ...new Map(images.flatMap(({ m }) => [m.doc.config, ...m.doc.layers]).map((d) => [d.digest, d])).values(),
  ];
  const progress = new Progress(
    opts.progress ?? false,
    `pulling ${formatReference(ref)} (${images.length} platforms)`,
    blobs.reduce((a, d) => a + d.size, 0),
  );
  setProgress(progress);
  const pathOf = (d: Descriptor) => join(work, d.digest.slice(7));
  await pool(blobs, opts.concurrency ?? 3, (d) => downloadBlob(client, repo, d, pathOf(d), opts, progress, limits));

  type Config = {
    created?: string;
    os?: string;
    architecture?: string;
    variant?: string;
    rootfs?: { diff_ids?: unknown };
  };
  const platforms: (IndexTarPlatform & { config: Descriptor; doc: Config; entry: Descriptor })[] = [];
  for (const { entry, m } of images) {
    const doc = parseJson<Config>(readFileSync(pathOf(m.doc.config)), `config ${m.doc.config.digest}`, ref.registry);
    const p = entry.platform;
    const attestation = !p || p.os === 'unknown' || p.architecture === 'unknown';
    if (!attestation) {
      if (
        doc.os !== p.os ||
        doc.architecture !== p.architecture ||
        (p.variant !== undefined && doc.variant !== p.variant)
      )
        throw new MkimgError(
          'registry',
          `${where}: image index ${top.digest} lists ${entry.digest} as ${platformText(p)}, but its config says ${platformText(doc)}`,
          { hint: 'the index and its images disagree; push the image again' },
        );
      checkLayers(m.doc.layers, doc.rootfs?.diff_ids, pathOf, `${where}, ${platformText(p)}`);
    }
    const bytes = m.bytes;
    platforms.push({
      architecture: attestation ? 'unknown' : debArchOf(p.architecture, p.variant),
      manifest: entry,
      config: m.doc.config,
      layers: m.doc.layers,
      doc,
      entry,
      source: (d: Descriptor) =>
        d.digest === m.digest
          ? { name: `blobs/sha256/${d.digest.slice(7)}`, type: 'file', bytes }
          : { name: `blobs/sha256/${d.digest.slice(7)}`, type: 'file', hostPath: pathOf(d), size: d.size },
    });
  }
  const images0 = platforms.filter((p) => p.architecture !== 'unknown');
  const created = Date.parse(images0[0]?.doc.created ?? '');
  const mtime = Number.isFinite(created) && created >= 0 ? Math.floor(created / 1000) : 0;
  const { name, tag } = splitName(opts.name ?? ref.repository, ref.tag ?? 'latest');
  const members = indexTarMembers(
    { descriptor: { mediaType: top.mediaType, digest: top.digest, size: top.bytes.length }, bytes: top.bytes },
    images0.length ? [...images0, ...platforms.filter((p) => p.architecture === 'unknown')] : platforms,
    { name, tag },
    hostArchitecture(),
  );
  const sizeBytes = writeLayoutTar(members, mtime, out);
  return {
    reference: formatReference(ref),
    output: out,
    manifestDigest: top.digest,
    platforms: platforms.map((p) => ({
      platform: platformText(p.entry.platform),
      manifestDigest: p.entry.digest,
      configDigest: p.config.digest,
    })),
    name: `${name}:${tag}`,
    sizeBytes,
    layers: new Set(platforms.flatMap((p) => p.layers.map((l) => l.digest))).size,
  };
}
