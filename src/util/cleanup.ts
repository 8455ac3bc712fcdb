/**
 * Temporaries survive neither a signal nor a crash of the run that made them.
 *
 * - removeOnSignal(path): while registered, SIGINT, SIGTERM or SIGHUP removes
 *   the path (a staging root, a half-written image beside `-o`, a cache temp)
 *   before the process dies of that same signal (exit 128+n, as without mkimg's
 *   handler). The caller unregisters once the path is committed or removed.
 * - collectStale(dir, pattern): a run that was killed (SIGKILL, power loss)
 *   cannot clean up, so every temporary name carries its maker's pid, and the
 *   next run that uses the same folder removes those whose pid is no longer a
 *   live process. A live pid (even a reused one) keeps its temporaries.
 */
import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';

const registered = new Set<string>();
let installed = false;
const SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

function onSignal(sig: NodeJS.Signals): void {
  for (const p of registered) {
    try {
      rmSync(p, { recursive: true, force: true });
    } catch {
      // best effort: the next run collects what is left (collectStale)
    }
  }
  registered.clear();
  for (const s of SIGNALS) process.removeListener(s, onSignal);
  installed = false;
  process.kill(process.pid, sig);
}

/**
 * Take over SIGINT, SIGTERM and SIGHUP now (idempotent). Called before a
 * temporary is created, so a signal that arrives between its creation and
 * its registration finds the handler (which then removes it at the next
 * turn of the event loop) rather than Node's default, immediate exit.
 */
export function armSignalCleanup(): void {
  if (installed) return;
  installed = true;
  for (const s of SIGNALS) process.on(s, onSignal);
}

export function removeOnSignal(path: string): () => void {
  armSignalCleanup();
  registered.add(path);
  return () => {
    registered.delete(path);
  };
}

/** True when `pid` names no live process (ESRCH); a process of another user (EPERM) is alive. */
export function pidIsGone(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  if (pid === process.pid) return false;
  try {
    process.kill(pid, 0);
    return false;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

/**
 * Remove the entries of `dir` whose name matches `pattern` (its first group is
 * the maker's pid) and whose maker is gone. Returns the names removed. Never
 * throws: a folder that cannot be read or an entry that cannot be removed is
 * left as it is.
 */
export function collectStale(dir: string, pattern: RegExp): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const n of names) {
    const m = pattern.exec(n);
    if (!m || !pidIsGone(Number(m[1]))) continue;
    try {
      rmSync(join(dir, n), { recursive: true, force: true });
      removed.push(n);
    } catch {
      // left for a later run
    }
  }
  return removed;
}

/** Regex-escape a file name for use in a collectStale pattern. */
export function escapeName(name: string): string {
  return name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
