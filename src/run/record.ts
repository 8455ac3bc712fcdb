/**
 * The launch record: per image file (or layout directory), what a warm run
 * needs to start the sandbox without reading the image again: the root
 * folder in the cache and the image config. Keyed by the absolute path and
 * checked against the file's size, mtime, inode and device, so a rebuilt or
 * replaced image is read again. Stored at <cache>/run/images/<sha256(path)>.json.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { createHash, randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { RunConfig } from './image.js';

export interface LaunchRecord {
  v: 1;
  path: string;
  size: number;
  mtimeMs: number;
  ino: number;
  dev: number;
  platform: string;
  manifestDigest: string;
  root: string;
  config: RunConfig;
}

function recordFile(cacheDir: string, absPath: string): string {
  return join(cacheDir, 'run', 'images', createHash('sha256').update(absPath).digest('hex') + '.json');
}

/** The stat that decides whether a record is current: the file itself, or a layout's index.json. */
export function imageStat(absPath: string): { size: number; mtimeMs: number; ino: number; dev: number } | undefined {
  const st = statSync(absPath, { throwIfNoEntry: false });
  if (!st) return undefined;
  const s = st.isDirectory() ? statSync(join(absPath, 'index.json'), { throwIfNoEntry: false }) : st;
  return s ? { size: s.size, mtimeMs: s.mtimeMs, ino: s.ino, dev: s.dev } : undefined;
}

export function readRecord(cacheDir: string, absPath: string, platform: string): LaunchRecord | undefined {
  const st = imageStat(absPath);
  if (!st) return undefined;
  let r: LaunchRecord;
  try {
    r = JSON.parse(readFileSync(recordFile(cacheDir, absPath), 'utf8')) as LaunchRecord;
  } catch {
    return undefined;
  }
  if (
    r.v !== 1 ||
    r.path !== absPath ||
    r.size !== st.size ||
    r.mtimeMs !== st.mtimeMs ||
    r.ino !== st.ino ||
    r.dev !== st.dev ||
    r.platform !== platform
  )
    return undefined;
  return existsSync(r.root) ? r : undefined;
}

export function writeRecord(cacheDir: string, r: LaunchRecord): void {
  const f = recordFile(cacheDir, r.path);
  mkdirSync(join(cacheDir, 'run', 'images'), { recursive: true });
  const tmp = `${f}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  writeFileSync(tmp, JSON.stringify(r));
  renameSync(tmp, f);
}

/** FNV-1a 64 of the path, as tracer/mkimg-run.c computes it (the fast record's file name). */
function fnv1a64(s: string): string {
  let h = 0xcbf29ce484222325n;
  for (const b of Buffer.from(s, 'utf8')) h = ((h ^ BigInt(b)) * 0x100000001b3n) & 0xffffffffffffffffn;
  return h.toString(16).padStart(16, '0');
}

/**
 * The record tracer/mkimg-run reads (a warm run with no Node.js): the same
 * key, with the stat in the units C sees (mtime in ns), the tracer's options
 * for a run with no flags, and the image's entrypoint and cmd.
 */
export function writeFastRecord(
  cacheDir: string,
  absPath: string,
  tracerOptions: string[],
  entrypoint: string[],
  cmd: string[],
): void {
  const p = statSync(absPath, { bigint: true });
  const s = p.isDirectory() ? statSync(join(absPath, 'index.json'), { bigint: true }) : p;
  const fields = ['mkimg-run-record-1', absPath, String(s.size), String(s.mtimeNs), String(s.ino), String(s.dev)];
  for (const list of [tracerOptions, entrypoint, cmd]) fields.push(String(list.length), ...list);
  if (fields.some((f) => f.includes('\0'))) return;
  const dir = join(cacheDir, 'run', 'fast');
  mkdirSync(dir, { recursive: true });
  const f = join(dir, fnv1a64(absPath));
  const tmp = `${f}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  writeFileSync(tmp, fields.map((x) => x + '\0').join(''));
  renameSync(tmp, f);
}

/**
 * Images run from a registry reference: the record by manifest digest
 * (<cache>/run/manifests/<hex>.json), so a second run of the same manifest
 * asks the registry for the manifest only and downloads no blob.
 */
export function readManifestRecord(cacheDir: string, digest: string, platform: string): LaunchRecord | undefined {
  if (!/^sha256:[0-9a-f]{64}$/.test(digest)) return undefined;
  try {
    const r = JSON.parse(
      readFileSync(join(cacheDir, 'run', 'manifests', digest.slice(7) + '.json'), 'utf8'),
    ) as LaunchRecord;
    return r.v === 1 && r.manifestDigest === digest && r.platform === platform && existsSync(r.root) ? r : undefined;
  } catch {
    return undefined;
  }
}

export function writeManifestRecord(cacheDir: string, r: LaunchRecord): void {
  const dir = join(cacheDir, 'run', 'manifests');
  mkdirSync(dir, { recursive: true });
  const f = join(dir, r.manifestDigest.slice(7) + '.json');
  const tmp = `${f}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  writeFileSync(tmp, JSON.stringify(r));
  renameSync(tmp, f);
}
