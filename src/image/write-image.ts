/**
 * The one effectful step of the normalizer: plan → layer bytes → JSON
 * documents → one image tar, written to a temporary name beside the output
 * and renamed into place, so a failed or interrupted build leaves no image.
 */
import { closeSync, openSync, renameSync, rmSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { ImageConfig } from '../manifest/types.js';
import { BLOCK, encodeHeader, padding } from './tar-header.js';
import { HashingSink } from './sink.js';
import { comparePaths, planLayer, writeLayer, type LayerEntry } from './layer.js';
import { dockerManifestJson, imageConfig, imageIndex, imageManifest, MEDIA, OCI_LAYOUT, type Descriptor } from './oci.js';

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
}

/** A member of the outer tar: in-memory bytes or a host file's content. */
export type LayoutMember = { name: string; type: 'dir' } | { name: string; type: 'file'; bytes: Buffer } | { name: string; type: 'file'; hostPath: string; size: number };

export function writeImageTar(spec: ImageSpec, entries: Iterable<LayerEntry>, output: string): WrittenImage {
  const dir = dirname(output);
  const stem = `.${basename(output)}.${process.pid}.${Date.now().toString(36)}`;
  const layerTmp = join(dir, `${stem}.layer`);
  try {
    const plan = planLayer(entries);
    const layerFd = openSync(layerTmp, 'wx', 0o600);
    let layer: { sha256: string; size: number };
    try {
      const sink = new HashingSink(layerFd);
      writeLayer(plan, spec.sourceDateEpoch, sink);
      layer = sink.finish();
    } finally {
      closeSync(layerFd);
    }
    const layerDesc: Descriptor = { mediaType: MEDIA.layer, digest: `sha256:${layer.sha256}`, size: layer.size };
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
      { name: blobName(layerDesc), type: 'file', hostPath: layerTmp, size: layer.size },
      { name: 'index.json', type: 'file', bytes: index.bytes },
      { name: 'manifest.json', type: 'file', bytes: dockerManifestJson(config.descriptor.digest, [layerDesc.digest], spec.name, spec.tag) },
      { name: 'oci-layout', type: 'file', bytes: OCI_LAYOUT },
    ];
    const size = writeLayoutTar(members, spec.sourceDateEpoch, output);
    return { output, sizeBytes: size, imageId: config.descriptor.digest, manifestDigest: manifest.descriptor.digest, layers: [layerDesc] };
  } finally {
    rmSync(layerTmp, { force: true });
  }
}

function blobName(d: Descriptor): string {
  return `blobs/sha256/${d.digest.slice('sha256:'.length)}`;
}

/**
 * Write an OCI image layout as one tar: members deduplicated by name (two
 * blobs share a digest only if their bytes are equal), sorted with
 * comparePaths, fixed headers (root-owned, 0755 dirs / 0644 files, `mtime`),
 * then the end-of-archive blocks. Written to a temporary name beside `output`
 * and renamed into place. Returns the tar's size in bytes. Used by
 * writeImageTar and by pull, so a pulled image is byte-identical to the built one.
 */
export function writeLayoutTar(members: LayoutMember[], mtime: number, output: string): number {
  const tmp = join(dirname(output), `.${basename(output)}.${process.pid}.${Date.now().toString(36)}.tmp`);
  const unique = [...new Map(members.map((m) => [m.name, m])).values()].sort((a, b) => comparePaths(a.name, b.name));
  try {
    const fd = openSync(tmp, 'wx', 0o644);
    let size: number;
    try {
      // Nobody needs the digest of the outer tar: don't hash it.
      const sink = new HashingSink(fd, { hash: false });
      for (const m of unique) writeLayoutMember(sink, m, mtime);
      sink.zeros(2 * BLOCK);
      size = sink.finish().size;
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, output);
    return size;
  } finally {
    rmSync(tmp, { force: true });
  }
}

function writeLayoutMember(sink: HashingSink, m: LayoutMember, mtime: number): void {
  if (m.type === 'dir') {
    sink.write(encodeHeader({ name: m.name, type: 'dir', mode: 0o755, uid: 0, gid: 0, size: 0, mtime }));
    return;
  }
  const size = 'bytes' in m ? m.bytes.length : m.size;
  sink.write(encodeHeader({ name: m.name, type: 'file', mode: 0o644, uid: 0, gid: 0, size, mtime }));
  if ('bytes' in m) sink.write(m.bytes);
  else sink.copyFile(m.hostPath, m.size, m.name);
  sink.zeros(padding(size));
}
