/**
 * Small, valid mkimg image tars for registry tests, written by the image
 * module's own writer (src/image/write-image.ts), so they are exactly the
 * format `mkimg build` produces.
 */
import { randomBytes, createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync, openSync, writeSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeImageTar, writeLayeredImage, type ImageSpec, type WrittenImage } from '../../src/image/write-image.js';
import type { Compression } from '../../src/oci/model.js';
import type { LayerEntry } from '../../src/image/layer.js';

export interface TestImageOptions {
  name?: string;
  tag?: string;
  /** Files: image path → content (string/Buffer) or a byte count of random content. */
  files?: Record<string, string | Buffer | number>;
  sourceDateEpoch?: number;
  /** Label values make distinct images. */
  labels?: Record<string, string>;
  manifestSha256?: string;
  /** Debian architecture of the image (default amd64). */
  architecture?: string;
}

/** Write an image tar at `output`; returns the writer's result (imageId = config digest, manifestDigest). */
export function makeTestImage(output: string, opts: TestImageOptions = {}): WrittenImage {
  const work = mkdtempSync(join(tmpdir(), 'mkimg-testimg-'));
  try {
    const { spec, entries } = testImageInput(work, opts);
    return writeImageTar(spec, entries, output);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** The same image with its one layer compressed (what `mkimg build` writes by default: gzip). */
export async function makeCompressedTestImage(
  output: string,
  opts: TestImageOptions = {},
  compression: Compression = 'gzip',
): Promise<WrittenImage> {
  const work = mkdtempSync(join(tmpdir(), 'mkimg-testimg-'));
  try {
    const { spec, entries } = testImageInput(work, opts);
    return await writeLayeredImage(spec, [{ name: 'all', entries }], output, { compression, workDir: work });
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

function testImageInput(work: string, opts: TestImageOptions): { spec: ImageSpec; entries: LayerEntry[] } {
  const files = opts.files ?? { '/etc/hello.txt': 'hello from mkimg\n', '/bin/true.sh': '#!/bin/sh\nexit 0\n' };
  const entries: LayerEntry[] = [];
  let i = 0;
  for (const [path, content] of Object.entries(files)) {
    const host = join(work, `f${i++}`);
    let size: number;
    if (typeof content === 'number') {
      const fd = openSync(host, 'w');
      const chunk = 4 << 20;
      for (let left = content; left > 0; left -= chunk) writeSync(fd, randomBytes(Math.min(chunk, left)));
      closeSync(fd);
      size = content;
    } else {
      const buf = Buffer.isBuffer(content) ? content : Buffer.from(content);
      writeFileSync(host, buf);
      size = buf.length;
    }
    entries.push({
      path,
      type: 'file',
      mode: path.startsWith('/bin/') ? 0o755 : 0o644,
      uid: 0,
      gid: 0,
      size,
      hostPath: host,
    });
  }
  const spec: ImageSpec = {
    name: opts.name ?? 'test/app',
    tag: opts.tag ?? '1.0',
    architecture: opts.architecture ?? 'amd64',
    sourceDateEpoch: opts.sourceDateEpoch ?? 1700000000,
    config: { env: {}, labels: opts.labels ?? {}, exposedPorts: [], entrypoint: ['/bin/true.sh'] },
    manifestSha256:
      opts.manifestSha256 ??
      createHash('sha256')
        .update(JSON.stringify(opts.labels ?? {}) + (opts.name ?? ''))
        .digest('hex'),
  };
  return { spec, entries };
}
