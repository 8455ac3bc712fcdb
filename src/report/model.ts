/**
 * What the HTML report shows, as plain typed data: built from what
 * `inspect` reads out of an image tar (and, when known, the minimization
 * report of the build), then embedded in the page as JSON. The page renders
 * only from this, so another image reader only needs a new builder here.
 * Short keys keep a 50,000-file image's page small.
 */
import type { InspectFile, InspectResult } from '../inspect/inspect.js';
import type { MinimizeReport } from '../minimize/report.js';
import type { Difference } from '../verify/diff.js';
import type { Hunk } from '../util/line-diff.js';

export const BINDING_LABEL = 'org.mkimg.manifest.sha256';

/** One entry of the image. */
export interface ReportFile {
  /** Absolute image path. */
  p: string;
  /** Type: f file, d dir, l symlink, h hardlink, o other. */
  t: 'f' | 'd' | 'l' | 'h' | 'o';
  /** Bytes (regular files; 0 otherwise). */
  s: number;
  /** Permission bits. */
  m: number;
  u: number;
  g: number;
  /** Owning package ("(generated)", "(files: input)") or "" when unknown. */
  k: string;
  /** Layer index. */
  l: number;
  /** Link target. */
  ln?: string;
}

export interface ReportLayer {
  digest: string;
  mediaType: string;
  /** Bytes as stored (compressed when the layer is). */
  size: number;
  /** Bytes of the tar when known (the stored size for an uncompressed layer). */
  uncompressedSize?: number;
  entries: number;
  /** Bytes in regular files. */
  bytes: number;
}

/** One entry of the unminimized closure (MinimizeReport.paths). */
export interface ClosureFile {
  p: string;
  t: 'f' | 'd' | 'l' | 'h';
  s: number;
  /** Owner as in ReportFile.k: package name, "(files: input)", "(generated)", or "" (layout). */
  k: string;
  /** Kept in the image. */
  kept: boolean;
  /** Why kept (or "excluded by …"). */
  why?: string;
}

export interface ImageSummary {
  file: string;
  name?: string;
  imageId: string;
  manifestDigest: string;
  platform: string;
  created?: string;
  config: InspectResult['config'];
  /** The signature binding label (org.mkimg.manifest.sha256), when set. */
  binding?: string;
  layers: ReportLayer[];
  fileCount: number;
  fileBytes: number;
  sbom?: {
    path: string;
    packageCount: number;
    fileCount: number;
    packages: { name: string; version: string; license?: string; purl?: string }[];
  };
}

export interface MinimizeSummary {
  before: { files: number; bytes: number };
  after: { files: number; bytes: number };
  checks: { name: string; args: string[]; exitCode: number; tracedPaths: number }[];
  rounds: number;
  keepGroups: string[];
  keepGlobs: string[];
  excluded: string[];
  listedDirectories: string[];
  closure: ClosureFile[];
}

export interface ImageReportData {
  kind: 'image';
  image: ImageSummary;
  files: ReportFile[];
  minimize?: MinimizeSummary;
}

export type FileStatus = 'added' | 'removed' | 'changed';

export interface DiffFile {
  p: string;
  st: FileStatus;
  /** The entry in the first / second image. */
  a?: ReportFile;
  b?: ReportFile;
  /** What changed: "content", "size", "mode", "owner", "type", "link", "package". */
  what: string[];
  /** Line diff of a changed text file; `textNote` says why there is none (binary, too large, too different). */
  hunks?: Hunk[];
  textNote?: string;
}

export interface DiffPackage {
  name: string;
  st: FileStatus | 'same';
  a?: string;
  b?: string;
}

export interface DiffReportData {
  kind: 'diff';
  a: ImageSummary;
  b: ImageSummary;
  identical: boolean;
  /** `mkimg diff`'s own findings (config keys, manifest, tar headers), one line each. */
  differences: string[];
  packages: DiffPackage[];
  files: DiffFile[];
  /** The second image's files, for its treemap. */
  bFiles: ReportFile[];
}

export type ReportData = ImageReportData | DiffReportData;

const TYPE: Record<InspectFile['type'], ReportFile['t']> = {
  file: 'f',
  dir: 'd',
  symlink: 'l',
  hardlink: 'h',
  other: 'o',
};

export function reportFile(f: InspectFile): ReportFile {
  return {
    p: f.path,
    t: TYPE[f.type],
    s: f.size,
    m: f.mode,
    u: f.uid,
    g: f.gid,
    k: f.package ?? '',
    l: f.layer ?? 0,
    ...(f.linkTarget !== undefined ? { ln: f.linkTarget } : {}),
  };
}

const COMPRESSED = /\+(gzip|zstd)$|\.gzip$|\.zstd$/;

export function imageSummary(r: InspectResult): ImageSummary {
  return {
    file: r.file,
    ...(r.name ? { name: r.name } : {}),
    imageId: r.imageId,
    manifestDigest: r.manifestDigest,
    platform: [r.platform.os, r.platform.architecture, r.platform.variant].filter(Boolean).join('/'),
    ...(r.created ? { created: r.created } : {}),
    config: r.config,
    ...(r.config.labels[BINDING_LABEL] ? { binding: r.config.labels[BINDING_LABEL] } : {}),
    layers: r.layers.map((l) => ({
      digest: l.digest,
      mediaType: l.mediaType,
      size: l.size,
      ...(COMPRESSED.test(l.mediaType ?? '') ? {} : { uncompressedSize: l.size }),
      entries: l.files,
      bytes: l.bytes,
    })),
    fileCount: r.fileCount,
    fileBytes: r.fileBytes,
    ...(r.sbom
      ? {
          sbom: {
            path: r.sbom.path,
            packageCount: r.sbom.packageCount,
            fileCount: r.sbom.fileCount,
            packages: r.sbom.packages.map((p) => ({
              name: p.name,
              version: p.version,
              ...(p.license ? { license: p.license } : {}),
              ...(p.purl ? { purl: p.purl } : {}),
            })),
          },
        }
      : {}),
  };
}

/** A staging origin named as inspect names the owner of an image file (from the SBOM), so before and after line up. */
function originLabel(origin: string): string {
  if (origin.startsWith('pkg:')) return origin.slice(4);
  if (origin.startsWith('file:')) return '(files: input)';
  if (origin.startsWith('generated:')) return '(generated)';
  return '';
}

export function minimizeSummary(m: MinimizeReport): MinimizeSummary {
  return {
    before: m.before,
    after: m.after,
    checks: m.checks,
    rounds: m.rounds,
    keepGroups: Object.keys(m.keepGroups),
    keepGlobs: Object.keys(m.keepGlobs),
    excluded: Object.keys(m.excluded),
    listedDirectories: m.listedDirectories,
    closure: (m.paths ?? []).map((p) => ({
      p: p.path,
      t: TYPE[p.type === 'dir' ? 'dir' : p.type] as ClosureFile['t'],
      s: p.size,
      k: originLabel(p.origin),
      kept: p.kept,
      ...(p.why ? { why: p.why } : {}),
    })),
  };
}

/** The image view's data: `r` must come from inspectImage(…, { files: true }). */
export function imageReportData(r: InspectResult, minimize?: MinimizeReport): ImageReportData {
  return {
    kind: 'image',
    image: imageSummary(r),
    files: (r.files ?? []).map(reportFile),
    ...(minimize ? { minimize: minimizeSummary(minimize) } : {}),
  };
}

/** Which fields of an entry differ between two images (content by sha256 when both have one). */
export function changedFields(a: InspectFile, b: InspectFile): string[] {
  const what: string[] = [];
  if (a.type !== b.type) what.push('type');
  if (a.size !== b.size) what.push('size');
  if (a.type === 'file' && b.type === 'file' && a.sha256 !== b.sha256) what.push('content');
  if (a.mode !== b.mode) what.push('mode');
  if (a.uid !== b.uid || a.gid !== b.gid) what.push('owner');
  if (a.linkTarget !== b.linkTarget) what.push('link');
  if ((a.package ?? '') !== (b.package ?? '')) what.push('package');
  return what;
}

function byName<T>(items: T[], key: (t: T) => string): Map<string, T> {
  return new Map(items.map((i) => [key(i), i]));
}

function sortedUnion(a: Iterable<string>, b: Iterable<string>): string[] {
  return [...new Set([...a, ...b])].sort((x, y) => (x < y ? -1 : x > y ? 1 : 0));
}

/** Files and packages of two images compared by path and name; `a`/`b` from inspectImage(…, { files: true, digests: true }). */
export function diffFiles(a: InspectResult, b: InspectResult): { files: DiffFile[]; packages: DiffPackage[] } {
  const fa = byName(a.files ?? [], (f) => f.path);
  const fb = byName(b.files ?? [], (f) => f.path);
  const files: DiffFile[] = [];
  for (const p of sortedUnion(fa.keys(), fb.keys())) {
    const x = fa.get(p);
    const y = fb.get(p);
    if (x && y) {
      const what = changedFields(x, y);
      if (what.length) files.push({ p, st: 'changed', a: reportFile(x), b: reportFile(y), what });
    } else if (x) files.push({ p, st: 'removed', a: reportFile(x), what: [] });
    else if (y) files.push({ p, st: 'added', b: reportFile(y), what: [] });
  }
  const pa = byName(a.sbom?.packages ?? [], (x) => x.name);
  const pb = byName(b.sbom?.packages ?? [], (x) => x.name);
  const packages: DiffPackage[] = sortedUnion(pa.keys(), pb.keys()).map((name) => {
    const x = pa.get(name)?.version;
    const y = pb.get(name)?.version;
    const st: DiffPackage['st'] =
      x === undefined ? 'added' : y === undefined ? 'removed' : x === y ? 'same' : 'changed';
    return { name, st, ...(x !== undefined ? { a: x } : {}), ...(y !== undefined ? { b: y } : {}) };
  });
  return { files, packages };
}

export function diffReportData(
  a: InspectResult,
  b: InspectResult,
  identical: boolean,
  differences: Difference[],
  files: DiffFile[],
  packages: DiffPackage[],
): DiffReportData {
  return {
    kind: 'diff',
    a: imageSummary(a),
    b: imageSummary(b),
    identical,
    differences: differences.map((d) => d.message),
    packages,
    files,
    bFiles: (b.files ?? []).map(reportFile),
  };
}
