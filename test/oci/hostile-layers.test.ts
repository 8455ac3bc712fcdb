/**
 * Compressed layers from elsewhere (SPEC §5, reading): a compression bomb, a
 * truncated stream, a layer that decompresses to bytes other than its
 * diff_id, and an unknown layer media type are refused with a clear error:
 * exit 7 (integrity) for a given image tar (verify's integrity stage,
 * inspect), exit 12 (registry) for a pull, which leaves nothing at the
 * output path. Memory and time stay bounded: the bomb is stopped after
 * MAX_RATIO × its compressed size + MAX_SLACK bytes.
 */
import { execSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkimg } from '../helpers/cli.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { rejection } from '../helpers/errors.js';
import { sha256Hex } from '../../src/util/digest.js';
import {
  dockerManifestJson,
  imageIndex,
  imageManifest,
  jsonBlob,
  MEDIA,
  OCI_LAYOUT,
  blobPath,
} from '../../src/oci/model.js';
import { writeLayoutTar, type LayoutMember } from '../../src/image/write-image.js';
import { checkImageIntegrity } from '../../src/verify/integrity.js';
import { LayerDecoder, MAX_RATIO, MAX_SLACK } from '../../src/oci/decompress.js';

const work = mkdtempSync(join(tmpdir(), 'mkimg-hostile-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** An image tar with one layer blob `blob` of `mediaType` whose config says diff_id `diffId`. */
function image(name: string, blob: Buffer, mediaType: string, diffId: string): string {
  const config = jsonBlob(MEDIA.config, {
    architecture: 'amd64',
    os: 'linux',
    created: '2023-11-14T22:13:20Z',
    config: {},
    rootfs: { type: 'layers', diff_ids: [diffId] },
  });
  const layer = { mediaType, digest: `sha256:${sha256Hex(blob)}`, size: blob.length };
  const manifest = imageManifest(config.descriptor, [layer]);
  const index = imageIndex(manifest.descriptor, 'test/hostile', '1.0', 'amd64');
  const members: LayoutMember[] = [
    { name: 'blobs', type: 'dir' },
    { name: 'blobs/sha256', type: 'dir' },
    { name: blobPath(config.descriptor.digest), type: 'file', bytes: config.bytes },
    { name: blobPath(manifest.descriptor.digest), type: 'file', bytes: manifest.bytes },
    { name: blobPath(layer.digest), type: 'file', bytes: blob, layer: true },
    { name: 'index.json', type: 'file', bytes: index.bytes },
    {
      name: 'manifest.json',
      type: 'file',
      bytes: dockerManifestJson(config.descriptor.digest, [layer.digest], 'test/hostile', '1.0'),
    },
    { name: 'oci-layout', type: 'file', bytes: OCI_LAYOUT },
  ];
  const out = join(work, `${name}.tar`);
  writeLayoutTar(members, 1700000000, out);
  return out;
}

describe('hostile compressed layers', () => {
  let registry: TestRegistry;
  const cases: { name: string; tar: string; message: RegExp }[] = [];
  beforeAll(async () => {
    registry = await startRegistry();
    const tarBytes = execSync('tar -cf - -C /etc hostname passwd');
    const gz = execSync('gzip -6n', { input: tarBytes });
    const diffId = `sha256:${sha256Hex(tarBytes)}`;
    // 1 GiB of zeros: zstd squeezes it far past MAX_RATIO.
    const bomb = execSync('head -c 1073741824 /dev/zero | zstd -q -19 -c', { maxBuffer: 1 << 26 });
    expect(bomb.length * MAX_RATIO + MAX_SLACK).toBeLessThan(1 << 30);
    cases.push(
      { name: 'bomb', tar: image('bomb', bomb, MEDIA.layerZstd, diffId), message: /compression bomb/ },
      {
        name: 'truncated',
        tar: image('truncated', gz.subarray(0, gz.length - 6), MEDIA.layerGzip, diffId),
        message: /truncated|not valid compressed data/,
      },
      {
        name: 'wrong-diff-id',
        tar: image('wrong-diff-id', gz, MEDIA.layerGzip, `sha256:${'1'.repeat(64)}`),
        message: /decompresses to sha256:/,
      },
      {
        name: 'unknown-type',
        tar: image('unknown-type', gz, 'application/vnd.example.layer.v1.tar+lz4', diffId),
        message: /media type/,
      },
    );
  }, 120_000);
  afterAll(async () => registry?.stop());

  it('the decoder stops a bomb at its bound', () => {
    const bomb = execSync('head -c 268435456 /dev/zero | zstd -q -19 -c');
    let seen = 0;
    const d = new LayerDecoder('zstd', bomb.length, 'bomb', (c) => (seen += c.length));
    expect(() => {
      d.write(bomb);
      d.end();
    }).toThrow(/compression bomb/);
    expect(seen).toBeLessThanOrEqual(bomb.length * MAX_RATIO + MAX_SLACK);
  });

  it('integrity (verify) and inspect refuse each with exit 7', async () => {
    for (const c of cases) {
      const e = await rejection(checkImageIntegrity(c.tar));
      expect(e.kind, c.name).toBe('integrity');
      expect(e.message, c.name).toMatch(c.message);
      if (c.name === 'wrong-diff-id') continue; // inspect lists files; it does not check diff_ids
      const r = mkimg(['inspect', c.tar]);
      expect(r.code, `${c.name}: ${r.stderr}`).toBe(7);
      expect(r.stderr.trim().split('\n')[0]).toMatch(/^mkimg: error: /);
    }
  });

  it('mkimg run refuses each with exit 7 and leaves no unpacked layer behind', () => {
    for (const c of cases) {
      const cache = mkdtempSync(join(work, 'run-cache-'));
      const r = mkimg(['run', '--cache-dir', cache, c.tar, '--', '/bin/true']);
      expect(r.code, `${c.name}: ${r.stderr}`).toBe(7);
      expect(r.stderr).toMatch(/^mkimg: error: /);
      // The bomb stops at the decoder's bound, not after 256 MB at the diff_id check.
      if (c.name === 'bomb') expect(r.stderr).toMatch(/compression bomb/);
      expect(existsSync(join(cache, 'rootfs', 'sha256')) ? readdirSync(join(cache, 'rootfs', 'sha256')) : []).toEqual(
        [],
      );
    }
  });

  it('pull refuses each with exit 12 and writes nothing', () => {
    for (const c of cases) {
      const ref = `${registry.host}/hostile/${c.name}:1.0`;
      const pushed = mkimg(['push', c.tar, ref]);
      expect(pushed.code, pushed.stderr).toBe(0);
      const dir = mkdtempSync(join(work, 'pull-'));
      const r = mkimg(['pull', ref, '-o', join(dir, 'out.tar')]);
      expect(r.code, `${c.name}: ${r.stderr}`).toBe(12);
      expect(r.stderr).toMatch(c.message);
      expect(existsSync(join(dir, 'out.tar'))).toBe(false);
      expect(readdirSync(dir)).toEqual([]);
    }
  });
});
