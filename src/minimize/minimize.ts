/**
 * Minimize a staging root and prove the result: run every check traced in the
 * full root, keep what the checks touched (plus static analysis, groups and
 * globs), then run every check again in a root holding only the kept paths.
 * Paths the minimized run needed that exist in the full root are added and the
 * proof runs again (bounded rounds). It succeeds only when every check's exit
 * code, stdout and stderr are the same in both roots.
 */
import { readFileSync } from 'node:fs';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { availableParallelism } from 'node:os';
import { mapPool } from '../util/pool.js';
import type { CheckSpec, ImageConfig, MinimizeSpec, TextExpectation } from '../manifest/types.js';
import type { StagingRoot } from '../stage/types.js';
import { MkimgError } from '../util/errors.js';
import { sha256Hex } from '../util/digest.js';
import { canonicalJson } from '../util/canonical-json.js';
import { runTraced, type RunTracedResult } from '../trace/run.js';
import { isListing, type TraceEvent } from '../trace/events.js';
import { computeKeepSet, KeepMemo, keepEventKey, type KeepResult } from './keep.js';
import { hiddenPaths } from './proof-root.js';
import { imageParent } from '../util/path-order.js';
import { buildReport, type CheckReport, type MinimizeReport } from './report.js';

export { computeKeepSet, type KeepResult } from './keep.js';
export type { MinimizeReport } from './report.js';

export interface ResolvedCheck {
  name: string;
  args: string[];
  env: Record<string, string>;
  stdin?: string;
  cwd?: string;
  uid?: number;
  gid?: number;
  expect: CheckSpec['expect'];
}

/** The checks to run: the manifest's, or config.entrypoint + config.cmd expecting exit 0. */
export function resolveChecks(root: StagingRoot, spec: MinimizeSpec, config: ImageConfig): ResolvedCheck[] {
  const specs: CheckSpec[] = spec.checks.length
    ? spec.checks
    : [
        {
          name: 'entrypoint',
          args: [...(config.entrypoint ?? []), ...(config.cmd ?? [])],
          env: {},
          expect: { exitCode: 0 },
        },
      ];
  return specs.map((c, i) => {
    const name = c.name ?? (spec.checks.length ? `check ${i + 1}` : 'entrypoint');
    if (c.args.length === 0) {
      throw new MkimgError(
        'manifest',
        `minimize: ${name} has no command: config.entrypoint and config.cmd are empty and minimize.checks gives none`,
        {
          hint: 'add minimize.checks with args, set config.entrypoint/cmd, or set minimize: false',
        },
      );
    }
    const user = c.user ?? config.user;
    const ids = user ? lookupUser(root, user, name) : {};
    return {
      name,
      args: c.args,
      env: { ...config.env, ...c.env },
      stdin: c.stdin,
      cwd: c.workdir ?? config.workdir,
      ...ids,
      expect: c.expect,
    };
  });
}

function readDb(root: StagingRoot, file: string): string[][] {
  try {
    return readFileSync(root.hostFile(root.resolve(file).path), 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => l.split(':'));
  } catch {
    return [];
  }
}

/** "name", "uid", "uid:gid", "name:group", looked up in the root's /etc/passwd and /etc/group. */
export function lookupUser(root: StagingRoot, user: string, check: string): { uid: number; gid: number } {
  const [u, g] = user.split(':');
  const passwd = readDb(root, '/etc/passwd');
  let uid: number;
  let gid: number | undefined;
  if (/^\d+$/.test(u)) {
    uid = Number(u);
    const row = passwd.find((r) => r[2] === u);
    if (row) gid = Number(row[3]);
  } else {
    const row = passwd.find((r) => r[0] === u);
    if (!row)
      throw new MkimgError('manifest', `${check}: user ${JSON.stringify(u)} is not in the image's /etc/passwd`, {
        hint: 'add it under accounts.users or use a numeric uid',
      });
    uid = Number(row[2]);
    gid = Number(row[3]);
  }
  if (g !== undefined) {
    if (/^\d+$/.test(g)) gid = Number(g);
    else {
      const row = readDb(root, '/etc/group').find((r) => r[0] === g);
      if (!row)
        throw new MkimgError('manifest', `${check}: group ${JSON.stringify(g)} is not in the image's /etc/group`, {
          hint: 'add it under accounts.groups or use a numeric gid',
        });
      gid = Number(row[2]);
    }
  }
  return { uid, gid: gid ?? uid };
}

function matches(exp: TextExpectation | undefined, actual: string): boolean {
  if (exp === undefined) return true;
  if (typeof exp === 'string') return exp === actual;
  return new RegExp(exp.regex, 'm').test(actual);
}

/** Where two outputs part: the byte offset and a little text around it from each, so the difference is visible. */
function firstDifference(full: Buffer, min: Buffer): string {
  let i = 0;
  while (i < full.length && i < min.length && full[i] === min[i]) i++;
  const from = Math.max(0, i - 40);
  const part = (b: Buffer) =>
    JSON.stringify(b.subarray(from, i + 80).toString('utf8')) + (b.length > i + 80 ? '…' : '');
  return `differs at byte ${i}: ${from > 0 ? '…' : ''}${part(full)} in the full root, ${from > 0 ? '…' : ''}${part(min)} minimized`;
}

function excerpt(b: Buffer | string, max = 400): string {
  const s = typeof b === 'string' ? b : b.toString('utf8');
  return JSON.stringify(s.length > max ? s.slice(0, max) + '…' : s);
}

function showExp(e: TextExpectation): string {
  return typeof e === 'string' ? JSON.stringify(e) : `/${e.regex}/`;
}

/** A check in the staging root (the overlay of its own files on the package root), less the paths in `hide` when given. */
async function runCheck(
  root: StagingRoot,
  c: ResolvedCheck,
  timeoutSeconds: number,
  hide?: string,
): Promise<RunTracedResult> {
  return runTraced({
    rootDir: root.dir,
    layers: root.lowerDirs,
    ...(hide !== undefined ? { hide } : {}),
    args: c.args,
    env: c.env,
    cwd: c.cwd,
    uid: c.uid,
    gid: c.gid,
    stdin: c.stdin,
    timeoutSeconds,
    trace: true,
  });
}

/** Throws MkimgError('check') when a check's expectation fails in the full root: the manifest's check is wrong. */
export function assertExpectation(c: ResolvedCheck, r: RunTracedResult): void {
  const out = r.stdout.toString('utf8');
  const err = r.stderr.toString('utf8');
  const problems: string[] = [];
  if (r.exitCode !== c.expect.exitCode)
    problems.push(`exit code: expected ${c.expect.exitCode}, got ${r.exitCode}${r.timedOut ? ' (timed out)' : ''}`);
  if (!matches(c.expect.stdout, out))
    problems.push(`stdout: expected ${showExp(c.expect.stdout!)}, got ${excerpt(out)}`);
  if (!matches(c.expect.stderr, err))
    problems.push(`stderr: expected ${showExp(c.expect.stderr!)}, got ${excerpt(err)}`);
  if (problems.length === 0) return;
  throw new MkimgError(
    'check',
    `minimize: ${c.name} (${c.args.join(' ')}) fails in the full, unminimized root, so the manifest's check is wrong: ${problems.join('; ')}` +
      `\n  exit code ${r.exitCode}; stdout ${excerpt(out)}; stderr ${excerpt(err + r.tracerMessages)}`,
    {
      hint: 'fix minimize.checks (args, env, expect) so the check passes on the full image, or set minimize: false',
      details: { check: c.name, exitCode: r.exitCode, stdout: out.slice(0, 2000), stderr: err.slice(0, 2000) },
    },
  );
}

function differences(full: RunTracedResult, min: RunTracedResult): string[] {
  const d: string[] = [];
  if (full.exitCode !== min.exitCode) d.push(`exit code ${full.exitCode} in the full root, ${min.exitCode} minimized`);
  if (!full.stdout.equals(min.stdout)) d.push(`stdout ${firstDifference(full.stdout, min.stdout)}`);
  if (!full.stderr.equals(min.stderr))
    d.push(`stderr ${firstDifference(full.stderr, Buffer.concat([min.stderr, Buffer.from(min.tracerMessages)]))}`);
  return d;
}

export interface MinimizeOptions {
  /** Where a proof round's list of hidden paths is written (removed afterwards). */
  workDir: string;
  /** Proof rounds before giving up (default 5). */
  maxRounds?: number;
  /** The dynamic loader's default folders for the root's architecture (see KeepOptions). */
  libDirs?: string[];
  /** Checks run at once (default: the machine's cores); the result is the same for any number. */
  concurrency?: number;
  /** A line per step (the build's progress). */
  onProgress?: (line: string) => void;
  /** What is known of the root's files before minimizing (see KeepMemo.seed); learnt into while minimizing. */
  memo?: KeepMemo;
  /**
   * Proof rounds that passed before, by proofKey: a first round whose key is
   * here is not run again (it ran on exactly these bytes with exactly these
   * checks and passed, adding no path); one that passes is added.
   */
  provenBefore?: { has(key: string): boolean; add(key: string): void };
  /** What names the sandbox the checks run in (the tracer binary's digest, the kernel): part of proofKey. */
  sandboxIdentity?: string;
  /**
   * A keep set an earlier build over this root ended with: the checks are
   * first run, traced, in the root minimized to it (see speculate). Only ever
   * a guess: it decides nothing unless this build's own events give exactly it.
   */
  guess?: ReadonlySet<string>;
}

/** Bumped when what decides a proof round's outcome changes. */
const PROOF_KEY_FORMAT = 1;

/**
 * A name for everything a proof round's outcome depends on: the minimized
 * root (every kept entry as the image has it, content by sha256, and what is
 * hidden), the checks, what they gave in the full root, the sandbox (the
 * tracer binary, the kernel) and the timeout. Undefined when a kept file's
 * digest is not known.
 */
export function proofKey(
  root: StagingRoot,
  keep: Set<string>,
  hidden: string,
  checks: ResolvedCheck[],
  full: RunTracedResult[],
  timeoutSeconds: number,
  sandbox: string,
): string | undefined {
  const kept: unknown[] = [];
  for (const p of [...keep].sort()) {
    const e = root.entries.get(p);
    if (!e) continue;
    if (e.type === 'file' && e.sha256 === undefined) return undefined;
    kept.push([
      p,
      e.type,
      e.mode,
      e.uid,
      e.gid,
      e.size,
      e.linkTarget ?? null,
      e.sha256 ?? null,
      e.capability?.toString('base64') ?? null,
    ]);
  }
  return sha256Hex(
    canonicalJson({
      format: PROOF_KEY_FORMAT,
      sandbox,
      timeoutSeconds,
      checks,
      full: full.map((r) => [r.exitCode, sha256Hex(r.stdout), sha256Hex(r.stderr)]),
      kept,
      hidden: sha256Hex(hidden),
    }),
  );
}

export async function minimizeAndProve(
  root: StagingRoot,
  spec: MinimizeSpec,
  config: ImageConfig,
  opts: MinimizeOptions,
): Promise<{ keep: Set<string>; report: MinimizeReport }> {
  const maxRounds = opts.maxRounds ?? 5;
  const timeout = spec.timeoutSeconds > 0 ? spec.timeoutSeconds : 60;
  const checks = resolveChecks(root, spec, config);
  const ldLibraryPath = checks.map((c) => c.env.LD_LIBRARY_PATH).filter((s): s is string => Boolean(s));

  // One root, unchanged while minimizing: resolutions and ELF headers are learnt once.
  const memo = opts.memo ?? new KeepMemo();
  if (opts.guess && spec.exclude.length === 0) {
    const done = await speculate(root, spec, config, opts, { checks, timeout, ldLibraryPath, memo, guess: opts.guess });
    if (done) return done;
  }
  const full: RunTracedResult[] = [];
  const events: TraceEvent[] = [];
  const eventSources: string[] = []; // which check produced events[i], for the report's "why kept"
  const checkReports: CheckReport[] = [];
  // Independent checks run side by side (as many as there are cores); their results are taken in order.
  const runs = await mapPool(checks, opts.concurrency ?? availableParallelism(), (c) => runCheck(root, c, timeout));
  for (const [ci, c] of checks.entries()) {
    const r = runs[ci]!;
    assertExpectation(c, r);
    full.push(r);
    recordRun(c, r, { events, eventSources, checkReports });
  }

  const progress = opts.onProgress ?? (() => {});
  progress('minimize: computing what the checks need');
  let k: KeepResult = await computeKeepSet(root, events, spec, config, {
    ldLibraryPath,
    libDirs: opts.libDirs,
    eventSources,
    memo,
  });
  const firstKeep = new Set(k.keep);
  // What the events k was computed from say to computeKeepSet (keepEventKey).
  const keyed = new Set<string>();
  const learn = (evs: TraceEvent[]): boolean => {
    let added = false;
    for (const ev of evs) {
      const key = keepEventKey(ev);
      if (key !== undefined && !keyed.has(key)) {
        keyed.add(key);
        added = true;
      }
    }
    return added;
  };
  learn(events);
  // What round 1 hides: part of its proof key, and its list.
  const firstHidden = hiddenPaths(root, k.keep).join('\0');
  const firstKey =
    opts.provenBefore && opts.sandboxIdentity
      ? proofKey(root, k.keep, firstHidden, checks, full, timeout, opts.sandboxIdentity)
      : undefined;
  let rounds = 0;
  for (;;) {
    rounds++;
    if (rounds === 1 && firstKey !== undefined && opts.provenBefore!.has(firstKey)) {
      progress(`minimize: proof round 1: ${k.keep.size} paths, proven before on the same bytes`);
      break;
    }
    // The minimized root: the same root with what is not kept hidden by the sandbox.
    const hide = join(opts.workDir, `mkimg-proof-${rounds}.hide`);
    let diffs: { check: string; diffs: string[] }[] = [];
    const proofEvents: TraceEvent[] = [];
    const proofSources: string[] = [];
    try {
      progress(`minimize: proof round ${rounds}: ${k.keep.size} paths`);
      await writeFile(hide, rounds === 1 ? firstHidden : hiddenPaths(root, k.keep).join('\0'));
      const proofs = await mapPool(checks, opts.concurrency ?? availableParallelism(), (c) =>
        runCheck(root, c, timeout, hide),
      );
      for (let i = 0; i < checks.length; i++) {
        const r = proofs[i]!;
        proofEvents.push(...r.events);
        for (let j = 0; j < r.events.length; j++) proofSources.push(`${checks[i].name} (proof round ${rounds})`);
        const d = differences(full[i], r);
        if (d.length) diffs.push({ check: checks[i].name, diffs: d });
      }
    } finally {
      await rm(hide, { force: true });
    }
    // What the minimized runs touched that the full root has and the keep set lacks.
    events.push(...proofEvents);
    eventSources.push(...proofSources);
    // Proof events that tell computeKeepSet nothing new (most often all of them: the minimized
    // runs touch what the full ones did) give the same keep set: it is not computed again.
    const next = learn(proofEvents)
      ? await computeKeepSet(root, events, spec, config, {
          ldLibraryPath,
          libDirs: opts.libDirs,
          eventSources,
          memo,
        })
      : k;
    const missing = [...next.keep].filter((p) => !k.keep.has(p)).sort();
    if (missing.length > 0 && rounds < maxRounds) {
      k = next;
      continue;
    }
    if (diffs.length === 0) {
      if (rounds === 1 && missing.length === 0 && firstKey !== undefined) opts.provenBefore!.add(firstKey);
      break;
    }
    const notes: string[] = [];
    if (missing.length) notes.push(`paths still missing: ${missing.slice(0, 20).join(', ')}`);
    if (spec.exclude.length) {
      const unexcluded = await computeKeepSet(root, events, { ...spec, exclude: [] }, config, {
        ldLibraryPath,
        libDirs: opts.libDirs,
      });
      const needed = [...unexcluded.keep].filter((p) => !next.keep.has(p)).sort();
      if (needed.length)
        notes.push(`paths the checks need that minimize.exclude removes: ${needed.slice(0, 20).join(', ')}`);
    }
    const listed = spec.keepListed ? [] : next.listedDirs;
    if (notes.length === 0 && listed.length === 0) {
      notes.push(
        'no missing path found in the full root: if the check prints something that changes from run to run (a time, a PID, an address), ' +
          'make that output deterministic, e.g. redirect the stream, since the full and minimized runs must print the same',
      );
    } else if (notes.length === 0) notes.push('no missing path found in the full root');
    if (listed.length)
      notes.push(
        `directories the checks list (their untraced entries are dropped unless minimize.keepListed is true): ${listed.slice(0, 20).join(', ')}`,
      );
    const missingNote = notes.join('; ');
    diffs = diffs.slice(0, 10);
    throw new MkimgError(
      'check',
      `minimize: the minimized root does not behave like the full one after ${rounds} round(s): ` +
        diffs.map((d) => `${d.check}: ${d.diffs.join('; ')}`).join(' | ') +
        `; ${missingNote}; paths added by proof rounds: ${
          [...k.keep]
            .filter((p) => !firstKeep.has(p))
            .slice(0, 20)
            .join(', ') || 'none'
        }`,
      {
        hint:
          (listed.length
            ? 'a check lists a directory: set minimize.keepListed: true to keep listed directories whole, or '
            : '') +
          'keep what the program loads in a way the tracer cannot see with minimize.keep globs or keepGroups, remove a minimize.exclude that drops a needed file, or set minimize: false',
        details: { checks: diffs, missing },
      },
    );
  }
  const addedByProof = [...k.keep].filter((p) => !firstKeep.has(p));
  const report = buildReport(root, k.keep, k, {
    checks: checkReports,
    rounds,
    addedByProof,
    keepListed: spec.keepListed,
  });
  return { keep: k.keep, report };
}

/**
 * One round where there are usually two. The checks run, traced, in the root
 * minimized to `guess` (what an earlier build kept). When their events touch
 * no path that root hides, list no folder with a hidden entry and name no
 * path the tracer could not place, they are the events the same checks give
 * in the full root: every file access they made returned what it returns
 * there (same bytes, kept), and nothing they looked for was missing only
 * here. So the keep set computed from them is the first round's. When it is
 * `guess` itself, this run is also that set's proof round, passed (the checks
 * gave what they expect; the full root would give the same, as its events
 * are the same): the result, keep set and report, is the two rounds' own.
 * Anything else (a hidden path touched, another keep set, a check failing,
 * `minimize.exclude`, which removes touched paths on purpose) returns
 * undefined and the rounds run as usual: the guess never changes a byte.
 */
async function speculate(
  root: StagingRoot,
  spec: MinimizeSpec,
  config: ImageConfig,
  opts: MinimizeOptions,
  o: { checks: ResolvedCheck[]; timeout: number; ldLibraryPath: string[]; memo: KeepMemo; guess: ReadonlySet<string> },
): Promise<{ keep: Set<string>; report: MinimizeReport } | undefined> {
  const hidden = hiddenPaths(root, o.guess);
  const hide = join(opts.workDir, 'mkimg-proof-guess.hide');
  let runs: RunTracedResult[];
  try {
    await writeFile(hide, hidden.join('\0'));
    runs = await mapPool(o.checks, opts.concurrency ?? availableParallelism(), (c) =>
      runCheck(root, c, o.timeout, hide),
    );
  } finally {
    await rm(hide, { force: true });
  }
  const events: TraceEvent[] = [];
  const eventSources: string[] = [];
  const checkReports: CheckReport[] = [];
  for (const [i, c] of o.checks.entries()) {
    const r = runs[i]!;
    if (r.timedOut || !passes(c, r)) return undefined;
    // A path (or a listed folder) the tracer could not place may be one the full root has.
    if (r.events.some((e) => (e.path !== null || isListing(e)) && !e.abs?.startsWith('/'))) return undefined;
    recordRun(c, r, { events, eventSources, checkReports });
  }
  const k = await computeKeepSet(root, events, spec, config, {
    ldLibraryPath: o.ldLibraryPath,
    libDirs: opts.libDirs,
    eventSources,
    memo: o.memo,
  });
  // Every touched path that exists in the full root is in the keep set: equal sets, nothing hidden was touched.
  if (k.keep.size !== o.guess.size || [...k.keep].some((p) => !o.guess.has(p))) return undefined;
  // A folder with a hidden entry lists fewer entries here than in the full root. (Its owner, mode,
  // access and modification times are the full root's; its size, link count, inode number and
  // change time are the sandbox's, in every proof round alike.)
  const listed = new Set(k.listedDirs);
  if (listed.size > 0 && hidden.some((p) => listed.has(imageParent(p)))) return undefined;
  opts.onProgress?.(
    `minimize: proof round 1: ${k.keep.size} paths, in one round with the checks' trace (the keep set of an earlier build)`,
  );
  const report = buildReport(root, k.keep, k, {
    checks: checkReports,
    rounds: 1,
    addedByProof: [],
    keepListed: spec.keepListed,
  });
  return { keep: k.keep, report };
}

/** A check's full-root (or first) run into what computeKeepSet and the report read: its events, whose they are, its line. */
function recordRun(
  c: ResolvedCheck,
  r: RunTracedResult,
  into: { events: TraceEvent[]; eventSources: string[]; checkReports: CheckReport[] },
): void {
  into.events.push(...r.events);
  for (let j = 0; j < r.events.length; j++) into.eventSources.push(c.name);
  into.checkReports.push({
    name: c.name,
    args: c.args,
    exitCode: r.exitCode,
    tracedPaths: new Set(r.events.map((e) => e.abs).filter(Boolean)).size,
  });
}

/** Whether a check gave what it expects (assertExpectation without the error). */
function passes(c: ResolvedCheck, r: RunTracedResult): boolean {
  try {
    assertExpectation(c, r);
    return true;
  } catch {
    return false;
  }
}
