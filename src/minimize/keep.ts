/**
 * The keep set: which image paths a minimized image holds, computed from the
 * traced path events, static ELF/#! analysis, keep-groups, globs and the
 * always-kept paths. Every path is resolved inside the staging root, never on
 * the host; every symlink hop and every directory passed through is kept.
 */
import { lstat, readFile } from 'node:fs/promises';
import { dirname, posix } from 'node:path';
import type { ImageConfig, MinimizeSpec } from '../manifest/types.js';
import { globRoot } from '../stage/glob.js';
import { MERGED_USR_LINKS, resolveInRoot, type Resolved } from '../stage/root.js';
import type { StagingRoot } from '../stage/types.js';
import { MkimgError } from '../util/errors.js';
import { followsLast, isExec, isListing, type TraceEvent } from '../trace/events.js';
import { readElf, readShebang, type ElfInfo } from './elf.js';
import { CERTIFICATE_PATHS, TIMEZONE_PATHS } from '../system/files.js';
import { imageParent } from '../util/path-order.js';

export const KEEP_GROUPS: Record<string, string[]> = {
  nss: [
    '/etc/nsswitch.conf',
    '/etc/passwd',
    '/etc/group',
    '/etc/shadow',
    '/etc/hosts',
    '/usr/lib/*/libnss_*',
    '/usr/lib/libnss_*',
    '/usr/lib64/libnss_*',
  ],
  certificates: CERTIFICATE_PATHS,
  timezones: TIMEZONE_PATHS,
  locales: ['/usr/lib/locale/**'],
  gconv: ['/usr/lib/*/gconv/**', '/usr/lib/gconv/**', '/usr/lib64/gconv/**'],
};

/** Kept in every minimized image when the staging root has them. */
export const ALWAYS_KEPT = ['/', ...MERGED_USR_LINKS.map(([l]) => l), '/etc/passwd', '/etc/group', '/tmp'];

/** The loader's default folders when the caller names none (an amd64 root). */
export const DEFAULT_LIB_DIRS = ['/lib/x86_64-linux-gnu', '/usr/lib/x86_64-linux-gnu', '/lib', '/usr/lib'];

export interface KeepResult {
  /** Image paths to keep (all present in the staging root's index), parents included. */
  keep: Set<string>;
  /** Paths kept because a traced syscall touched them (with hops and directories passed through). */
  traced: string[];
  /** Paths added by ELF PT_INTERP/DT_NEEDED and #! analysis beyond what was traced. */
  staticAnalysis: string[];
  /** Directories a check listed (getdents64), sorted. */
  listedDirs: string[];
  /** What listing added when keepListed is on. */
  listedAdded: string[];
  /** Per keep-group, the paths it added (not already kept). */
  groups: Record<string, string[]>;
  /** Per minimize.keepPackages name, the paths it added (the package's files and their ELF closure). */
  packages: Record<string, string[]>;
  /** Per keep glob, the paths it added (not already kept by traces, analysis or groups). */
  globs: Record<string, string[]>;
  /** Per exclude glob, the paths it removed. */
  excluded: Record<string, string[]>;
  /** Hardlink names added to keep hardlink groups whole. */
  hardlinks: string[];
  /**
   * Why each kept path is kept: the first rule that added it, e.g. "traced by check 1",
   * "ELF dependency of /usr/bin/python3.11", "keep-group nss", "keep glob /etc/**",
   * "hardlink of /usr/bin/perl", "directory of a kept path", "always kept".
   */
  why: Map<string, string>;
}

export interface KeepOptions {
  /** Extra image paths to keep (e.g. found missing by a proof round), resolved like traced paths. */
  extra?: Iterable<string>;
  /** LD_LIBRARY_PATH values seen in the checks' environments. */
  ldLibraryPath?: string[];
  /** The dynamic loader's default folders for the root's architecture (default: DEFAULT_LIB_DIRS). */
  libDirs?: string[];
  /** For each event (same index), the check that produced it; only names the "traced by" reason. */
  eventSources?: string[];
  /** What earlier calls on the same root learnt (path resolutions, ELF headers): the root does not change between them. */
  memo?: KeepMemo;
}

/** Resolutions and ELF/#! sniffs of one staging root, shared by the keep-set computations of one minimization. */
export class KeepMemo {
  readonly elf = new Map<string, Promise<ElfInfo | null>>();
  /** What readElf said of each file read (host path → info, null when not ELF). */
  private readonly read = new Map<string, ElfInfo | null>();
  resolver?: Resolver;
  readElf(hostPath: string): Promise<ElfInfo | null> {
    let r = this.elf.get(hostPath);
    if (!r) {
      r = readElf(hostPath);
      r.then((v) => this.read.set(hostPath, v)).catch(() => {});
      this.elf.set(hostPath, r);
    }
    return r;
  }

  /**
   * Take what an earlier build learnt of the files under `dir` (a cached
   * package root, unchanged since: its files' records were checked), as
   * `learnt` gave it. Anything not of that shape is ignored: learnt again.
   */
  seed(dir: string, facts: unknown): void {
    if (typeof facts !== 'object' || facts === null || Array.isArray(facts)) return;
    for (const [path, v] of Object.entries(facts)) {
      if (!path.startsWith('/') || (v !== null && !isElfInfo(v))) continue;
      this.elf.set(dir + path, Promise.resolve(v as ElfInfo | null));
    }
  }

  /** What was read of files under `dir` in this build (image path → info), or undefined when nothing new. */
  learnt(dir: string): Record<string, ElfInfo | null> | undefined {
    const out: Record<string, ElfInfo | null> = {};
    let any = false;
    for (const [host, v] of this.read) {
      if (!host.startsWith(dir + '/')) continue;
      out[host.slice(dir.length)] = v;
      any = true;
    }
    return any ? out : undefined;
  }
}

function isElfInfo(v: unknown): boolean {
  const o = v as Record<string, unknown>;
  const strings = (a: unknown) => Array.isArray(a) && a.every((x) => typeof x === 'string');
  return (
    typeof o === 'object' &&
    (o.class === 32 || o.class === 64) &&
    typeof o.machine === 'number' &&
    (o.interp === undefined || typeof o.interp === 'string') &&
    strings(o.needed) &&
    strings(o.rpath) &&
    strings(o.runpath)
  );
}

/** Resolutions in one staging root, each made once (the root does not change while minimizing). */
class Resolver {
  private cache = new Map<string, Resolved>();
  constructor(private root: StagingRoot) {}
  resolve(p: string, followLast: boolean): Resolved {
    const k = (followLast ? 'F' : 'N') + p;
    let r = this.cache.get(k);
    if (!r) {
      try {
        r = this.root.resolve(p, { followLast });
      } catch {
        // A symlink loop resolves to nothing: the kernel gave the process ELOOP.
        r = { path: p, hops: [], exists: false, clamped: false };
      }
      this.cache.set(k, r);
    }
    return r;
  }
}

/** posix.dirname, without its general case for the normalized absolute paths resolutions give. */
function parentOf(p: string): string {
  if (p.charCodeAt(p.length - 1) === 0x2f || p.charCodeAt(1) === 0x2f) return posix.dirname(p);
  return imageParent(p);
}

function ancestors(p: string): string[] {
  const out: string[] = [];
  let cur = p;
  while (cur !== '/') {
    cur = parentOf(cur);
    out.push(cur);
  }
  return out;
}

/**
 * The paths a resolution passed through: every hop, the result, and their
 * directories. `stop`: directories already known to be kept with all of
 * theirs, where the walk up from a path ends (what it would add there is in).
 */
function touched(r: Resolved, stop?: ReadonlySet<string>): string[] {
  const out = [...r.hops];
  if (r.exists) out.push(r.path);
  const up = (h: string) => {
    for (let cur = h; cur !== '/'; ) {
      cur = parentOf(cur);
      if (stop?.has(cur)) return;
      out.push(cur);
    }
  };
  for (const h of r.hops) up(h);
  up(r.path);
  return out;
}

async function ldConfDirs(root: StagingRoot): Promise<string[]> {
  const dirs: string[] = [];
  const seen = new Set<string>();
  const parse = async (file: string, depth: number): Promise<void> => {
    if (depth > 8 || seen.has(file)) return;
    seen.add(file);
    let text: string;
    try {
      text = await readFile(root.hostFile(root.resolve(file).path), 'utf8');
    } catch {
      return;
    }
    for (const raw of text.split('\n')) {
      const line = raw.replace(/#.*/, '').trim();
      if (!line) continue;
      const inc = /^include\s+(.+)$/.exec(line);
      if (inc) {
        for (const pat of inc[1].split(/\s+/)) {
          const abs = pat.startsWith('/') ? pat : posix.join(posix.dirname(file), pat);
          for (const f of globRoot(root, abs)) await parse(f, depth + 1);
        }
      } else if (line.startsWith('/')) dirs.push(line);
    }
  };
  await parse('/etc/ld.so.conf', 0);
  return dirs;
}

/**
 * All computeKeepSet reads of an event (its path, whether the last component
 * is followed, whether it executes or lists): events with the same key add
 * the same paths. Undefined for an event it skips (no absolute path). The
 * check that produced an event only names a reason ("traced by"), never what
 * is kept.
 */
export function keepEventKey(ev: TraceEvent): string | undefined {
  if (!ev.abs || !ev.abs.startsWith('/')) return undefined;
  return `${followsLast(ev) ? 'F' : 'N'}${isExec(ev) ? 'X' : '-'}${isListing(ev) ? 'L' : '-'}${ev.abs}`;
}

export async function computeKeepSet(
  root: StagingRoot,
  events: TraceEvent[],
  spec: MinimizeSpec,
  config: ImageConfig,
  opts: KeepOptions = {},
): Promise<KeepResult> {
  const memo = opts.memo ?? new KeepMemo();
  memo.resolver ??= new Resolver(root);
  const R = memo.resolver;
  const idx = root.entries;
  const keep = new Set<string>();
  const why = new Map<string, string>();
  const add = (paths: Iterable<string>, log: string[] | undefined, reason: string): void => {
    for (const p of paths) {
      if (!idx.has(p) || keep.has(p)) continue;
      keep.add(p);
      log?.push(p);
      why.set(p, reason);
    }
  };

  for (const p of ALWAYS_KEPT) if (idx.has(p)) add([p, ...ancestors(p)], undefined, 'always kept');

  // 1. traced paths
  const traced: string[] = [];
  const execs = new Set<string>();
  const listed = new Set<string>();
  // An event that says what an earlier one said (the same path, follow, exec and listing: most of
  // a check's, which stats the same paths over and over) changes nothing: the first one's reason stands.
  const said = new Set<string>();
  for (const [i, ev] of events.entries()) {
    const key = keepEventKey(ev);
    if (key === undefined || said.has(key)) continue;
    said.add(key);
    const r = R.resolve(ev.abs!, followsLast(ev));
    add(touched(r, keep), traced, `traced by ${opts.eventSources?.[i] ?? 'a check'}`);
    if (!r.exists) continue;
    if (isExec(ev)) execs.add(r.path);
    if (isListing(ev) && r.kind === 'dir' && idx.has(r.path)) listed.add(r.path);
  }
  for (const p of opts.extra ?? []) add(touched(R.resolve(p, false), keep), traced, 'traced by a check');

  // 2. static analysis: #! interpreters of executed files, ELF closure of every kept file
  const staticAnalysis: string[] = [];
  const ldPath = [...(opts.ldLibraryPath ?? []), ...(config.env.LD_LIBRARY_PATH ? [config.env.LD_LIBRARY_PATH] : [])]
    .flatMap((s) => s.split(':'))
    .filter((s) => s.startsWith('/'));
  const confDirs = await ldConfDirs(root);
  const elfDone = new Set<string>();
  const elfClosure = async (start: Iterable<string>, log: string[]): Promise<void> => {
    const queue = [...start];
    while (queue.length) {
      const p = queue.shift()!;
      if (elfDone.has(p)) continue;
      elfDone.add(p);
      const e = idx.get(p);
      if (!e || (e.type !== 'file' && e.type !== 'hardlink')) continue;
      const info = await memo.readElf(root.hostFile(p));
      if (!info) continue;
      if (info.interp) {
        const r = R.resolve(info.interp, true);
        add(touched(r, keep), log, `ELF interpreter of ${p}`);
        if (r.exists) queue.push(r.path);
      }
      const origin = dirname(p);
      const expand = (d: string): string => d.replace(/\$\{?ORIGIN\}?/g, origin);
      const dirs = [
        ...(info.runpath.length ? [] : info.rpath.map(expand)),
        ...ldPath,
        ...info.runpath.map(expand),
        ...confDirs,
        ...(opts.libDirs ?? DEFAULT_LIB_DIRS),
      ];
      for (const name of info.needed) {
        if (name.includes('/')) {
          const r = R.resolve(name.startsWith('/') ? name : posix.join(origin, name), true);
          add(touched(r, keep), log, `ELF dependency of ${p}`);
          if (r.exists) queue.push(r.path);
          continue;
        }
        for (const d of dirs) {
          const r = R.resolve(posix.join(d, name), true);
          if (!r.exists || r.kind !== 'file') continue;
          const dep = await memo.readElf(root.hostFile(r.path));
          if (!dep || dep.class !== info.class || dep.machine !== info.machine) continue;
          add(touched(r, keep), log, `ELF dependency of ${p}`);
          queue.push(r.path);
          break;
        }
      }
    }
  };
  const shebangs = async (start: Iterable<string>, log: string[]): Promise<void> => {
    const queue = [...start];
    const seen = new Set<string>();
    while (queue.length) {
      const p = queue.shift()!;
      if (seen.has(p) || seen.size > 64) continue;
      seen.add(p);
      const sb = await readShebang(root.hostFile(p));
      if (!sb) continue;
      const r = R.resolve(sb.interp, true);
      add(touched(r, keep), log, `#! interpreter of ${p}`);
      if (r.exists) queue.push(r.path);
      await elfClosure([r.path], log);
    }
  };
  // Sorted starts make the BFS, and so each path's "why", independent of event order.
  await shebangs([...execs].sort(), staticAnalysis);
  await elfClosure([...keep].sort(), staticAnalysis);

  // 3. listed directories
  const listedAdded: string[] = [];
  if (spec.keepListed && listed.size > 0) {
    const children = new Map<string, string[]>();
    for (const p of idx.keys()) {
      if (p === '/') continue;
      const parent = posix.dirname(p);
      if (!listed.has(parent)) continue;
      const l = children.get(parent) ?? [];
      l.push(p);
      children.set(parent, l);
    }
    for (const d of [...listed].sort()) {
      for (const p of (children.get(d) ?? []).sort()) {
        add([p], listedAdded, `entry of listed directory ${d} (keepListed)`);
        add(touched(R.resolve(p, true), keep), listedAdded, `entry of listed directory ${d} (keepListed)`);
      }
    }
  }

  // 4. keep-groups and keep globs (with the ELF closure of what they add)
  const groups: Record<string, string[]> = {};
  for (const g of spec.keepGroups) {
    const pats = KEEP_GROUPS[g];
    if (!pats) {
      throw new MkimgError('manifest', `minimize.keepGroups: unknown group ${JSON.stringify(g)}`, {
        hint: `known groups: ${Object.keys(KEEP_GROUPS).join(', ')}`,
      });
    }
    const log: string[] = [];
    for (const pat of pats)
      for (const m of globRoot(root, pat)) add(touched(R.resolve(m, true), keep).concat(m), log, `keep-group ${g}`);
    await elfClosure([...log].sort(), log);
    groups[g] = log.sort();
  }
  // keepPackages: every path a package created (a link together with what it
  // points at), for code a runtime loads by name where no check went.
  const packages: Record<string, string[]> = {};
  (spec.keepPackages ?? []).forEach((name, i) => {
    if (!root.packages.some((p) => p.name === name)) {
      throw new MkimgError(
        'manifest',
        `minimize.keepPackages[${i}]: package ${JSON.stringify(name)} is not in the image's package closure`,
        {
          hint: `add it to packages: (and run mkimg lock), or remove it from minimize.keepPackages; the closure has: ${root.packages
            .map((p) => p.name)
            .sort()
            .join(', ')}`,
        },
      );
    }
  });
  for (const name of spec.keepPackages ?? []) {
    const log: string[] = [];
    for (const pkg of root.packages.filter((p) => p.name === name)) {
      for (const p of pkg.paths) {
        add(touched(R.resolve(p, false), keep), log, `keepPackages: ${name}`);
        add(touched(R.resolve(p, true), keep), log, `keepPackages: ${name}`);
      }
    }
    await elfClosure([...log], log);
    packages[name] = log.sort();
  }
  const globs: Record<string, string[]> = {};
  for (const pat of spec.keep) {
    const log: string[] = [];
    for (const m of globRoot(root, pat)) add(touched(R.resolve(m, true), keep).concat(m), log, `keep glob ${pat}`);
    await elfClosure([...log].sort(), log);
    globs[pat] = log.sort();
  }

  // 5. excludes (never the always-kept paths; directories stay while something below is kept)
  const excluded: Record<string, string[]> = {};
  const always = new Set(ALWAYS_KEPT);
  for (const pat of spec.exclude) {
    const log: string[] = [];
    for (const m of globRoot(root, pat)) {
      const e = idx.get(m);
      if (!e || always.has(m) || !keep.has(m)) continue;
      keep.delete(m);
      why.delete(m);
      log.push(m);
    }
    excluded[pat] = log.sort();
  }

  // 6. hardlink groups stay whole
  const hardlinks: string[] = [];
  const members = new Map<string, string[]>();
  for (const e of idx.values()) {
    if (e.type !== 'hardlink' || !e.linkTarget) continue;
    const l = members.get(e.linkTarget) ?? [];
    l.push(e.path);
    members.set(e.linkTarget, l);
  }
  for (const [primary, names] of members) {
    const group = [primary, ...names];
    const kept = group.find((p) => keep.has(p));
    if (kept)
      add(
        group.flatMap((p) => [p, ...ancestors(p)]),
        hardlinks,
        `hardlink of ${kept}`,
      );
  }

  // 7. directories of everything kept
  for (const p of [...keep]) add(ancestors(p), undefined, 'directory of a kept path');

  return {
    keep,
    traced: traced.sort(),
    staticAnalysis: staticAnalysis.sort(),
    listedDirs: [...listed].sort(),
    listedAdded: listedAdded.sort(),
    groups,
    packages,
    globs,
    excluded,
    hardlinks: hardlinks.sort(),
    why,
  };
}

/** The image paths a set of events touched that exist in rootDir (hops, directories, targets), sorted. */
export async function tracedPaths(rootDir: string, events: TraceEvent[]): Promise<string[]> {
  const out = new Set<string>();
  const cache = new Map<string, Resolved | null>();
  for (const ev of events) {
    if (!ev.abs || !ev.abs.startsWith('/')) continue;
    const key = (followsLast(ev) ? 'F' : 'N') + ev.abs;
    let r = cache.get(key);
    if (r === undefined) {
      r = await resolveInRoot(rootDir, ev.abs, { followLast: followsLast(ev) }).catch(() => null);
      cache.set(key, r);
    }
    if (!r) continue;
    for (const p of touched(r)) out.add(p);
  }
  const exists = async (p: string): Promise<boolean> =>
    lstat(rootDir + p).then(
      () => true,
      () => false,
    );
  const kept: string[] = [];
  for (const p of [...out].sort()) if (p === '/' || (await exists(p))) kept.push(p);
  return kept;
}
