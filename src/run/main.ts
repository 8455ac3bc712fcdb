/**
 * `mkimg run`: its own entry point (bin/mkimg.js loads it for `run` without
 * the rest of the CLI), so a warm run is: parse, stat the image, read the
 * launch record, start the sandbox. A cold run opens the image, unpacks its
 * layers into the cache (once, by diff_id), assembles the root and writes
 * the record.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { homedir } from 'node:os';
import { MkimgError } from '../util/errors.js';
import { defaultRunFlags, parseRunArgs, RUN_HELP, type RunFlags } from './args.js';
import { readRecord, writeFastRecord, type LaunchRecord } from './record.js';
import { launch, launchArgs, type LaunchSpec } from './launch.js';
import { resolveUser } from './user.js';
import type { RunConfig } from './image.js';

const DEFAULT_PATH = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

function cacheDirOf(flags: RunFlags): string {
  if (flags.cacheDir) return resolve(flags.cacheDir);
  if (process.env.XDG_CACHE_HOME) return join(process.env.XDG_CACHE_HOME, 'mkimg');
  return join(homedir(), '.cache', 'mkimg');
}

function hostPlatformOf(): string {
  const arch =
    (
      { x64: 'amd64', arm64: 'arm64', ia32: '386', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64' } as Record<
        string,
        string
      >
    )[process.arch] ?? process.arch;
  return `linux/${arch}`;
}

/** A registry reference rather than a path: not on disk, and shaped like HOST/REPO[:TAG|@DIGEST] or REPO:TAG. */
function looksLikeReference(s: string): boolean {
  if (s.startsWith('/') || s.startsWith('.') || s.endsWith('.tar')) return false;
  return (
    /^[a-z0-9][a-z0-9._:-]*(\/[a-z0-9._-]+)*(:[\w][\w.-]{0,127})?(@sha256:[0-9a-f]{64})?$/i.test(s) &&
    (s.includes('/') || s.includes(':') || s.includes('@'))
  );
}

/** Open, unpack (what the cache lacks) and assemble: the slow path. */
async function prepare(flags: RunFlags, cacheDir: string, platform: string): Promise<LaunchRecord> {
  const { openRunImage } = await import('./image.js');
  const { unpackLayer, removeTemporaries } = await import('./unpack.js');
  const { assembleRoot } = await import('./rootfs.js');
  const { writeRecord, imageStat, readManifestRecord, writeManifestRecord } = await import('./record.js');
  let source = resolve(flags.image);
  let pulledDir: string | undefined;
  // Interrupted while pulling or unpacking: remove what was half written, then die of the signal.
  const onSignal = (sig: NodeJS.Signals) => {
    removeTemporaries();
    if (pulledDir) rmSync(pulledDir, { recursive: true, force: true });
    process.kill(process.pid, sig);
  };
  const sigs: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
  for (const s of sigs) process.once(s, onSignal);
  try {
    if (!existsSync(source)) {
      if (!looksLikeReference(flags.image))
        throw new MkimgError('usage', `${flags.image} does not exist`, {
          hint: 'give an image tar, an OCI layout directory or a registry reference',
        });
      const { pullImage, fetchImageManifest } = await import('../registry/pull.js');
      const { parseReference } = await import('../registry/reference.js');
      const { RegistryClient } = await import('../registry/client.js');
      const [os, architecture, variant] = platform.split('/') as [string, string, string | undefined];
      const plat = { os, architecture, ...(variant ? { variant } : {}) };
      // The manifest first (a tag may have moved): one already run needs no blob.
      const ref = parseReference(flags.image);
      const client = new RegistryClient(ref.registry, ref.hostname, { insecure: flags.insecure });
      await client.ping(ref.repository);
      const m = await fetchImageManifest(client, ref, plat);
      const known = m ? readManifestRecord(cacheDir, m.digest, platform) : undefined;
      if (known) return known;
      mkdirSync(join(cacheDir, 'run'), { recursive: true });
      pulledDir = mkdtempSync(join(cacheDir, 'run', '.pull-'));
      source = join(pulledDir, 'image.tar');
      await pullImage(flags.image, source, { insecure: flags.insecure, platform: plat });
    }
    const img = await openRunImage(source, { platform });
    const dirs: string[] = [];
    for (const [i, l] of img.layers.entries())
      dirs.push((await unpackLayer(cacheDir, l, `${flags.image}: layer ${i} (${l.desc.digest})`)).dir);
    const { root } = assembleRoot(
      cacheDir,
      dirs,
      img.layers.map((l) => l.diffId),
    );
    const st = imageStat(source)!;
    const rec: LaunchRecord = {
      v: 1,
      path: source,
      ...st,
      platform,
      manifestDigest: img.manifestDigest,
      root,
      config: img.config,
    };
    if (!pulledDir) {
      writeRecord(cacheDir, rec);
      writeFast(cacheDir, rec, flags.image, platform);
    } else writeManifestRecord(cacheDir, rec);
    return rec;
  } finally {
    for (const s of sigs) process.off(s, onSignal);
    if (pulledDir) rmSync(pulledDir, { recursive: true, force: true });
  }
}

/** The record for tracer/mkimg-run: the sandbox of a run with no flags (when the image has something to run and its user resolves). */
function writeFast(cacheDir: string, rec: LaunchRecord, image: string, platform: string): void {
  if (platform !== hostPlatformOf()) return;
  let spec: LaunchSpec;
  try {
    spec = launchSpec(rec, defaultRunFlags(image));
  } catch {
    return;
  }
  const all = launchArgs(spec);
  const options = all.slice(2, all.indexOf('--')); // without --messages-fd 3: mkimg-run has no fd 3
  writeFastRecord(cacheDir, rec.path, options, rec.config.entrypoint, rec.config.cmd);
}

/** The program, environment, directory and user, from the image config and the flags (docker run's rules). */
export function launchSpec(rec: LaunchRecord, flags: RunFlags): LaunchSpec {
  const c: RunConfig = rec.config;
  const entry = flags.entrypoint !== undefined ? (flags.entrypoint === '' ? [] : [flags.entrypoint]) : c.entrypoint;
  const cmd = flags.args.length > 0 ? flags.args : flags.entrypoint !== undefined ? [] : c.cmd;
  const argv = [...entry, ...cmd];
  if (argv.length === 0)
    throw new MkimgError('usage', `${flags.image} has no entrypoint or cmd, and no command was given`, {
      hint: 'mkimg run IMAGE -- PROGRAM ARGS...',
    });
  const user = flags.user ?? c.user;
  const u = user
    ? resolveUser(rec.root, user, flags.user !== undefined ? '--user' : "the image's config.User")
    : { uid: 0, gid: 0, home: '/root' };
  const env = new Map<string, string>();
  for (const kv of [DEFAULT_PATH, ...c.env]) {
    const i = kv.indexOf('=');
    if (i > 0) env.set(kv.slice(0, i), kv.slice(i + 1));
  }
  for (const kv of flags.env) {
    const i = kv.indexOf('=');
    if (i === 0) throw new MkimgError('usage', `-e ${JSON.stringify(kv)}: expected K=V or K`);
    if (i < 0) {
      const v = process.env[kv];
      if (v !== undefined) env.set(kv, v);
    } else env.set(kv.slice(0, i), kv.slice(i + 1));
  }
  if (!env.has('HOME')) env.set('HOME', u.home || '/');
  const binds = flags.volumes.map((v) => {
    const parts = v.split(':');
    if (
      parts.length < 2 ||
      parts.length > 3 ||
      !parts[0] ||
      !parts[1] ||
      (parts[2] !== undefined && parts[2] !== 'ro' && parts[2] !== 'rw')
    ) {
      throw new MkimgError('usage', `-v ${JSON.stringify(v)}: expected HOST:IMG[:ro]`, {
        hint: 'e.g. -v "$PWD/data:/data:ro"',
      });
    }
    const host = resolve(parts[0]);
    if (!existsSync(host))
      throw new MkimgError('usage', `-v ${v}: ${host} does not exist on this host`, {
        hint: 'create it first, or fix the path',
      });
    if (!parts[1].startsWith('/')) throw new MkimgError('usage', `-v ${v}: the image path ${parts[1]} is not absolute`);
    return `${host}:${parts[1]}${parts[2] === 'ro' ? ':ro' : ''}`;
  });
  const cwd = flags.workdir ?? (c.workdir || '/');
  if (!cwd.startsWith('/')) throw new MkimgError('usage', `-w ${cwd}: expected an absolute path inside the image`);
  return {
    root: rec.root,
    argv,
    env: [...env].map(([k, v]) => `${k}=${v}`),
    cwd,
    uid: u.uid,
    gid: u.gid,
    binds,
    network: flags.network,
    writable: flags.writable,
  };
}

/** Run; returns the exit code (the program's, or mkimg's own for its errors). */
export async function runMain(argv: string[]): Promise<number> {
  process.umask(0o022);
  try {
    const flags = parseRunArgs(argv);
    if (flags.help) {
      process.stdout.write(RUN_HELP);
      return 0;
    }
    const cacheDir = cacheDirOf(flags);
    const platform = flags.platform ?? hostPlatformOf();
    if (!/^[a-z0-9]+\/[a-z0-9]+(\/[a-z0-9]+)?$/.test(platform))
      throw new MkimgError('usage', `--platform ${platform}: expected OS/ARCH[/VARIANT], e.g. linux/amd64`);
    if (platform.split('/').slice(0, 2).join('/') !== hostPlatformOf()) {
      throw new MkimgError('sandbox', `--platform ${platform}: this host runs ${hostPlatformOf()} images only`, {
        hint: 'mkimg run does not emulate other architectures',
      });
    }
    const abs = resolve(flags.image);
    const rec =
      (!flags.explain && statSync(abs, { throwIfNoEntry: false }) && readRecord(cacheDir, abs, platform)) ||
      (await prepare(flags, cacheDir, platform));
    const spec = launchSpec(rec, flags);
    if (flags.explain) {
      const { explain } = await import('./explain.js');
      return await explain(rec, spec, cacheDir);
    }
    return await launch(spec);
  } catch (e) {
    const { reportError } = await import('../cli/output.js');
    return reportError(e, false);
  }
}
