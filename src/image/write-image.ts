/**
 * The one effectful step of the normalizer: plan → layer bytes → JSON
 * documents → one image tar, written to a temporary name beside the output
 * and renamed into place, so a failed or interrupted build leaves no image.
 *
 * The layer's bytes are written once, straight at their final offset in the
 * image tar: the layer rule of layout.ts makes that offset a function of the
 * blobs' sizes alone, which are known before the layer's digest is.
 */
import { writeAtomicallyWith as writeAtomically } from '../util/atomic-write.js';
import type { ImageConfig } from '../manifest/types.js';
import { MkimgError } from '../util/errors.js';
import { BLOCK, padding } from './tar-header.js';
import { HashingSink } from './sink.js';
import { layerSize, planLayer, recordedEntries, writeLayer, type LayerEntry } from './layer.js';
import type { LayerHashThread } from './layer-hash.js';
import { planLayout, type LayoutMember, type LayoutPlan } from './layout.js';
import { dockerManifestJson, imageConfig, imageIndex, imageManifest, MEDIA, OCI_LAYOUT, type Descriptor } from '../oci/model.js';

export type { LayoutMember } from './layout.js';

export interface ImageSpec {
  name: string;
  tag: string;
  architecture: string;
  sourceDateEpoch: number;
  config: ImageConfig;
  manifestSha256: string;
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
}

/** A digest of the right length, for planning before the layer's digest is known. */
const PLACEHOLDER_DIGEST = `sha256:${'0'.repeat(64)}`;

/** From this size on, a layer is hashed on a LayerHashThread when the caller started one. */
const THREADED_MIN_BYTES = 16 << 20;

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

export function writeImageTar(spec: ImageSpec, entries: Iterable<LayerEntry>, output: string, opts: WriteImageOptions = {}): WrittenImage {
  const plan = planLayer(entries);
  const size = layerSize(plan, spec.sourceDateEpoch);
  // The layer rule makes the layer's data offset independent of the digests:
  // plan the image with a stand-in digest to learn it.
  const dataOffset = imageLayout(spec, { mediaType: MEDIA.layer, digest: PLACEHOLDER_DIGEST, size }).plan.firstLayer!.dataOffset;
  return writeAtomically(output, (fd) => {
    const digester = opts.hashThread && size >= THREADED_MIN_BYTES ? opts.hashThread.digester(fd, dataOffset, recordedEntries(plan)) : undefined;
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
    const image = imageLayout(spec, layerDesc);
    if (image.plan.firstLayer?.dataOffset !== dataOffset) {
      throw new MkimgError('internal', `image tar: the layer's data is planned at byte ${image.plan.firstLayer?.dataOffset}, but was written at ${dataOffset}`);
    }
    writePlan(fd, image.plan);
    return { output, sizeBytes: image.plan.size, imageId: image.imageId, manifestDigest: image.manifestDigest, layers: [layerDesc], layerEntries: plan.length };
  });
}

/** The JSON documents and the tar plan of an image whose layer is already written (`written: true`). */
function imageLayout(spec: ImageSpec, layerDesc: Descriptor): { plan: LayoutPlan; imageId: string; manifestDigest: string } {
  const config = imageConfig({
    architecture: spec.architecture,
    sourceDateEpoch: spec.sourceDateEpoch,
    config: spec.config,
    manifestSha256: spec.manifestSha256,
    layerDigests: [layerDesc.digest],
  });
  const manifest = imageManifest(config.descriptor, [layerDesc]);
  const index = imageIndex(manifest.descriptor, spec.name, spec.tag, spec.architecture);
  const members: LayoutMember[] = [
    { name: 'blobs', type: 'dir' },
    { name: 'blobs/sha256', type: 'dir' },
    { name: blobName(config.descriptor), type: 'file', bytes: config.bytes },
    { name: blobName(manifest.descriptor), type: 'file', bytes: manifest.bytes },
    { name: blobName(layerDesc), type: 'file', written: true, size: layerDesc.size, layer: true },
    { name: 'index.json', type: 'file', bytes: index.bytes },
    { name: 'manifest.json', type: 'file', bytes: dockerManifestJson(config.descriptor.digest, [layerDesc.digest], spec.name, spec.tag) },
    { name: 'oci-layout', type: 'file', bytes: OCI_LAYOUT },
  ];
  return { plan: planLayout(members, spec.sourceDateEpoch), imageId: config.descriptor.digest, manifestDigest: manifest.descriptor.digest };
}

function blobName(d: Descriptor): string {
  return `blobs/sha256/${d.digest.slice('sha256:'.length)}`;
}

/**
 * Write an OCI image layout as one tar, laid out by planLayout (layout.ts:
 * sorted, fixed headers, the layer rule), to a temporary name beside `output`
 * renamed into place. Returns the tar's size in bytes. Used by pull (layer
 * blobs marked `layer: true`), so a pulled image is byte-identical to the
 * built one.
 */
export function writeLayoutTar(members: LayoutMember[], mtime: number, output: string): number {
  if (members.some((m) => 'written' in m)) throw new MkimgError('internal', 'writeLayoutTar: a member marked as already written');
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
    if (sink.bytes !== p.offset) throw new MkimgError('internal', `image tar: ${p.member.name} planned at byte ${p.offset}, reached at ${sink.bytes}`);
    sink.write(p.header);
    const m = p.member;
    if (m.type === 'dir') continue;
    if ('bytes' in m) sink.write(m.bytes);
    else if ('hostPath' in m) sink.copyFile(m.hostPath, m.size, m.name);
    else sink.skip(m.size);
    sink.zeros(padding(p.size));
  }
  sink.zeros(2 * BLOCK);
  const { size } = sink.finish();
  if (size !== plan.size) throw new MkimgError('internal', `image tar is ${size} bytes, planned ${plan.size}`);
}

