/**
 * The one effectful step of the normalizer: plan → layer bytes → JSON
 * documents → one image tar, written to a temporary name beside the output
 * and renamed into place, so a failed or interrupted build leaves no image.
 *
 * The layer's bytes are written once, straight at their final offset in the
 * image tar: the layer rule of layout.ts makes that offset a function of the
 * blobs' sizes alone, which are known before the layer's digest is.
 */
import { closeSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { writeAtomicallyWith as writeAtomically } from '../util/atomic-write.js';
import type { ImageConfig } from '../manifest/types.js';
import { MkimgError } from '../util/errors.js';
import { BLOCK, padding } from './tar-header.js';
import { HashingSink } from './sink.js';
import {
  layerKey,
  layerSize,
  planLayer,
  recordedEntries,
  writeLayer,
  type LayerEntry,
  type PlannedEntry,
} from './layer.js';
import type { LayerHashThread } from './layer-hash.js';
import { planLayout, type LayoutMember, type LayoutPlan } from './layout.js';
import {
  blobPath,
  dockerManifestJson,
  imageConfig,
  imageIndex,
  imageManifest,
  layerMediaType,
  MEDIA,
  OCI_LAYOUT,
  type Compression,
  type Descriptor,
} from '../oci/model.js';
import { CompressionPool, WORKER_MIN_BYTES } from '../oci/compress-pool.js';
import type { LayerGroup } from './layering.js';
import type { CachedLayerBlob, LayerBlobCache } from './layer-cache.js';

export type { LayoutMember } from './layout.js';

export interface ImageSpec {
  name: string;
  tag: string;
  architecture: string;
  sourceDateEpoch: number;
  config: ImageConfig;
  manifestSha256: string;
}

/** A layer blob already written to a file: its descriptor, its diff_id, and where its bytes are. */
interface LayerBlob {
  descriptor: Descriptor;
  diffId: string;
  hostPath: string;
  /** What the layer holds (the history entry's comment). */
  name: string;
}

export interface WrittenImage {
  output: string;
  sizeBytes: number;
  /** sha256:… of the config: the image ID. */
  imageId: string;
  /** sha256:… of the OCI image manifest (what a registry reports). */
  manifestDigest: string;
  layers: Descriptor[];
  /** How many tar entries the layer holds (files, directories, links, implied parents): what mkimg inspect counts. */
  layerEntries: number;
  /** The uncompressed layers' digests (config rootfs.diff_ids). */
  diffIds: string[];
}

/** A digest of the right length, for planning before the layer's digest is known. */
const PLACEHOLDER_DIGEST = `sha256:${'0'.repeat(64)}`;

/** From this size on, a layer is hashed on a LayerHashThread when the caller started one. */
const THREADED_MIN_BYTES = 16 << 20;
/** Layers from this size on are hashed before they are written, to look their blob up in the cache first. */
const DIGEST_FIRST_MIN_BYTES = 1 << 20;

/** Content read from the staging root alone: nothing produced on the fly, nothing recorded for a pin. */
function isPlain(p: PlannedEntry): boolean {
  return !p.entry.content && !p.entry.record;
}

export interface WriteImageOptions {
  /** A started worker for the layer's digests (used for big layers; see layer-hash.ts). */
  hashThread?: LayerHashThread;
  /**
   * Runs once the layer is written, before the image is put in place: a
   * throw removes the temporary output. (Pins of inputs whose digests the
   * layer recorded are checked here.)
   */
  beforeCommit?: () => void;
}

export function writeImageTar(
  spec: ImageSpec,
  entries: Iterable<LayerEntry>,
  output: string,
  opts: WriteImageOptions = {},
): WrittenImage {
  const plan = planLayer(entries);
  const size = layerSize(plan, spec.sourceDateEpoch);
  // The layer rule makes the layer's data offset independent of the digests:
  // plan the image with a stand-in digest to learn it.
  const dataOffset = imageLayout(spec, [
    {
      descriptor: { mediaType: MEDIA.layer, digest: PLACEHOLDER_DIGEST, size },
      diffId: PLACEHOLDER_DIGEST,
      hostPath: '',
      name: 'all',
    },
  ]).plan.firstLayer!.dataOffset;
  return writeAtomically(output, (fd) => {
    const digester =
      opts.hashThread && size >= THREADED_MIN_BYTES
        ? opts.hashThread.digester(fd, dataOffset, recordedEntries(plan))
        : undefined;
    const sink = new HashingSink(fd, { position: dataOffset, digester });
    let layer: { sha256: string; size: number };
    try {
      layer = writeLayer(plan, spec.sourceDateEpoch, sink);
    } finally {
      sink.close();
    }
    if (layer.size !== size) throw new MkimgError('internal', `layer is ${layer.size} bytes, planned ${size}`);
    opts.beforeCommit?.();
    const layerDesc: Descriptor = { mediaType: MEDIA.layer, digest: `sha256:${layer.sha256}`, size: layer.size };
    const image = imageLayout(spec, [{ descriptor: layerDesc, diffId: layerDesc.digest, hostPath: '', name: 'all' }], {
      written: true,
    });
    if (image.plan.firstLayer?.dataOffset !== dataOffset) {
      throw new MkimgError(
        'internal',
        `image tar: the layer's data is planned at byte ${image.plan.firstLayer?.dataOffset}, but was written at ${dataOffset}`,
      );
    }
    writePlan(fd, image.plan);
    return {
      output,
      sizeBytes: image.plan.size,
      imageId: image.imageId,
      manifestDigest: image.manifestDigest,
      layers: [layerDesc],
      diffIds: [layerDesc.digest],
      layerEntries: plan.length,
    };
  });
}

/**
 * The JSON documents and the tar plan of an image whose layer blobs are in
 * files (`hostPath`), or, with `written`, already in the output file (the
 * single uncompressed layer written in place).
 */
function imageLayout(
  spec: ImageSpec,
  layers: LayerBlob[],
  opts: { written?: boolean } = {},
): { plan: LayoutPlan; imageId: string; manifestDigest: string } {
  const config = imageConfig({
    architecture: spec.architecture,
    sourceDateEpoch: spec.sourceDateEpoch,
    config: spec.config,
    manifestSha256: spec.manifestSha256,
    layerDigests: layers.map((l) => l.diffId),
    layerComments: layers.map((l) => l.name),
  });
  const descriptors = layers.map((l) => l.descriptor);
  const manifest = imageManifest(config.descriptor, descriptors);
  const index = imageIndex(manifest.descriptor, spec.name, spec.tag, spec.architecture);
  const members: LayoutMember[] = [
    { name: 'blobs', type: 'dir' },
    { name: 'blobs/sha256', type: 'dir' },
    { name: blobPath(config.descriptor.digest), type: 'file', bytes: config.bytes },
    { name: blobPath(manifest.descriptor.digest), type: 'file', bytes: manifest.bytes },
    ...layers.map(
      (l): LayoutMember =>
        opts.written
          ? { name: blobPath(l.descriptor.digest), type: 'file', written: true, size: l.descriptor.size, layer: true }
          : {
              name: blobPath(l.descriptor.digest),
              type: 'file',
              hostPath: l.hostPath,
              size: l.descriptor.size,
              layer: true,
            },
    ),
    { name: 'index.json', type: 'file', bytes: index.bytes },
    {
      name: 'manifest.json',
      type: 'file',
      bytes: dockerManifestJson(
        config.descriptor.digest,
        descriptors.map((d) => d.digest),
        spec.name,
        spec.tag,
      ),
    },
    { name: 'oci-layout', type: 'file', bytes: OCI_LAYOUT },
  ];
  return {
    plan: planLayout(members, spec.sourceDateEpoch),
    imageId: config.descriptor.digest,
    manifestDigest: manifest.descriptor.digest,
  };
}

export interface LayeredImageOptions extends WriteImageOptions {
  compression: Compression;
  /** A folder for the layer files (removed by the caller). */
  workDir: string;
  /** Compressed layers of earlier builds, by diff_id (layer-cache.ts). */
  layerCache?: LayerBlobCache;
  /**
   * The diff_id and size of layers earlier builds wrote, by layerKey: a big
   * layer found here is not read to be hashed. Kept with what its content came
   * from (a cached package root), never in the layer cache, whose entries
   * alone can only give images that fail their own digests.
   */
  knownLayers?: KnownLayers;
}

/** layerKey → the layer's diff_id (hex) and size. */
export interface KnownLayers {
  get(key: string): { sha256: string; size: number } | undefined;
  set(key: string, layer: { sha256: string; size: number }): void;
}

/**
 * Write an image of several layers (layering.ts decides the groups), each
 * compressed as asked. A single uncompressed layer is written in place
 * (writeImageTar). Otherwise each layer is written to its own file in
 * `workDir` (hashed on the way: its diff_id), the layers are compressed in
 * parallel (compress-pool.ts: worker threads, one piece of each layer in
 * memory at a time), and the image tar is assembled from those files. The
 * layers are written in order: a later layer's content (the SBOM) may need
 * the digests an earlier one recorded.
 */
export async function writeLayeredImage(
  spec: ImageSpec,
  groups: LayerGroup[],
  output: string,
  opts: LayeredImageOptions,
): Promise<WrittenImage> {
  if (groups.length === 1 && opts.compression === 'none') return writeImageTar(spec, groups[0]!.entries, output, opts);
  const raw: { path?: string; sha256: string; size: number; name: string }[] = [];
  // The digest thread (when there is one) takes the biggest layer.
  const plans = groups.map((g) => planLayer(g.entries));
  const sizes = plans.map((p) => layerSize(p, spec.sourceDateEpoch));
  const biggest = sizes.indexOf(Math.max(...sizes));
  const c = opts.compression;
  const reused: (CachedLayerBlob | undefined)[] = [];
  const digested: { sha256: string; size: number }[] = [];
  // Whether the cache holds any blob of this compression: without one, no lookup can hit.
  const cacheHoldsAny = c !== 'none' && opts.layerCache?.holdsAny(c) === true;
  // Big layers whose bytes are named by their headers and contents' digests (layerKey): the
  // cache may know their diff_id from an earlier build, without a byte of them read.
  const keys = plans.map((plan, i) =>
    c !== 'none' && opts.layerCache && opts.knownLayers && sizes[i]! >= DIGEST_FIRST_MIN_BYTES
      ? layerKey(plan, spec.sourceDateEpoch)
      : undefined,
  );
  for (const [i, plan] of plans.entries()) {
    // A big layer of plain content (packages) is first only hashed: when the cache has its blob
    // (an app edit leaves the package layer as it was), its tar is never written. A cache that
    // holds no blob of this compression (a first build) cannot have it: not hashed twice then.
    if (
      c !== 'none' &&
      opts.layerCache &&
      cacheHoldsAny &&
      sizes[i]! >= DIGEST_FIRST_MIN_BYTES &&
      plan.every(isPlain)
    ) {
      const known = keys[i] === undefined ? undefined : opts.knownLayers?.get(keys[i]!);
      if (known?.size === sizes[i]) {
        reused[i] = await opts.layerCache.lookup(known.sha256, c);
        if (reused[i]) {
          digested[i] = known;
          continue;
        }
      }
      const sink = HashingSink.digestOnly();
      try {
        digested[i] = writeLayer(plan, spec.sourceDateEpoch, sink);
        reused[i] = await opts.layerCache.lookup(digested[i]!.sha256, c);
      } finally {
        sink.close();
      }
      if (keys[i] !== undefined) opts.knownLayers?.set(keys[i]!, digested[i]!);
    }
  }
  // The compression threads boot while the layer tars are written. A layer no cached blob can
  // match is handed to them while it is written; any other once written, if the cache misses it.
  const toCompress = sizes.reduce((n, size, i) => (reused[i] ? n : n + size), 0);
  let written: { path: string; sha256: string; size: number }[];
  const pool = c === 'none' ? undefined : CompressionPool.start(toCompress < WORKER_MIN_BYTES ? { threads: 1 } : {});
  try {
    const blobs: Promise<{ path: string; sha256: string; size: number }>[] = [];
    for (const [i, plan] of plans.entries()) {
      const hit = reused[i];
      if (hit) {
        raw.push({ ...digested[i]!, name: groups[i]!.name });
        blobs.push(Promise.resolve(hit));
        continue;
      }
      const path = join(opts.workDir, `layer-${i}.tar`);
      const job =
        c === 'none'
          ? undefined
          : { input: path, size: sizes[i]!, output: `${path}.${c === 'gzip' ? 'gz' : 'zst'}`, compression: c };
      // Compressed as it is written when it will be compressed whatever its diff_id: no cached blob
      // can match it (a first build, verify's rebuild, or a big layer the cache missed just now).
      const stream = pool && job && (!cacheHoldsAny || digested[i]) ? pool.stream(job) : undefined;
      const fd = openSync(path, 'wx+', 0o644);
      let layer: { sha256: string; size: number };
      try {
        const digester =
          opts.hashThread && i === biggest && sizes[i]! >= THREADED_MIN_BYTES
            ? opts.hashThread.digester(fd, 0, recordedEntries(plan))
            : undefined;
        const sink = new HashingSink(fd, { digester, onWritten: stream && ((d) => stream.write(d)) });
        try {
          layer = writeLayer(plan, spec.sourceDateEpoch, sink);
        } finally {
          sink.close();
        }
        if (layer.size !== sizes[i])
          throw new MkimgError('internal', `layer ${i} is ${layer.size} bytes, planned ${sizes[i]}`);
      } finally {
        closeSync(fd);
      }
      raw.push({ path, ...layer, name: groups[i]!.name });
      if (keys[i] !== undefined && !digested[i]) opts.knownLayers?.set(keys[i]!, layer);
      if (!pool || !job) {
        blobs.push(Promise.resolve({ path, ...layer }));
        continue;
      }
      // A layer compressed by an earlier build (same diff_id) is reused.
      const cached = stream ? undefined : await opts.layerCache?.lookup(layer.sha256, job.compression);
      if (cached) {
        blobs.push(Promise.resolve(cached));
        continue;
      }
      const blob = (stream ? stream.end() : pool.compress(job)).then((r) => {
        opts.layerCache?.store(layer.sha256, job.compression, r);
        return r;
      });
      // Awaited below; a failure while an earlier layer is written (or the inputs are checked) is not unhandled.
      blob.catch(() => undefined);
      blobs.push(blob);
    }
    opts.beforeCommit?.();
    written = await Promise.all(blobs);
  } finally {
    await pool?.close();
  }
  const mediaType = layerMediaType(c);
  const layers: LayerBlob[] = raw.map((r, i) => ({
    descriptor: { mediaType, digest: `sha256:${written[i]!.sha256}`, size: written[i]!.size },
    diffId: `sha256:${r.sha256}`,
    hostPath: written[i]!.path,
    name: r.name,
  }));
  const image = imageLayout(spec, layers);
  return writeAtomically(output, (fd) => {
    writePlan(fd, image.plan);
    // What mkimg inspect counts: a directory repeated in several layers once.
    const layerEntries = new Set(plans.flatMap((p) => p.map((e) => e.name))).size;
    return {
      output,
      sizeBytes: image.plan.size,
      imageId: image.imageId,
      manifestDigest: image.manifestDigest,
      layers: layers.map((l) => l.descriptor),
      diffIds: layers.map((l) => l.diffId),
      layerEntries,
    };
  });
}

/**
 * Write an OCI image layout as one tar, laid out by planLayout (layout.ts:
 * sorted, fixed headers, the layer rule), to a temporary name beside `output`
 * renamed into place. Returns the tar's size in bytes. Used by pull (layer
 * blobs marked `layer: true`), so a pulled image is byte-identical to the
 * built one.
 */
export function writeLayoutTar(members: LayoutMember[], mtime: number, output: string): number {
  if (members.some((m) => 'written' in m))
    throw new MkimgError('internal', 'writeLayoutTar: a member marked as already written');
  const plan = planLayout(members, mtime);
  return writeAtomically(output, (fd) => {
    writePlan(fd, plan);
    return plan.size;
  });
}

/** Write everything the plan holds except the content of `written` members, which is already in place. */
function writePlan(fd: number, plan: LayoutPlan): void {
  // Nobody needs the digest of the outer tar: don't hash it.
  const sink = new HashingSink(fd, { hash: false });
  for (const p of plan.members) {
    if (sink.bytes !== p.offset)
      throw new MkimgError(
        'internal',
        `image tar: ${p.member.name} planned at byte ${p.offset}, reached at ${sink.bytes}`,
      );
    sink.write(p.header);
    const m = p.member;
    if (m.type === 'dir') continue;
    if ('bytes' in m) sink.write(m.bytes);
    else if ('hostPath' in m) sink.copyFile(m.hostPath, m.size, m.name, m.offset ? { offset: m.offset } : {});
    else sink.skip(m.size);
    sink.zeros(padding(p.size));
  }
  sink.zeros(2 * BLOCK);
  const { size } = sink.finish();
  if (size !== plan.size) throw new MkimgError('internal', `image tar is ${size} bytes, planned ${plan.size}`);
}
