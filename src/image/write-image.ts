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
type OuterMember = { name: string; type: 'dir' } | { name: string; type: 'file'; bytes: Buffer } | { name: string; type: 'file'; hostPath: string; size: number };

export function writeImageTar(spec: ImageSpec, entries: Iterable<LayerEntry>, output: string): WrittenImage {
  const dir = dirname(output);
  const stem = `.${basename(output)}.${process.pid}.${Date.now().toString(36)}`;
  const layerTmp = join(dir, `${stem}.layer`);
  const outTmp = join(dir, `${stem}.tmp`);
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
    const members: OuterMember[] = [
      { name: 'blobs', type: 'dir' },
      { name: 'blobs/sha256', type: 'dir' },
      { name: blobName(config.descriptor), type: 'file', bytes: config.bytes },
      { name: blobName(manifest.descriptor), type: 'file', bytes: manifest.bytes },
      { name: blobName(layerDesc), type: 'file', hostPath: layerTmp, size: layer.size },
      { name: 'index.json', type: 'file', bytes: index.bytes },
      { name: 'manifest.json', type: 'file', bytes: dockerManifestJson(config.descriptor.digest, [layerDesc.digest], spec.name, spec.tag) },
      { name: 'oci-layout', type: 'file', bytes: OCI_LAYOUT },
    ];
    // Two blobs may share a digest only if their bytes are equal; keep one.
    const unique = [...new Map(members.map((m) => [m.name, m])).values()].sort((a, b) => comparePaths(a.name, b.name));
    const outFd = openSync(outTmp, 'wx', 0o644);
    let size: number;
    try {
      const sink = new HashingSink(outFd);
      for (const m of unique) writeOuterMember(sink, m, spec.sourceDateEpoch);
      sink.zeros(2 * BLOCK);
      size = sink.finish().size;
    } finally {
      closeSync(outFd);
    }
    renameSync(outTmp, output);
    return { output, sizeBytes: size, imageId: config.descriptor.digest, manifestDigest: manifest.descriptor.digest, layers: [layerDesc] };
  } finally {
    rmSync(layerTmp, { force: true });
    rmSync(outTmp, { force: true });
  }
}

function blobName(d: Descriptor): string {
  return `blobs/sha256/${d.digest.slice('sha256:'.length)}`;
}

function writeOuterMember(sink: HashingSink, m: OuterMember, mtime: number): void {
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
