/**
 * Push an image tar to a registry (OCI distribution spec):
 * GET /v2/ → for each blob: HEAD (skip if present) → mount from another
 * repository when told of one → monolithic (POST + PUT) or chunked
 * (POST + PATCH… + PUT) upload → the manifest last, its digest checked.
 * Blobs stream from their offsets in the tar; nothing is unpacked.
 */
import { createHash } from 'node:crypto';
import { MkimgError } from '../util/errors.js';
import { pool } from '../util/pool.js';
import { RegistryClient, isTransient, sleep, type RegistryOptions, type RegistryResponse } from './client.js';
import {
  blobMember,
  memberStream,
  openImageLayout,
  type Descriptor,
  type ImageLayout,
  type ImageTar,
  type TarMember,
} from '../oci/image-tar.js';
import { Progress } from './progress.js';
import { formatReference, parseReference, parseRepository, type ImageReference } from './reference.js';

export interface PushOptions extends RegistryOptions {
  /** Another repository on the same registry that may hold the blobs ("repo" or "host/repo"): tried with a cross-repository mount. */
  mountFrom?: string;
  /** Blobs of at least this many bytes are uploaded in chunks (default 16 MiB). */
  chunkThreshold?: number;
  /** Chunk size (default 64 MiB; raised to the registry's OCI-Chunk-Min-Length). */
  chunkSize?: number;
  /** Blobs uploaded at once (default 3). */
  concurrency?: number;
  /** Called once per blob with what happened to it. */
  onBlob?: (digest: string, outcome: 'uploaded' | 'skipped' | 'mounted') => void;
}

export interface PushResult {
  /** host/repo:tag (or @digest) pushed to. */
  reference: string;
  /** Of the image manifest, or of the image index for an image of several platforms. */
  manifestDigest: string;
  /** Of the image's config; absent for an image index (see platforms). */
  configDigest?: string;
  blobsUploaded: number;
  blobsSkipped: number;
  blobsMounted: number;
  /** Blob bytes sent over the wire (a restarted upload counts again). */
  bytesUploaded: number;
  /** For an image index: each platform's manifest (put by digest before the index). */
  platforms?: { platform: string; manifestDigest: string; configDigest: string }[];
}

export const DEFAULT_CHUNK_THRESHOLD = 16 << 20;
export const DEFAULT_CHUNK_SIZE = 64 << 20;

function withDigest(location: URL, digest: string): URL {
  const u = new URL(location);
  u.searchParams.append('digest', digest);
  return u;
}

function locationOf(res: RegistryResponse, what: string, client: RegistryClient, repository: string): URL {
  const loc = res.headers.location;
  if (!loc) {
    throw new MkimgError(
      'registry',
      `registry ${client.registry}, repository "${repository}": ${what} answered ${res.status} without a Location header`,
    );
  }
  // Relative Locations resolve against the URL of the request that returned them.
  return new URL(loc, res.url);
}

class BlobPusher {
  bytesSent = 0;
  constructor(
    private readonly client: RegistryClient,
    private readonly image: { path: string; members: Map<string, TarMember> },
    private readonly repository: string,
    private readonly mountFrom: string | undefined,
    private readonly opts: PushOptions,
    private readonly progress: Progress,
  ) {}

  private get scopes(): string[] {
    const s = [`repository:${this.repository}:pull,push`];
    if (this.mountFrom) s.push(`repository:${this.mountFrom}:pull`);
    return s;
  }

  /** Push one blob, restarting it from HEAD after a network error or 5xx (bounded). */
  async push(desc: Descriptor): Promise<'uploaded' | 'skipped' | 'mounted'> {
    const retries = this.opts.retries ?? 5;
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.pushOnce(desc);
      } catch (e) {
        if (!isTransient(e) || attempt >= retries) throw e;
        await sleep(Math.min(this.opts.retryMaxMs ?? 8000, (this.opts.retryBaseMs ?? 250) * 2 ** attempt));
      }
    }
  }

  private async pushOnce(desc: Descriptor): Promise<'uploaded' | 'skipped' | 'mounted'> {
    const c = this.client;
    const repo = this.repository;
    const short = desc.digest.slice(0, 19);
    const head = await c.request({
      method: 'HEAD',
      url: `/v2/${repo}/blobs/${desc.digest}`,
      scopes: this.scopes,
      retry: false,
      what: `HEAD blob ${desc.digest}`,
      repository: repo,
    });
    if (head.status === 200) {
      this.progress.add(desc.size);
      return 'skipped';
    }
    if (head.status !== 404) throw c.fail(head, `HEAD blob ${desc.digest}`, repo);

    let start: RegistryResponse;
    if (this.mountFrom && this.mountFrom !== repo) {
      const q = new URLSearchParams({ mount: desc.digest, from: this.mountFrom });
      start = await c.request({
        method: 'POST',
        url: `/v2/${repo}/blobs/uploads/?${q.toString()}`,
        scopes: this.scopes,
        retry: false,
        what: `mount of blob ${short}… from "${this.mountFrom}"`,
        repository: repo,
      });
      if (start.status === 201) {
        this.progress.add(desc.size);
        return 'mounted';
      }
    } else {
      start = await c.request({
        method: 'POST',
        url: `/v2/${repo}/blobs/uploads/`,
        scopes: this.scopes,
        retry: false,
        what: `start of upload of blob ${short}…`,
        repository: repo,
      });
    }
    if (start.status !== 202) throw c.fail(start, `start of upload of blob ${desc.digest}`, repo);
    let location = locationOf(start, 'upload start', c, repo);
    const minChunk = Number(start.headers['oci-chunk-min-length'] ?? 0) || 0;

    const member = blobMember(this.image, desc.digest)!;
    const open = (from: number, to: number) => () => {
      const s = memberStream(this.image.path, member, from, to);
      s.on('data', (chunk: Buffer) => {
        this.bytesSent += chunk.length;
        this.progress.add(chunk.length);
      });
      return s;
    };
    // The registry checks the digest of what it received; when it refuses the
    // blob, find out whether the tar itself is corrupt (nothing is hashed on the
    // happy path: the bytes stream straight from the tar to the socket).
    const refused = async (res: RegistryResponse, what: string): Promise<never> => {
      if (res.status === 400) {
        const hash = createHash('sha256');
        for await (const chunk of memberStream(this.image.path, member)) hash.update(chunk as Buffer);
        const got = `sha256:${hash.digest('hex')}`;
        if (got !== desc.digest) {
          throw new MkimgError('integrity', `image tar ${this.image.path}: blob ${desc.digest} has digest ${got}`, {
            hint: 'the image tar is corrupt; rebuild it',
          });
        }
      }
      throw c.fail(res, what, repo);
    };

    const threshold = this.opts.chunkThreshold ?? DEFAULT_CHUNK_THRESHOLD;
    let final: RegistryResponse;
    if (desc.size < threshold) {
      final = await c.request({
        method: 'PUT',
        url: withDigest(location, desc.digest),
        headers: { 'content-type': 'application/octet-stream' },
        body: { length: desc.size, open: open(0, desc.size) },
        scopes: this.scopes,
        retry: false,
        what: `upload of blob ${desc.digest}`,
        repository: repo,
      });
      if (final.status !== 201 && final.status !== 204) await refused(final, `upload of blob ${desc.digest}`);
    } else {
      const chunk = Math.max(this.opts.chunkSize ?? DEFAULT_CHUNK_SIZE, minChunk, 1);
      for (let off = 0; off < desc.size; off += chunk) {
        const end = Math.min(desc.size, off + chunk);
        const res = await c.request({
          method: 'PATCH',
          url: location,
          headers: { 'content-type': 'application/octet-stream', 'content-range': `${off}-${end - 1}` },
          body: { length: end - off, open: open(off, end) },
          scopes: this.scopes,
          retry: false,
          what: `upload of bytes ${off}-${end - 1} of blob ${desc.digest}`,
          repository: repo,
        });
        if (res.status !== 202 && res.status !== 204)
          throw c.fail(res, `upload of bytes ${off}-${end - 1} of blob ${desc.digest}`, repo);
        location = locationOf(res, 'chunk upload', c, repo);
      }
      final = await c.request({
        method: 'PUT',
        url: withDigest(location, desc.digest),
        scopes: this.scopes,
        retry: false,
        what: `completion of upload of blob ${desc.digest}`,
        repository: repo,
      });
      if (final.status !== 201 && final.status !== 204)
        await refused(final, `completion of upload of blob ${desc.digest}`);
    }
    const answered = final.headers['docker-content-digest'];
    if (typeof answered === 'string' && answered !== '' && answered !== desc.digest) {
      throw new MkimgError(
        'registry',
        `registry ${c.registry}, repository "${repo}": stored blob ${desc.digest} under digest ${answered}`,
      );
    }
    return 'uploaded';
  }
}

/** Push an already opened one-image tar to `ref`. */
export function pushOpenedImage(image: ImageTar, ref: ImageReference, opts: PushOptions = {}): Promise<PushResult> {
  return pushLayout({ kind: 'image', image }, ref, opts);
}

/** The manifests a push puts, in order: platform manifests by digest, then the top one (under the tag). */
interface ManifestPut {
  digest: string;
  mediaType: string;
  bytes: Buffer;
}

/**
 * Push an opened image tar: every blob of every platform (each once), then
 * each platform's manifest by digest, then the top manifest (the image's, or
 * the index) under the tag, so a reader never sees a tag naming something
 * the registry does not hold.
 */
export async function pushLayout(
  layout: ImageLayout,
  ref: ImageReference,
  opts: PushOptions = {},
): Promise<PushResult> {
  const image = layout.kind === 'image' ? layout.image : layout.index;
  const images = layout.kind === 'image' ? [layout.image] : layout.index.platforms.map((p) => p.image);
  const top: ManifestPut =
    layout.kind === 'image'
      ? {
          digest: layout.image.manifestDescriptor.digest,
          mediaType: layout.image.manifest.mediaType ?? layout.image.manifestDescriptor.mediaType,
          bytes: layout.image.manifestBytes,
        }
      : {
          digest: layout.index.indexDescriptor.digest,
          mediaType: layout.index.indexDescriptor.mediaType,
          bytes: layout.index.indexBytes,
        };
  const manifestDigest = top.digest;
  // With both TAG and @DIGEST the digest is checked and the manifest is put under the tag.
  const tag = ref.tag ?? (ref.digest ? undefined : image.tag);
  if (ref.digest && ref.digest !== manifestDigest) {
    throw new MkimgError(
      'usage',
      `cannot push ${image.path} as ${formatReference(ref)}: its ${layout.kind === 'index' ? 'index' : 'manifest'} digest is ${manifestDigest}`,
      {
        hint: `push by tag, or use the image ${layout.kind === 'index' ? 'index' : 'manifest'} digest`,
      },
    );
  }
  if (!ref.digest && !tag) {
    throw new MkimgError(
      'usage',
      `no tag to push ${image.path} to: the reference has none and the image's index.json has no org.opencontainers.image.ref.name`,
      {
        hint: `write the tag in the reference: ${formatReference(ref)}:TAG`,
      },
    );
  }
  const target: ImageReference = { ...ref, tag, digest: ref.digest };
  let mountFrom: string | undefined;
  if (opts.mountFrom) {
    const m = parseRepository(opts.mountFrom, ref.registry);
    if (m.registry === ref.registry && m.repository !== ref.repository) mountFrom = m.repository;
  }
  const client = new RegistryClient(ref.registry, ref.hostname, opts);
  const blobs: Descriptor[] = [];
  const seen = new Set<string>();
  for (const img of images) {
    for (const d of [img.manifest.config, ...img.manifest.layers]) {
      if (!seen.has(d.digest)) {
        seen.add(d.digest);
        blobs.push(d);
      }
    }
  }
  const total = blobs.reduce((a, d) => a + d.size, 0);
  const progress = new Progress(opts.progress ?? false, `pushing ${formatReference(target)}`, total);
  const putManifest = async (m: ManifestPut, reference: string): Promise<void> => {
    const what = `upload of manifest ${m.digest}`;
    const res = await client.request({
      method: 'PUT',
      url: `/v2/${ref.repository}/manifests/${reference}`,
      headers: { 'content-type': m.mediaType },
      body: m.bytes,
      scopes: [`repository:${ref.repository}:pull,push`],
      what,
      repository: ref.repository,
    });
    if (res.status !== 201 && res.status !== 200 && res.status !== 202) throw client.fail(res, what, ref.repository);
    const answered = res.headers['docker-content-digest'];
    if (typeof answered === 'string' && answered !== m.digest) {
      throw new MkimgError(
        'registry',
        `registry ${ref.registry}, repository "${ref.repository}": stored the manifest under digest ${answered}, but its bytes have digest ${m.digest}`,
        { hint: 'the registry rewrote the manifest; the pushed image would not verify' },
      );
    }
  };
  try {
    await client.ping(ref.repository);
    const pusher = new BlobPusher(client, image, ref.repository, mountFrom, opts, progress);
    const counts = { uploaded: 0, skipped: 0, mounted: 0 };
    // Largest first: the long uploads start early and the small ones fill in.
    const order = [...blobs].sort((a, b) => b.size - a.size);
    await pool(order, opts.concurrency ?? 3, async (d) => {
      const outcome = await pusher.push(d);
      counts[outcome]++;
      opts.onBlob?.(d.digest, outcome);
    });
    if (layout.kind === 'index') {
      for (const p of layout.index.platforms) {
        const d = p.image.manifestDescriptor;
        await putManifest({ digest: d.digest, mediaType: d.mediaType, bytes: p.image.manifestBytes }, d.digest);
      }
    }
    await putManifest(top, tag ?? ref.digest!);
    return {
      reference: formatReference(target),
      manifestDigest,
      ...(layout.kind === 'image' ? { configDigest: layout.image.manifest.config.digest } : {}),
      blobsUploaded: counts.uploaded,
      blobsSkipped: counts.skipped,
      blobsMounted: counts.mounted,
      bytesUploaded: pusher.bytesSent,
      ...(layout.kind === 'index'
        ? {
            platforms: layout.index.platforms.map((p) => ({
              platform: [p.platform.os, p.platform.architecture, p.platform.variant].filter(Boolean).join('/'),
              manifestDigest: p.image.manifestDescriptor.digest,
              configDigest: p.image.manifest.config.digest,
            })),
          }
        : {}),
    };
  } finally {
    progress.finish();
    client.close();
  }
}

/** Push the image tar at `tarPath` to `reference` (HOST[:PORT]/REPO[:TAG|@DIGEST]). */
export async function pushImage(tarPath: string, reference: string, opts: PushOptions = {}): Promise<PushResult> {
  const ref = parseReference(reference);
  return pushLayout(await openImageLayout(tarPath), ref, opts);
}
