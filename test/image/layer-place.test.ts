/**
 * Built image tars whose layer sorts last among the blobs (no padding), in
 * the middle or first (a PAX `comment` pads the layer's header for the config
 * and/or image manifest sorting after it): the layer's data is at the same
 * offset in all three, and GNU tar, skopeo, podman and every reader of this
 * project take them.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  closeSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeImageTar, type ImageSpec, type WrittenImage } from '../../src/image/write-image.js';
import type { LayerEntry } from '../../src/image/layer.js';
import { TarParser, type TarHeader } from '../../src/image/tar-reader.js';
import { openImageTar } from '../../src/oci/image-tar.js';
import { checkImageIntegrity } from '../../src/verify/integrity.js';
import { diffImages } from '../../src/verify/diff.js';
import { inspectImage } from '../../src/inspect/inspect.js';

const work = mkdtempSync(join(tmpdir(), 'mkimg-layerplace-'));
afterAll(() => {
  try {
    execFileSync(
      'podman',
      ['--root', join(work, 'root'), '--runroot', join(work, 'run'), 'system', 'reset', '--force'],
      { stdio: 'ignore' },
    );
  } catch {
    /* best effort */
  }
  rmSync(work, { recursive: true, force: true });
});

const spec: ImageSpec = {
  name: 'test/place',
  tag: '1.0',
  architecture: 'amd64',
  sourceDateEpoch: 1700000000,
  config: { env: {}, labels: {}, entrypoint: ['/bin/app'], exposedPorts: [] },
  manifestSha256: 'cd'.repeat(32),
};

interface Built {
  path: string;
  written: WrittenImage;
  /** Blob hex names in tar order. */
  blobs: string[];
  layerHex: string;
  layerHeader: TarHeader;
  layerDataOffset: number;
}

/** Build an image whose one file is `i` written as fixed-width text: same sizes, different digests. */
function build(i: number): Built {
  const dir = join(work, `src${i}`);
  mkdirSync(dir, { recursive: true });
  const host = join(dir, 'app');
  writeFileSync(host, `#!/bin/sh\necho ${String(i).padStart(6, '0')}\n`.repeat(50));
  const entries: LayerEntry[] = [
    { path: '/bin/app', type: 'file', mode: 0o755, uid: 0, gid: 0, size: readFileSync(host).length, hostPath: host },
  ];
  const path = join(work, `image${i}.tar`);
  const written = writeImageTar(spec, entries, path);
  const layerHex = written.layers[0]!.digest.slice(7);
  const headers: TarHeader[] = [];
  let layerDataOffset = -1;
  const p = new TarParser((h) => {
    headers.push(h);
    if (h.name === `blobs/sha256/${layerHex}`) layerDataOffset = p.bytesConsumed;
    return undefined;
  });
  p.push(readFileSync(path));
  p.end();
  const blobs = headers.map((h) => /^blobs\/sha256\/([0-9a-f]{64})$/.exec(h.name)?.[1]).filter((x): x is string => !!x);
  return {
    path,
    written,
    blobs,
    layerHex,
    layerHeader: headers.find((h) => h.name === `blobs/sha256/${layerHex}`)!,
    layerDataOffset,
  };
}

/** By the layer's rank among the three blobs: 0 (config and manifest after it: padded for both), 1 (padded for one), 2 (last: no padding). */
const byRank: Built[] = [];
let noGap: Built;
let gap: Built;

beforeAll(() => {
  // The digests decide the order; try contents until every rank has turned up.
  for (let i = 0; i < 200 && byRank.filter(Boolean).length < 3; i++) {
    const b = build(i);
    byRank[b.blobs.indexOf(b.layerHex)] ??= b;
  }
  expect(byRank.filter(Boolean)).toHaveLength(3);
  [gap, , noGap] = byRank as [Built, Built, Built];
});

describe('the layer written in place', () => {
  it('starts at the same offset whether the blobs after it are padded for or not', () => {
    expect(noGap.layerHeader.pax).toEqual({});
    for (const b of [byRank[0]!, byRank[1]!]) expect(b.layerHeader.pax.comment).toMatch(/^0+$/);
    expect(byRank[0]!.layerHeader.pax.comment!.length).toBeGreaterThan(byRank[1]!.layerHeader.pax.comment!.length);
    expect(new Set(byRank.map((b) => b.layerDataOffset)).size).toBe(1);
    expect(new Set(byRank.map((b) => b.written.layers[0]!.size)).size).toBe(1);
    // The bytes at that offset are the layer.
    for (const b of byRank) {
      const size = b.written.layers[0]!.size;
      const buf = Buffer.alloc(size);
      const fd = openSync(b.path, 'r');
      readSync(fd, buf, 0, size, b.layerDataOffset);
      closeSync(fd);
      expect(createHash('sha256').update(buf).digest('hex')).toBe(b.layerHex);
      expect(readFileSync(b.path).length).toBe(b.written.sizeBytes);
    }
    // No temporary files left beside the outputs.
    expect(readdirSync(work).filter((n) => n.startsWith('.'))).toEqual([]);
  });

  it('GNU tar lists and extracts all three, every blob matching its name', () => {
    for (const b of byRank) {
      const list = execFileSync('tar', ['-tvf', b.path], { encoding: 'utf8' });
      expect(list).not.toMatch(/PaxHeader/);
      expect(
        list
          .trim()
          .split('\n')
          .map((l) => l.split(/\s+/).at(-1)),
      ).toEqual([
        'blobs/',
        'blobs/sha256/',
        ...b.blobs.map((h) => `blobs/sha256/${h}`),
        'index.json',
        'manifest.json',
        'oci-layout',
      ]);
      const out = join(work, `x-${b.layerHex.slice(0, 8)}`);
      mkdirSync(out);
      execFileSync('tar', ['-xf', b.path, '-C', out], { stdio: 'pipe' });
      for (const h of b.blobs)
        expect(
          createHash('sha256')
            .update(readFileSync(join(out, 'blobs/sha256', h)))
            .digest('hex'),
        ).toBe(h);
      expect(readdirSync(out).sort()).toEqual(['blobs', 'index.json', 'manifest.json', 'oci-layout']);
    }
  });

  it('skopeo inspects all three', () => {
    for (const b of byRank) {
      const raw = JSON.parse(
        execFileSync('skopeo', ['inspect', '--raw', `oci-archive:${b.path}`], { encoding: 'utf8' }),
      );
      expect(raw.config.digest).toBe(b.written.imageId);
      expect(raw.layers[0].digest).toBe(`sha256:${b.layerHex}`);
      const cfg = JSON.parse(
        execFileSync('skopeo', ['inspect', '--config', `oci-archive:${b.path}`], { encoding: 'utf8' }),
      );
      expect(cfg.rootfs.diff_ids).toEqual([`sha256:${b.layerHex}`]);
    }
  });

  it('podman loads all three', () => {
    const podman = (...args: string[]) =>
      execFileSync(
        'podman',
        ['--root', join(work, 'root'), '--runroot', join(work, 'run'), '--storage-driver', 'vfs', ...args],
        { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] },
      );
    for (const b of byRank) {
      expect(podman('load', '-i', b.path)).toContain('Loaded image');
      expect(podman('inspect', '--format', '{{.Id}}', b.written.imageId.slice(7)).trim()).toBe(
        b.written.imageId.slice(7),
      );
    }
  });

  it("this project's readers take all three: verify's integrity check, push's index, inspect, diff", async () => {
    for (const b of byRank) {
      const checked = await checkImageIntegrity(b.path);
      expect(checked.configDigest).toBe(b.written.imageId);
      const tar = await openImageTar(b.path);
      expect(tar.members.get(`blobs/sha256/${b.layerHex}`)).toMatchObject({
        offset: b.layerDataOffset,
        size: b.written.layers[0]!.size,
      });
      const info = await inspectImage(b.path, { files: true });
      expect(info.imageId).toBe(b.written.imageId);
      expect(info.files!.map((f) => f.path)).toContain('/bin/app');
    }
    // The padding is framing: diff reports the content that differs, not the comment.
    const d = await diffImages(noGap.path, gap.path);
    expect(d.identical).toBe(false);
    expect(d.differences.map((x) => x.field)).not.toContain('pax.comment');
    expect(d.differences.map((x) => x.where)).toContain('layer 0: bin/app');
  });
});
