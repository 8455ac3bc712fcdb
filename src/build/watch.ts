/**
 * `mkimg build --watch`: build, then build again whenever the manifest or a
 * file of one of its `files:` inputs changes, re-pinning those inputs first
 * (as `--repin` does), until a signal ends it. One process keeps its modules
 * loaded and compiled, so a rebuild after an edit costs the pipeline's own
 * work (the checks, the proof, the layers) and not a Node.js start, module
 * loading and a second process for `mkimg lock`. Every build is the same
 * `buildImage` call a fresh process makes: the same bytes.
 *
 * What is watched is worked out again after every build, from the manifest
 * as it then is: its folder (for the manifest file itself; editors save by
 * writing a new file and renaming it over the old one), each input file's
 * folder, and every folder of each input tree (inotify watches one folder,
 * not a tree). Changes to the image being written, the work folder and the
 * manifest's own rewrite by the re-pin are not changes to build again for.
 */
import { createHash } from 'node:crypto';
import { type Dirent, type FSWatcher, lstatSync, readdirSync, readFileSync, watch } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { MkimgError } from '../util/errors.js';
import type { BuildOptions, BuildResult } from './build.js';

/** What one build of the watch gave: its result, or what it threw. */
export type WatchedBuild = { ok: true; result: BuildResult; seconds: number } | { ok: false; error: unknown };

export interface WatchOptions {
  /** Quiet after a change before building (editors write a file in several steps). */
  settleMs?: number;
  /** Called after each build. */
  onBuild(b: WatchedBuild): void | Promise<void>;
  /** Called (once per message) when a folder cannot be watched. */
  onWarning(message: string): void;
  /** Called once the watchers are in place, with how many folders are watched. */
  onWatching?(folders: number): void;
}

/** Build, then build again on every change, until the process ends (a signal). */
export async function watchBuilds(build: BuildOptions, opts: WatchOptions): Promise<never> {
  const { buildImage } = await import('./build.js');
  const { lockManifest } = await import('../lock/lock.js');
  const refuse = (flag: string, why: string) => {
    throw new MkimgError('usage', `--watch cannot go with ${flag}: ${why}`, {
      hint: 'iterate with --watch; build a release with mkimg lock, mkimg sign and mkimg build',
    });
  };
  if (build.requireSignature) refuse('--require-signature', 'it re-pins, so the manifest changes under its signature');
  if (build.push) refuse('--push', 'every edit would be pushed; push the image you want with mkimg push');
  if (build.cacheRegistry) refuse('--cache-registry', 'every edit would be published to the shared cache');
  const settleMs = opts.settleMs ?? 100;
  const manifestPath = resolve(build.manifestPath);
  const ignored = ignoredPrefixes(build);
  const watchers = new Map<string, Watched>();
  let timer: NodeJS.Timeout | undefined;
  let building = false;
  // Whether something other than the manifest changed since the last build began; the manifest's bytes then.
  let inputsChanged = false;
  let manifestSha = '';
  const warned = new Set<string>();

  const changed = (isManifest: boolean) => {
    if (!isManifest) inputsChanged = true;
    if (building) return; // picked up when the build ends
    clearTimeout(timer);
    timer = setTimeout(() => void runBuild(), settleMs);
  };

  const runBuild = async () => {
    if (building) return;
    // The re-pin rewrites the manifest; that alone (the bytes the last build used) is no change.
    if (manifestSha !== '' && !inputsChanged && sha256Of(manifestPath) === manifestSha) return;
    building = true;
    inputsChanged = false;
    const started = performance.now();
    const startedAt = Date.now();
    // The manifest's bytes after the re-pin: a later difference is someone's edit, even when the build fails.
    let used = sha256Of(manifestPath);
    try {
      // The re-pin `--repin` makes, here, so that what it wrote is known apart from later edits.
      const repinned = (await lockManifest(manifestPath, { filesOnly: true })).filesChanged;
      used = sha256Of(manifestPath);
      const result = await buildImage({ ...build, repin: false });
      used = result.manifestSha256;
      const seconds = (performance.now() - started) / 1000;
      await opts.onBuild({ ok: true, result: { ...result, repinned }, seconds });
    } catch (error) {
      await opts.onBuild({ ok: false, error });
    }
    manifestSha = used;
    await rewatch(startedAt);
    building = false;
    // Changes made while it built (an input, or the manifest after the bytes the build read): build again.
    if (inputsChanged || sha256Of(manifestPath) !== manifestSha) changed(false);
  };

  // A folder's watcher stays open from one build to the next, so no event is lost between closing
  // one and opening another; what it counts is updated in place.
  const rewatch = async (since: number) => {
    const targets = await watchTargets(manifestPath);
    for (const [dir, w] of watchers) {
      if (targets.has(dir)) continue;
      w.watcher.close();
      watchers.delete(dir);
    }
    for (const [dir, names] of targets) {
      const ino = inodeOf(dir);
      const known = watchers.get(dir);
      if (known && known.ino === ino) {
        known.names = names;
        continue;
      }
      // Another folder at the same path (its parent's watcher missed that): watched anew.
      known?.watcher.close();
      watchers.delete(dir);
      try {
        const entry: Watched = {
          names,
          ino,
          watcher: watch(dir, { persistent: true }, (_e, n) => seen(dir, entry, n)),
        };
        entry.watcher.on('error', () => {}); // a folder removed: its parent's watcher sees that
        watchers.set(dir, entry);
        // A folder new since the build began: what was written in it before now is only seen here.
        if (since > 0 && changedSince(dir, entry.names, since - CLOCK_SLACK_MS)) inputsChanged = true;
      } catch (e) {
        const message = `cannot watch ${dir} (${(e as NodeJS.ErrnoException).code ?? String(e)})${
          (e as NodeJS.ErrnoException).code === 'ENOSPC' ? ': raise fs.inotify.max_user_watches' : ''
        }; its changes are not seen`;
        if (!warned.has(message)) opts.onWarning(message);
        warned.add(message);
      }
    }
    opts.onWatching?.(watchers.size);
  };

  const seen = (dir: string, entry: Watched, name: string | Buffer | null) => {
    const file = name === null ? undefined : join(dir, name.toString());
    if (file !== undefined && ignored.some((p) => file === p || file.startsWith(p))) return;
    // A watched folder renamed, removed or made again (its inode number may be reused): its
    // watcher goes, and the next build's rewatch watches what is there then.
    const child = file === undefined ? undefined : watchers.get(file);
    if (child && child !== entry) {
      child.watcher.close();
      watchers.delete(file!);
    }
    if (entry.names !== 'all' && (file === undefined || !entry.names.has(basename(file)))) return;
    changed(file === manifestPath);
  };

  // Watching from before the first build: an edit made while it runs is not missed.
  await rewatch(0);
  await runBuild();
  return new Promise<never>(() => {}); // ended by a signal
}

/** File times come from a coarser clock than Date.now(): a write just after `since` may carry an earlier time. */
const CLOCK_SLACK_MS = 50;

interface Watched {
  watcher: FSWatcher;
  names: Set<string> | 'all';
  /** The folder's inode number when the watch began. */
  ino: number;
}

function inodeOf(dir: string): number {
  try {
    return lstatSync(dir).ino;
  } catch {
    return -1;
  }
}

/** Whether an entry of `dir` that counts was changed (mtime or ctime) at or after `since` (ms). */
function changedSince(dir: string, names: Set<string> | 'all', since: number): boolean {
  try {
    for (const name of readdirSync(dir)) {
      if (names !== 'all' && !names.has(name)) continue;
      const st = lstatSync(join(dir, name));
      if (st.mtimeMs >= since || st.ctimeMs >= since) return true;
    }
  } catch {
    return true;
  }
  return false;
}

function sha256Of(path: string): string {
  try {
    return createHash('sha256').update(readFileSync(path)).digest('hex');
  } catch {
    return 'unreadable';
  }
}

/**
 * The image being written (and its temporaries beside it, `.NAME.PID…tmp`)
 * and the staging roots: what a build writes itself.
 */
function ignoredPrefixes(build: BuildOptions): string[] {
  const output = resolve(build.output);
  const out = [output, join(dirname(output), `.${basename(output)}.`)];
  // The staging roots (see buildImage), in the work folder or the system's temporary one.
  out.push(join(resolve(build.workDir ?? tmpdir()), 'mkimg-stage-'));
  return out;
}

/**
 * Folders to watch, each with the names in it that count ('all': any): the
 * manifest's folder for the manifest, a file input's folder for that file,
 * every folder of a directory input. Read from the manifest as it is now; a
 * manifest that cannot be read yet is watched alone (fixing it builds again).
 */
async function watchTargets(manifestPath: string): Promise<Map<string, Set<string> | 'all'>> {
  const targets = new Map<string, Set<string> | 'all'>();
  const name = (dir: string, file: string) => {
    const t = targets.get(dir);
    if (t === 'all') return;
    if (t) t.add(file);
    else targets.set(dir, new Set([file]));
  };
  name(dirname(manifestPath), basename(manifestPath));
  for (const src of await inputSources(manifestPath)) {
    let isDir: boolean;
    try {
      isDir = lstatSync(src).isDirectory();
    } catch {
      // Not there yet: its folder tells when it comes.
      name(dirname(src), basename(src));
      continue;
    }
    if (!isDir) {
      name(dirname(src), basename(src));
      continue;
    }
    // The tree's folders (links are not followed: an input's links are packed as links).
    const stack = [src];
    while (stack.length > 0) {
      const dir = stack.pop()!;
      targets.set(dir, 'all');
      let entries: Dirent[];
      try {
        entries = readdirSync(dir, { withFileTypes: true });
      } catch {
        continue;
      }
      for (const e of entries) if (e.isDirectory()) stack.push(join(dir, e.name));
    }
  }
  return targets;
}

/** The host paths of the manifest's `files:` srcs; none while the manifest cannot be read (then it alone is watched). */
async function inputSources(manifestPath: string): Promise<string[]> {
  try {
    const { loadManifestQuickly } = await import('../manifest/read.js');
    return (await loadManifestQuickly(manifestPath)).files.map((f) => f.src);
  } catch {
    return [];
  }
}
