/**
 * Putting the SBOM in the staging root at the right moment: at once when every
 * kept file's digests are known, else reserved (its final size) and made when
 * the layer writer reaches it.
 */
import { readInPlace } from '../image/root-entries.js';
import { comparePaths } from '../image/layer.js';
import type { Manifest } from '../manifest/types.js';
import type { InputPins } from '../stage/files.js';
import type { StageEntry, StagingRoot } from '../stage/types.js';
import { MkimgError } from '../util/errors.js';
import { reserveSbom, SBOM_IMAGE_PATH, writeSbom } from './spdx.js';

/**
 * The SBOM, placed in the root; `bytes()` once the layer is written. files:
 * inputs indexed in place are read once, as the layer is written, and their
 * pins checked against exactly the bytes written, before the image is put in
 * place. The SBOM lists their digests: while some kept ones are not hashed,
 * it is reserved (its final size, placeholders for those digests) and made
 * when the layer writer reaches it (`content`); the inputs that sort after
 * it in the layer are read (and pinned) first.
 */
export async function stageSbom(
  root: StagingRoot,
  keep: Set<string>,
  manifest: Manifest,
  debShas: Map<string, string>,
  pins: InputPins,
): Promise<{ paths: string[]; content?: () => Buffer; bytes: () => Buffer }> {
  const unhashed = (e: StageEntry) => readInPlace(root, e) && !(e.sha256 && e.sha1);
  if (![...keep].some((p) => root.entries.has(p) && unhashed(root.entries.get(p)!))) {
    const written = writeSbom(root, keep, manifest, debShas);
    return { paths: written.paths, bytes: () => written.bytes };
  }
  await hashInputsAfter(root, keep, pins, SBOM_IMAGE_PATH);
  const reserved = reserveSbom(root, keep, manifest, debShas, unhashed);
  let made: Buffer | undefined;
  return {
    paths: reserved.paths,
    content: () => (made = reserved.bytes()),
    bytes: () => made ?? reserved.bytes(),
  };
}

/**
 * Read (and record for the pin check) the kept inputs indexed in place that
 * sort after `path` in the layer: the layer writer reaches them only after
 * `path`, whose content (the SBOM) needs their digests. They are then checked
 * against those digests as they are written, like inputs staged on disk.
 */
async function hashInputsAfter(root: StagingRoot, keep: Set<string>, pins: InputPins, path: string): Promise<void> {
  const late = [...keep]
    .map((p) => root.entries.get(p))
    .filter(
      (e): e is StageEntry => e !== undefined && readInPlace(root, e) && !e.sha256 && comparePaths(e.path, path) > 0,
    );
  if (late.length === 0) return;
  await pins.hash([...new Set(late.map((e) => e.hostPath!))]);
  for (const e of late) {
    const d = pins.digests(e.hostPath!)!;
    if (d.size !== e.size)
      throw new MkimgError('input', `files: ${e.hostPath} changed while it was being read`, {
        hint: 'build again once the file is no longer being written',
      });
    e.sha256 = d.sha256;
    e.sha1 = d.sha1;
  }
}
