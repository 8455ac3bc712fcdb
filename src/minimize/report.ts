/**
 * The minimization report (`mkimg build --report FILE`): JSON-serializable,
 * sorted, free of host paths and timings so two builds of one manifest give
 * the same report.
 */
import type { StageEntry, StagingRoot } from '../stage/types.js';
import type { KeepResult } from './keep.js';

export interface SizeCount {
  files: number; // non-directory entries: files, symlinks, hardlinks
  bytes: number; // sum of regular file sizes (a hardlinked file counted once)
}

export interface PackageSize {
  origin: string; // "pkg:<name>", "file:<src>", "generated:<what>", "layout"
  before: SizeCount;
  after: SizeCount;
}

export interface CheckReport {
  name: string;
  args: string[];
  exitCode: number;
  /** Distinct image paths the check touched in the full root. */
  tracedPaths: number;
}

export interface AddedReport {
  paths: number;
  bytes: number;
  /** Up to 50 of the paths, sorted. */
  sample: string[];
}

/** One entry of the staging root (the unminimized closure) and what minimization did with it. */
export interface PathReport {
  path: string;
  origin: string; // StageEntry.origin: "pkg:<name>", "file:<src>", "generated:<what>", "layout"
  type: 'file' | 'dir' | 'symlink' | 'hardlink';
  size: number; // regular files only; 0 otherwise
  kept: boolean;
  /** Why it is kept (KeepResult.why), or for a removed path "excluded by <glob>" when an exclude removed it. */
  why?: string;
}

export interface MinimizeReport {
  before: SizeCount;
  after: SizeCount;
  packages: PackageSize[];
  checks: CheckReport[];
  listedDirectories: string[];
  keepListed: boolean;
  listedAdded: AddedReport;
  staticAnalysis: AddedReport;
  keepGroups: Record<string, AddedReport>;
  keepPackages: Record<string, AddedReport>;
  keepGlobs: Record<string, AddedReport>;
  excluded: Record<string, AddedReport>;
  hardlinks: AddedReport;
  /** Proof rounds run in the minimized root (1 = it passed at once). */
  rounds: number;
  /** Paths the proof rounds found missing and added back. */
  addedByProof: string[];
  /** Every entry of the staging root, sorted by path: the before/after view of `--report-html`. */
  paths: PathReport[];
}

function count(entries: Iterable<StageEntry>): SizeCount {
  let files = 0;
  let bytes = 0;
  for (const e of entries) {
    if (e.type === 'dir') continue;
    files++;
    if (e.type === 'file') bytes += e.size;
  }
  return { files, bytes };
}

export function added(root: StagingRoot, paths: string[]): AddedReport {
  const es = paths.map((p) => root.entries.get(p)).filter((e): e is StageEntry => e !== undefined);
  return { paths: paths.length, bytes: count(es).bytes, sample: [...paths].sort().slice(0, 50) };
}

function pathReports(root: StagingRoot, keep: Set<string>, k: KeepResult): PathReport[] {
  const excludedBy = new Map<string, string>();
  for (const pat of Object.keys(k.excluded).sort())
    for (const p of k.excluded[pat]) if (!excludedBy.has(p)) excludedBy.set(p, `excluded by ${pat}`);
  const out: PathReport[] = [];
  for (const e of root.entries.values()) {
    const kept = keep.has(e.path);
    const why = kept ? k.why.get(e.path) : excludedBy.get(e.path);
    out.push({
      path: e.path,
      origin: e.origin,
      type: e.type,
      size: e.type === 'file' ? e.size : 0,
      kept,
      ...(why ? { why } : {}),
    });
  }
  // Code-unit order, as everywhere in mkimg, never the locale's.
  return out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

export function buildReport(
  root: StagingRoot,
  keep: Set<string>,
  k: KeepResult,
  extra: { checks: CheckReport[]; rounds: number; addedByProof: string[]; keepListed: boolean },
): MinimizeReport {
  const byOrigin = new Map<string, { before: StageEntry[]; after: StageEntry[] }>();
  for (const e of root.entries.values()) {
    const key = e.origin.startsWith('pkg:') ? e.origin : e.origin.split(':')[0];
    let g = byOrigin.get(key);
    if (!g) byOrigin.set(key, (g = { before: [], after: [] }));
    g.before.push(e);
    if (keep.has(e.path)) g.after.push(e);
  }
  const mapRec = (r: Record<string, string[]>): Record<string, AddedReport> =>
    Object.fromEntries(
      Object.keys(r)
        .sort()
        .map((name) => [name, added(root, r[name])]),
    );
  return {
    before: count(root.entries.values()),
    after: count([...keep].map((p) => root.entries.get(p)!).filter(Boolean)),
    packages: [...byOrigin.keys()].sort().map((origin) => ({
      origin,
      before: count(byOrigin.get(origin)!.before),
      after: count(byOrigin.get(origin)!.after),
    })),
    checks: extra.checks,
    listedDirectories: k.listedDirs,
    keepListed: extra.keepListed,
    listedAdded: added(root, k.listedAdded),
    staticAnalysis: added(root, k.staticAnalysis),
    keepGroups: mapRec(k.groups),
    keepPackages: mapRec(k.packages ?? {}),
    keepGlobs: mapRec(k.globs),
    excluded: mapRec(k.excluded),
    hardlinks: added(root, k.hardlinks),
    rounds: extra.rounds,
    addedByProof: [...extra.addedByProof].sort(),
    paths: pathReports(root, keep, k),
  };
}
