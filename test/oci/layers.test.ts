/**
 * Several layers and deterministic compression (SPEC §5): the layer split is
 * a function of the manifest and the kept set, each file is in exactly one
 * layer, packages' layers do not depend on files: inputs, an app edit
 * changes only the files and generated layers, the image ID does not depend
 * on the compression, and every reader (verify integrity, inspect, diff,
 * umoci, skopeo) sees the same root file system as with one layer.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkimg, mkimgJson, mkimgJsonAsync } from '../helpers/cli.js';
import { startProxy, startRegistry, type TestRegistry } from '../helpers/registry.js';
import { unpackImage } from '../helpers/runc.js';
import { checkImageIntegrity } from '../../src/verify/integrity.js';
import { addBigInput, writeSampleProject } from '../helpers/sample-project.js';

/** How every gzip member mkimg writes starts: magic, deflate, no flags, mtime 0, XFL 0, OS 3. */
const GZIP_MEMBER = Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3]);

const work = mkdtempSync(join(tmpdir(), 'mkimg-layers-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

interface Built {
  imageId: string;
  output: string;
  manifestDigest: string;
  layers: { digest: string; size: number; mediaType: string }[];
}

/** A copy of the sample project with `extra` YAML appended, built to `<name>.tar`. */
function build(base: string, name: string, extra: string, edit?: (dir: string) => void): { tar: string; built: Built } {
  const dir = join(work, name);
  execFileSync('cp', ['-a', base, dir]);
  edit?.(dir);
  const manifest = join(dir, 'manifest.yaml');
  writeFileSync(manifest, readFileSync(manifest, 'utf8') + extra);
  if (edit) {
    const locked = mkimg(['lock', manifest]);
    if (locked.code !== 0) throw new Error(`lock ${name} failed: ${locked.stderr}`);
  }
  const tar = join(work, `${name}.tar`);
  const r = mkimgJson<Built>(['build', manifest, '-o', tar, '--cache-dir', join(work, 'cache')]);
  if (r.code !== 0) throw new Error(`build ${name} failed (${r.code}): ${r.stderr} ${JSON.stringify(r.json)}`);
  return { tar, built: r.json };
}

/** The image tar's layers, uncompressed, as `tar -tv` listings (path → line). */
function layerFiles(tar: string): Map<string, string>[] {
  const dir = mkdtempSync(join(work, 'x-'));
  execFileSync('tar', ['-xf', tar, '-C', dir]);
  const index = JSON.parse(readFileSync(join(dir, 'index.json'), 'utf8'));
  const manifest = JSON.parse(readFileSync(join(dir, 'blobs/sha256', index.manifests[0].digest.slice(7)), 'utf8'));
  return manifest.layers.map((l: { digest: string }) => {
    const out = execFileSync('tar', ['--numeric-owner', '-tvf', join(dir, 'blobs/sha256', l.digest.slice(7))], {
      encoding: 'utf8',
      env: { ...process.env, TZ: 'UTC' },
    });
    return new Map(
      out
        .trim()
        .split('\n')
        .filter(Boolean)
        .map((line) => [
          line
            .replace(/ -> .*$/, '')
            .split(/\s+/)
            .slice(5)
            .join(' ')
            .replace(/\/$/, ''),
          line,
        ]),
    );
  });
}

/** The root file system umoci unpacks, as a sorted listing of type, mode, owner, size, link, content digest. */
function rootfsListing(tar: string, zstd = false): string {
  // umoci (Debian 12) does not read zstd layers: skopeo (which does) copies the image to gzip first.
  const { bundle, cleanup } = zstd ? unpackViaSkopeo(tar) : unpackImage(tar, '1.0');
  try {
    // The SBOM names the manifest's sha256, which differs with the manifest's layering/compression lines.
    const sbom = /usr\/share\/mkimg\/sbom\.spdx\.json$/;
    return execFileSync(
      'sh',
      [
        '-c',
        'cd rootfs && find . -mindepth 1 -printf "%y %m %U:%G %s %l %p\n" | sort && find . -type f -exec sha256sum {} + | sort -k2',
      ],
      { cwd: bundle, encoding: 'utf8', maxBuffer: 64 << 20 },
    )
      .split('\n')
      .filter((l) => !sbom.test(l))
      .join('\n');
  } finally {
    cleanup();
  }
}

function unpackViaSkopeo(tar: string): { bundle: string; cleanup: () => void } {
  const dir = mkdtempSync(join(work, 'skopeo-'));
  execFileSync('skopeo', ['copy', '--dest-compress-format', 'gzip', `oci-archive:${tar}`, `oci:${dir}/layout:1.0`], {
    stdio: 'pipe',
  });
  execFileSync('umoci', ['unpack', '--image', `${dir}/layout:1.0`, `${dir}/bundle`], { stdio: 'pipe' });
  return { bundle: `${dir}/bundle`, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

describe('layers', () => {
  let base: string;
  let registry: TestRegistry;
  beforeAll(async () => {
    base = join(work, 'base');
    writeSampleProject(base);
    registry = await startRegistry();
  });
  afterAll(async () => registry?.stop());

  it('every strategy and compression: integrity, inspect (which layer), umoci/skopeo see the single-layer rootfs, pull round trip is byte-identical', async () => {
    const single = build(base, 's-single', 'layering: {strategy: single}\ncompression: none\n');
    const want = rootfsListing(single.tar);
    const cases: [string, string, number][] = [
      ['s-origin-gzip', 'compression: gzip\n', 3],
      ['s-origin-zstd', 'compression: zstd\n', 3],
      ['s-origin-none', 'compression: none\n', 3],
      ['s-perpkg', 'layering: {strategy: per-package, budget: 3}\ncompression: zstd\n', 3],
      ['s-single-gzip', 'layering: {strategy: single}\n', 1],
    ];
    for (const [name, yaml, n] of cases) {
      const { tar, built } = build(base, name, yaml);
      expect(built.layers, name).toHaveLength(n);
      const checked = await checkImageIntegrity(tar);
      expect(checked.layers.length).toBe(n);
      expect(rootfsListing(tar, yaml.includes('zstd')), name).toBe(want);
      const sk = spawnSync('skopeo', ['inspect', `oci-archive:${tar}`], { encoding: 'utf8' });
      expect(sk.status, sk.stderr).toBe(0);
      expect(JSON.parse(sk.stdout).Layers).toEqual(built.layers.map((l) => l.digest));
      const ins = mkimgJson<{ files: { path: string; layer?: number }[]; layers: unknown[] }>([
        'inspect',
        tar,
        '--files',
      ]);
      expect(ins.code).toBe(0);
      const layerOf = (p: string) => ins.json.files.find((f) => f.path === p)?.layer;
      expect(layerOf('/usr/bin/busybox')).toBe(0);
      expect(layerOf('/app/run.sh')).toBe(n === 3 ? 1 : 0);
      expect(layerOf('/etc/passwd')).toBe(n === 3 ? 2 : 0);
      expect(new Set(ins.json.files.map((f) => f.path)).size).toBe(ins.json.files.length);
      // Push, pull: the same bytes.
      const ref = `${registry.host}/layers/${name}:1.0`;
      expect(mkimg(['push', tar, ref]).code).toBe(0);
      const pulled = join(work, `${name}-pulled.tar`);
      const p = mkimg(['pull', ref, '-o', pulled, '--name', 'test/sample:1.0']);
      expect(p.code, p.stderr).toBe(0);
      expect(readFileSync(pulled).equals(readFileSync(tar)), `${name}: pulled bytes`).toBe(true);
    }
  });

  it('a layer past 8 MiB (several gzip members): integrity, umoci/skopeo see the same rootfs as one uncompressed layer, pull round trip', async () => {
    const withBig = (dir: string) => addBigInput(dir, join(dir, 'manifest.yaml'));
    const want = rootfsListing(
      build(base, 'big-single', 'layering: {strategy: single}\ncompression: none\n', withBig).tar,
    );
    const { tar, built } = build(base, 'big-gzip', 'compression: gzip\n', withBig);
    const files = built.layers[1]!;
    // The files layer's blob: one gzip member per 8 MiB piece.
    const blob = execFileSync('tar', ['-xOf', tar, `blobs/sha256/${files.digest.slice(7)}`], { maxBuffer: 1 << 26 });
    let members = 0;
    for (let at = blob.indexOf(GZIP_MEMBER); at >= 0; at = blob.indexOf(GZIP_MEMBER, at + 1)) members++;
    expect(members).toBeGreaterThanOrEqual(2);
    expect((await checkImageIntegrity(tar)).layers.length).toBe(3);
    expect(rootfsListing(tar)).toBe(want);
    const sk = spawnSync('skopeo', ['inspect', `oci-archive:${tar}`], { encoding: 'utf8' });
    expect(JSON.parse(sk.stdout).Layers).toEqual(built.layers.map((l) => l.digest));
    const ref = `${registry.host}/layers/big:1.0`;
    expect(mkimg(['push', tar, ref]).code).toBe(0);
    const pulled = join(work, 'big-pulled.tar');
    expect(mkimg(['pull', ref, '-o', pulled, '--name', 'test/sample:1.0']).code).toBe(0);
    expect(readFileSync(pulled).equals(readFileSync(tar))).toBe(true);
  });

  it('diff names the layer that differs; a second push after an app edit uploads only the changed layers and the config', async () => {
    const a = build(base, 'p-a', '');
    const b = build(base, 'p-b', '', (dir) => writeFileSync(join(dir, 'app/README'), 'changed again\n'));
    const d = mkimgJson<{ identical: boolean; differences: { where: string }[] }>(['diff', a.tar, b.tar]);
    expect(d.code).toBe(9);
    const wheres = d.json.differences.map((x) => x.where);
    expect(wheres).toContain('layer 1: app/README');
    expect(wheres.some((w) => w.startsWith('layer 0'))).toBe(false);
    const proxy = await startProxy(registry.host);
    try {
      const ref = `${proxy.host}/layers/app:1.0`;
      const first = await mkimgJsonAsync<{ blobsUploaded: number; bytesUploaded: number }>(['push', a.tar, ref]);
      expect(first.code).toBe(0);
      expect(first.json.blobsUploaded).toBe(4);
      proxy.log.length = 0;
      const second = await mkimgJsonAsync<{ blobsUploaded: number; blobsSkipped: number; bytesUploaded: number }>([
        'push',
        b.tar,
        ref,
      ]);
      expect(second.code).toBe(0);
      // files and generated layers + config; the package layer is skipped.
      expect(second.json.blobsUploaded).toBe(3);
      expect(second.json.blobsSkipped).toBe(1);
      const uploaded = proxy.log
        .filter((r) => r.method === 'PUT' || r.method === 'PATCH')
        .reduce((n, r) => n + r.bytes, 0);
      const changed = b.built.layers.slice(1).reduce((n, l) => n + l.size, 0);
      expect(second.json.bytesUploaded).toBeLessThan(first.json.bytesUploaded / 2);
      expect(uploaded).toBeGreaterThanOrEqual(changed);
      expect(proxy.log.some((r) => r.path.includes(b.built.layers[0]!.digest) && r.method !== 'HEAD')).toBe(false);
    } finally {
      await proxy.stop();
    }
  });

  it('origin (default): packages | files | generated, gzip, each file in one layer, parents repeated identically', () => {
    const { tar, built } = build(base, 'origin', '');
    expect(built.layers.map((l) => l.mediaType)).toEqual(Array(3).fill('application/vnd.oci.image.layer.v1.tar+gzip'));
    const [pkgs, files, gen] = layerFiles(tar);
    expect(pkgs!.has('usr/bin/busybox')).toBe(true);
    expect(pkgs!.has('bin')).toBe(true);
    expect(files!.has('app/run.sh')).toBe(true);
    expect(gen!.has('etc/passwd')).toBe(true);
    expect(gen!.has('usr/share/mkimg/sbom.spdx.json')).toBe(true);
    // Every non-directory in exactly one layer; a directory in several has one header.
    const seen = new Map<string, string>();
    for (const layer of [pkgs!, files!, gen!]) {
      for (const [path, line] of layer) {
        const prev = seen.get(path);
        if (prev !== undefined) {
          expect(line.startsWith('d'), `${path} is in two layers`).toBe(true);
          expect(line).toBe(prev);
        }
        seen.set(path, line);
      }
    }
    // The same paths as one layer.
    const single = build(base, 'single', 'layering: {strategy: single}\ncompression: none\n');
    expect(single.built.layers.length).toBe(1);
    expect([...layerFiles(single.tar)[0]!.keys()].sort()).toEqual([...seen.keys()].sort());
    const verify = mkimg(['verify', tar, '--integrity-only'].slice(0, 2));
    expect(verify.code).not.toBe(7);
  });

  it('same packages, different files: give the same package layer; an app edit changes only the files and generated layers', () => {
    const a = build(base, 'edit-a', '');
    const b = build(base, 'edit-b', '', (dir) => writeFileSync(join(dir, 'app/README'), 'changed\n'));
    expect(b.built.layers[0]).toEqual(a.built.layers[0]);
    expect(b.built.layers[1]!.digest).not.toBe(a.built.layers[1]!.digest);
    expect(b.built.layers[2]!.digest).not.toBe(a.built.layers[2]!.digest);
  });

  it('with minimization too: the same kept package files give the same package layer', () => {
    const minBase = join(work, 'min-base');
    writeSampleProject(minBase, { minimize: true });
    const a = build(minBase, 'min-a', '');
    const b = build(minBase, 'min-b', '', (dir) =>
      writeFileSync(join(dir, 'app/run.sh'), '#!/bin/sh\n# edited\necho "hello from $0"\n'),
    );
    expect(b.built.layers[0]).toEqual(a.built.layers[0]);
    expect(b.built.layers[1]!.digest).not.toBe(a.built.layers[1]!.digest);
  });

  it('the image ID does not depend on the compression; the bytes are deterministic', () => {
    const gz = build(base, 'c-gzip', 'compression: gzip\n');
    const gz2 = build(base, 'c-gzip2', 'compression: gzip\n');
    const zs = build(base, 'c-zstd', 'compression: zstd\n');
    const none = build(base, 'c-none', 'compression: none\n');
    expect(readFileSync(gz2.tar).equals(readFileSync(gz.tar))).toBe(true);
    // The config holds the diff_ids (uncompressed digests), not the
    // compressed ones. Changing `compression:` changes the manifest's bytes,
    // which the image binds (config label, SBOM in the generated layer):
    // everything else is the same.
    const configOf = (tar: string) => {
      const dir = mkdtempSync(join(work, 'cfg-'));
      execFileSync('tar', ['-xf', tar, '-C', dir]);
      const index = JSON.parse(readFileSync(join(dir, 'index.json'), 'utf8'));
      const manifest = JSON.parse(readFileSync(join(dir, 'blobs/sha256', index.manifests[0].digest.slice(7)), 'utf8'));
      const config = JSON.parse(readFileSync(join(dir, 'blobs/sha256', manifest.config.digest.slice(7)), 'utf8'));
      delete config.config.Labels['org.mkimg.manifest.sha256'];
      config.rootfs.diff_ids.pop(); // the generated layer: its SBOM names the manifest
      return config;
    };
    expect(configOf(zs.tar)).toEqual(configOf(gz.tar));
    expect(configOf(none.tar)).toEqual(configOf(gz.tar));
    expect(configOf(gz.tar).rootfs.diff_ids).toHaveLength(2);
    expect(zs.built.layers.map((l) => l.mediaType)).toEqual(
      Array(3).fill('application/vnd.oci.image.layer.v1.tar+zstd'),
    );
    expect(none.built.layers.map((l) => l.mediaType)).toEqual(Array(3).fill('application/vnd.oci.image.layer.v1.tar'));
    // gzip: the same bytes `gzip -d` reads back to the uncompressed layer.
    const dir = mkdtempSync(join(work, 'gz-'));
    execFileSync('tar', ['-xf', gz.tar, '-C', dir]);
    const ndir = mkdtempSync(join(work, 'none-'));
    execFileSync('tar', ['-xf', none.tar, '-C', ndir]);
    gz.built.layers.slice(0, 2).forEach((l, i) => {
      const raw = execFileSync('gzip', ['-dc', join(dir, 'blobs/sha256', l.digest.slice(7))], { maxBuffer: 1 << 30 });
      expect(raw.equals(readFileSync(join(ndir, 'blobs/sha256', none.built.layers[i]!.digest.slice(7))))).toBe(true);
    });
  });
});
