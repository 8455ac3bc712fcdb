/**
 * The layer writer's view of a staging root: the kept index entries as layer
 * entries, hardlinks carrying their group's content source, files: inputs
 * indexed in place checked against (or recorded into) their pins as the
 * layer is written.
 */
import type { InputPins } from '../stage/files.js';
import type { StageEntry, StagingRoot } from '../stage/types.js';
import { MkimgError } from '../util/errors.js';
import type { ContentDigests, LayerEntry } from './layer.js';

/**
 * A file whose content the layer reads from outside the staging root: a
 * files: input indexed in place. (Package files of an index-only root are
 * read from data tars in the staging directory, those of a root over a
 * cached package root from that root: not outside.)
 */
export function readInPlace(root: StagingRoot, e: StageEntry): boolean {
  if (e.type !== 'file' || e.contentOffset !== undefined || e.hostPath === undefined) return false;
  const host = e.hostPath;
  if (under(host, root.dir)) return false;
  for (const d of root.lowerDirs) if (under(host, d)) return false;
  return true;
}

/** `host` starts with `dir` + "/" (asked for every kept file: no string made). */
function under(host: string, dir: string): boolean {
  return host.length > dir.length && host.charCodeAt(dir.length) === 0x2f && host.startsWith(dir);
}

/**
 * Kept index entries → normalizer entries; hardlinks carry their group's
 * content source. Inputs read in place are checked against their digest when
 * it is known, and recorded (into `pins` and their index entry) when not.
 * `content` gives content made when the writer reaches the path (the SBOM).
 */
export function layerEntries(
  root: StagingRoot,
  keep: Set<string>,
  opts: { pins?: InputPins; content?: Map<string, () => Buffer> } = {},
): LayerEntry[] {
  const out: LayerEntry[] = [];
  for (const path of keep) {
    const e = root.entries.get(path);
    if (!e) continue; // created at run time or an implied directory: not content
    const entry = toLayerEntry(root, e, opts.pins);
    const content = opts.content?.get(path);
    out.push(content ? { ...entry, content } : entry);
  }
  return out;
}

function toLayerEntry(root: StagingRoot, e: StageEntry, pins: InputPins | undefined): LayerEntry {
  if (e.type === 'hardlink') {
    const target = e.linkTarget ? root.entries.get(e.linkTarget) : undefined;
    return {
      ...e,
      size: target?.size ?? e.size,
      hostPath: target?.hostPath ?? root.hostFile(target?.path ?? e.path),
      ...(target?.sha256 !== undefined ? { sha256: target.sha256 } : {}),
      ...(target?.contentOffset !== undefined ? { contentOffset: target.contentOffset } : {}),
      mode: target?.mode ?? e.mode,
      uid: target?.uid ?? e.uid,
      gid: target?.gid ?? e.gid,
    };
  }
  if (e.type === 'file') {
    const hostPath = e.hostPath ?? root.hostFile(e.path);
    if (!readInPlace(root, e)) return { ...e, hostPath };
    if (e.sha256 !== undefined) return { ...e, hostPath, verifySha256: e.sha256 };
    if (!pins) throw new MkimgError('internal', `${e.path}: an unhashed input without pins to record it`);
    const record = (d: ContentDigests) => {
      pins.record(hostPath, d);
      e.sha256 = d.sha256;
      e.sha1 = d.sha1;
    };
    return { ...e, hostPath, record };
  }
  return e;
}
