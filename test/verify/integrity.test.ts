import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync, truncateSync, writeFileSync, copyFileSync, appendFileSync } from 'node:fs';
import { join } from 'node:path';
import { TempDir } from '../helpers/pgp.js';
import { makeTestImage } from '../helpers/oci-image.js';
import {
  bodyOffset,
  flipByte,
  forgeImage,
  readTar,
  sha256,
  writeOciFixture,
  writeTar,
} from '../helpers/oci-fixture.js';
import { checkImageIntegrity } from '../../src/verify/integrity.js';
import { JSON_LIMIT, jsonTooLarge } from '../../src/oci/image-tar.js';
import { rejection } from '../helpers/errors.js';

let dir: TempDir;
let img: string; // written by mkimg's own image writer
let info: { imageId: string; manifestDigest: string };
let roles: { config: string; layer: string; manifest: string };

beforeAll(async () => {
  dir = new TempDir('mkimg-integrity-');
  img = join(dir.path, 'img.tar');
  const w = makeTestImage(img, {
    files: { '/etc/hello.txt': 'hello\n', '/bin/run.sh': '#!/bin/sh\necho hi\n', '/usr/lib/big.bin': 300_000 },
  });
  info = { imageId: w.imageId, manifestDigest: w.manifestDigest };
  const c = await checkImageIntegrity(img);
  roles = { config: c.configDigest.slice(7), layer: c.layers[0].digest.slice(7), manifest: c.manifestDigest.slice(7) };
});
afterAll(() => dir?.cleanup());

describe('a whole image passes', () => {
  it("an image from mkimg's writer: digests as the writer reported them", async () => {
    const c = await checkImageIntegrity(img);
    expect(c.configDigest).toBe(info.imageId);
    expect(c.manifestDigest).toBe(info.manifestDigest);
    expect(c.layers).toHaveLength(1);
    expect(c.config.rootfs.diff_ids).toEqual([c.layers[0].digest]);
    expect(
      sha256(
        readFileSync(img).subarray(
          bodyOffset(readFileSync(img), `blobs/sha256/${roles.layer}`),
          bodyOffset(readFileSync(img), `blobs/sha256/${roles.layer}`) + c.layers[0].size,
        ),
      ),
    ).toBe(roles.layer);
  });

  it('an image written by tar-stream (another tar writer)', async () => {
    const p = join(dir.path, 'fixture.tar');
    const f = await writeOciFixture(p, {
      files: [
        { name: 'etc/', type: 'directory' },
        { name: 'etc/motd', content: 'hi\n' },
      ],
      labels: { a: 'b' },
    });
    const c = await checkImageIntegrity(p);
    expect(c.configDigest).toBe(f.imageId);
    expect(c.labels).toEqual({ a: 'b' });
    expect(c.repoTags).toEqual(['example.org/hello:latest']);
  });
});

describe('tampering is detected (kind integrity, exit 7)', () => {
  const flipIn = async (name: string, delta: number) => {
    const out = join(dir.path, `flip-${name.replace(/\W/g, '_')}-${delta}.tar`);
    await flipByte(img, out, bodyOffset(readFileSync(img), name) + delta);
    return out;
  };

  it('one flipped byte in a layer', async () => {
    const e = await rejection(checkImageIntegrity(await flipIn(`blobs/sha256/${roles.layer}`, 100_000)));
    expect(e.kind).toBe('integrity');
    expect(e.exitCode).toBe(7);
    expect(e.message).toContain(`blob sha256:${roles.layer} is corrupted`);
  });

  it('one flipped byte in the config', async () => {
    const e = await rejection(checkImageIntegrity(await flipIn(`blobs/sha256/${roles.config}`, 10)));
    expect(e.message).toContain(`blob sha256:${roles.config} is corrupted`);
  });

  it('one flipped byte in the image manifest', async () => {
    const e = await rejection(checkImageIntegrity(await flipIn(`blobs/sha256/${roles.manifest}`, 5)));
    expect(e.message).toContain(`blob sha256:${roles.manifest} is corrupted`);
  });

  it('one flipped byte in index.json (inside the manifest digest)', async () => {
    const bytes = readFileSync(img);
    const at = bytes.indexOf(roles.manifest, bodyOffset(bytes, 'index.json'));
    const digit = [...roles.manifest].findIndex((c) => c >= '0' && c <= '8');
    const out = join(dir.path, 'flip-index.tar');
    await flipByte(img, out, at + digit, 0x01); // still a hex digit: a well-formed digest of nothing
    const e = await rejection(checkImageIntegrity(out));
    expect(e.kind).toBe('integrity');
    expect(e.message).toMatch(/index\.json manifests\[0\] points at sha256:[0-9a-f]{64}, which is not in blobs/);
  });

  it('every single-bit flip anywhere in index.json or manifest.json (not covered by digests) is caught', async () => {
    const bytes = readFileSync(img);
    const out = join(dir.path, 'flip-each.tar');
    for (const name of ['index.json', 'manifest.json']) {
      const start = bodyOffset(bytes, name);
      const len = (await readTar(img)).find((e) => e.header.name === name)!.body.length;
      for (let i = 0; i < len; i++) {
        await flipByte(img, out, start + i, 0x01);
        const e = await rejection(checkImageIntegrity(out));
        expect(e.kind, `${name} byte ${i}`).toBe('integrity');
      }
    }
  });

  it("index.json that is not JSON: named, with the parser's reason", async () => {
    const out = join(dir.path, 'not-json.tar');
    await flipByte(img, out, bodyOffset(readFileSync(img), 'index.json'), 0x01); // '{' -> 'z'
    const e = await rejection(checkImageIntegrity(out));
    expect(e.exitCode).toBe(7);
    expect(e.message).toMatch(/^image \S+not-json\.tar: index\.json is not valid JSON: /);
  });

  it('one flipped byte in a tar header (checksum)', async () => {
    const out = join(dir.path, 'flip-header.tar');
    await flipByte(img, out, bodyOffset(readFileSync(img), 'index.json') - 512 + 2);
    const e = await rejection(checkImageIntegrity(out));
    expect(e.message).toMatch(/bad checksum/);
  });

  it('a truncated tar: inside a blob, and at an entry boundary', async () => {
    const bytes = readFileSync(img);
    const mid = join(dir.path, 'trunc-mid.tar');
    copyFileSync(img, mid);
    truncateSync(mid, bodyOffset(bytes, `blobs/sha256/${roles.layer}`) + 5000);
    const e = await rejection(checkImageIntegrity(mid));
    expect(e.message).toMatch(/is truncated at byte/);
    expect(e.details).toMatchObject({ truncated: true });

    const edge = join(dir.path, 'trunc-edge.tar');
    copyFileSync(img, edge);
    const last = bodyOffset(bytes, 'oci-layout');
    truncateSync(edge, last + 512); // the last entry whole, no end-of-archive blocks
    const e2 = await rejection(checkImageIntegrity(edge));
    expect(e2.message).toMatch(/without the end-of-archive marker/);
  });

  it('garbage after the end-of-archive marker', async () => {
    const out = join(dir.path, 'garbage.tar');
    copyFileSync(img, out);
    appendFileSync(out, Buffer.from('x'.repeat(512)));
    expect((await rejection(checkImageIntegrity(out))).message).toMatch(/non-zero bytes after the end-of-archive/);
  });

  it('a missing blob, an extra blob', async () => {
    const entries = await readTar(img);
    const missing = join(dir.path, 'missing.tar');
    await writeTar(
      missing,
      entries.filter((e) => e.header.name !== `blobs/sha256/${roles.layer}`),
    );
    expect((await rejection(checkImageIntegrity(missing))).message).toMatch(
      new RegExp(`layers\\[0\\] points at sha256:${roles.layer}, which is not in blobs`),
    );

    const extraBody = Buffer.from('stowaway\n');
    const extra = join(dir.path, 'extra.tar');
    const tmpl = entries.find((e) => e.header.name === 'index.json')!.header;
    await writeTar(extra, [
      ...entries,
      { header: { ...tmpl, name: `blobs/sha256/${sha256(extraBody)}` }, body: extraBody },
    ]);
    expect((await rejection(checkImageIntegrity(extra))).message).toContain(
      `blob sha256:${sha256(extraBody)} is not referenced`,
    );

    const stray = join(dir.path, 'stray.tar');
    await writeTar(stray, [...entries, { header: { ...tmpl, name: 'etc/passwd' }, body: extraBody }]);
    expect((await rejection(checkImageIntegrity(stray))).message).toMatch(/unexpected entry "etc\/passwd"/);
  });

  it('diff_ids that do not match the layer, in an otherwise consistent image', async () => {
    const out = join(dir.path, 'diffids.tar');
    await forgeImage(img, out, { layer: (b) => Buffer.concat([b, Buffer.alloc(512)]), keepDiffIds: true });
    const e = await rejection(checkImageIntegrity(out));
    expect(e.message).toMatch(
      /config rootfs\.diff_ids\[0\] is sha256:[0-9a-f]{64} but layer 0 \(uncompressed\) is sha256:/,
    );
  });

  it('a size that disagrees with the blob', async () => {
    const out = join(dir.path, 'size.tar');
    const entries = await readTar(img);
    const ix = entries.find((e) => e.header.name === 'index.json')!;
    const index = JSON.parse(ix.body.toString());
    index.manifests[0].size += 1;
    ix.body = Buffer.from(JSON.stringify(index));
    await writeTar(out, entries);
    expect((await rejection(checkImageIntegrity(out))).message).toMatch(
      /says sha256:[0-9a-f]{64} has \d+ bytes, but the blob has \d+/,
    );
  });

  it('Docker manifest.json that disagrees with index.json', async () => {
    const entries = await readTar(img);
    const dm = entries.find((e) => e.header.name === 'manifest.json')!;
    const docker = JSON.parse(dm.body.toString());
    docker[0].RepoTags = ['evil/other:latest'];
    dm.body = Buffer.from(JSON.stringify(docker));
    const out = join(dir.path, 'docker.tar');
    await writeTar(out, entries);
    expect((await rejection(checkImageIntegrity(out))).message).toMatch(
      /manifest\.json RepoTags \["evil\/other:latest"\] do not include/,
    );

    docker[0].RepoTags = ['test/app:1.0'];
    docker[0].Layers = [];
    dm.body = Buffer.from(JSON.stringify(docker));
    await writeTar(out, entries);
    expect((await rejection(checkImageIntegrity(out))).message).toMatch(/manifest\.json Layers \[\] disagree/);
  });

  it("index.json larger than a JSON document may be is refused unread, naming its size (the reader's own words)", async () => {
    const entries = await readTar(img);
    const index = entries.find((e) => e.header.name === 'index.json')!;
    index.body = Buffer.alloc(JSON_LIMIT + 1, 0x20);
    const out = join(dir.path, 'index-too-big.tar');
    await writeTar(out, entries);
    const e = await rejection(checkImageIntegrity(out));
    expect(e.exitCode).toBe(7);
    expect(e.message).toBe(`image ${out}: ${jsonTooLarge('index.json', JSON_LIMIT + 1)}`);
    expect(e.message).toContain(`index.json has ${JSON_LIMIT + 1} bytes`);
  });

  it('an unreadable path is a usage error', async () => {
    const e = await rejection(checkImageIntegrity(join(dir.path, 'nope.tar')));
    expect(e.kind).toBe('usage');
    writeFileSync(join(dir.path, 'empty.tar'), '');
    expect((await rejection(checkImageIntegrity(join(dir.path, 'empty.tar')))).kind).toBe('integrity');
  });
});
