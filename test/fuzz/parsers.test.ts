/**
 * Fuzzing every parser of outside bytes: a valid input, mutated by a seeded
 * PRNG (bit flips, boundary bytes, truncation, repeated and spliced slices),
 * fed to the parser. The only failure allowed is an MkimgError (a clear line
 * with an exit code): any other exception, or an input that takes longer
 * than HANG_MS, fails the test and names the seed and iteration.
 *
 * Each parser runs for MKIMG_FUZZ_SECONDS (default 2) with MKIMG_FUZZ_SEED
 * (default 12); a release runs longer, e.g.
 *   MKIMG_FUZZ_SECONDS=600 MKIMG_FUZZ_SEED=$RANDOM npx vitest run test/fuzz
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { prng } from '../helpers/prng.js';
import { arBytes, controlText, tarBytes } from '../helpers/hostile-deb.js';
import { MkimgError } from '../../src/util/errors.js';
import { readDebBuffer, parseControlStanza } from '../../src/debian/deb/deb.js';
import { readTar } from '../../src/debian/deb/tar.js';
import { packageRecordFromControl, parsePackagesIndex } from '../../src/debian/packages.js';
import { parseReleaseChecked } from '../../src/debian/release.js';
import { parseManifest } from '../../src/manifest/load.js';
import { scanImageTar } from '../../src/verify/read-image.js';
import { openImageTar } from '../../src/oci/image-tar.js';
import { inspectImage } from '../../src/inspect/inspect.js';
import { pullImage } from '../../src/registry/pull.js';
import { mkimg } from '../helpers/cli.js';

const SECONDS = Number(process.env.MKIMG_FUZZ_SECONDS ?? 2);
const SEED = Number(process.env.MKIMG_FUZZ_SEED ?? 12);
const HANG_MS = 10_000;
const TEST_TIMEOUT = SECONDS * 1000 + HANG_MS + 30_000;

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'mkimg-fuzz-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const BOUNDARY = [0, 0xff, 0x7f, 0x80, 0x30, 0x37, 0x20, 0x0a, 0x2f, 0x2e, 0x3a];

/** One mutation of `input`, chosen by `rnd`. */
function mutate(input: Buffer, rnd: () => number): Buffer {
  const b = Buffer.from(input);
  const at = (): number => Math.floor(rnd() * Math.max(1, b.length));
  const rounds = 1 + Math.floor(rnd() * 4);
  let out = b;
  for (let r = 0; r < rounds; r++) {
    const kind = Math.floor(rnd() * 7);
    if (out.length === 0) return Buffer.from([Math.floor(rnd() * 256)]);
    switch (kind) {
      case 0: {
        const i = at() % out.length;
        out[i] = out[i]! ^ (1 << Math.floor(rnd() * 8));
        break;
      }
      case 1:
        out[at() % out.length] = BOUNDARY[Math.floor(rnd() * BOUNDARY.length)]!;
        break;
      case 2:
        out[at() % out.length] = Math.floor(rnd() * 256);
        break;
      case 3:
        out = out.subarray(0, at() % out.length);
        break;
      case 4: {
        const i = at() % out.length;
        const n = Math.floor(rnd() * 64);
        out = Buffer.concat([out.subarray(0, i), out.subarray(i, i + n), out.subarray(i)]);
        break;
      }
      case 5: {
        const i = at() % out.length;
        out = Buffer.concat([
          out.subarray(0, i),
          Buffer.from(Array.from({ length: 1 + Math.floor(rnd() * 16) }, () => Math.floor(rnd() * 256))),
          out.subarray(i),
        ]);
        break;
      }
      default: {
        const i = at() % out.length;
        const j = at() % out.length;
        out = Buffer.concat([out.subarray(0, Math.min(i, j)), out.subarray(Math.max(i, j))]);
      }
    }
  }
  return out;
}

/** Run `parse` on mutations of `valid` for SECONDS; only MkimgError may escape it. */
async function fuzz(
  name: string,
  valid: Buffer,
  parse: (input: Buffer) => unknown | Promise<unknown>,
): Promise<number> {
  const seedOf = (s: string): number => [...s].reduce((a, c) => (a * 31 + c.charCodeAt(0)) >>> 0, SEED);
  const rnd = prng(seedOf(name));
  // The valid input parses.
  await parse(valid);
  const until = Date.now() + SECONDS * 1000;
  let n = 0;
  for (; Date.now() < until; n++) {
    const input = mutate(valid, rnd);
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        Promise.resolve().then(() => parse(input)),
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error(`hang: more than ${HANG_MS} ms`)), HANG_MS);
        }),
      ]);
    } catch (e) {
      if (!(e instanceof MkimgError)) {
        const saved = join(dir, `${name}-seed${SEED}-iter${n}.bin`);
        writeFileSync(saved, input);
        expect.fail(
          `${name}: seed ${SEED}, iteration ${n}: ${e instanceof Error ? e.stack : String(e)} (input kept in ${saved} until the run ends)`,
        );
      }
    } finally {
      clearTimeout(timer);
    }
  }
  return n;
}

async function drainDeb(path: string, bytes: Buffer): Promise<void> {
  const d = await readDebBuffer(path, bytes);
  for await (const e of d.entries()) for await (const _ of e.body);
}

describe(`fuzz (${SECONDS} s per parser, seed ${SEED})`, () => {
  test(
    'ar + control + tar of a .deb',
    async () => {
      const ctl = gzipSync(
        tarBytes([
          { name: './', type: '5' },
          { name: './control', content: controlText('fz') + 'Installed-Size: 4\n' },
          { name: './md5sums', content: 'x  usr/a\n' },
        ]),
      );
      const data = gzipSync(
        tarBytes([
          { name: './', type: '5' },
          { name: './usr/', type: '5' },
          { name: './usr/a', content: 'hello\n' },
          { name: './usr/l', type: '2', linkname: 'a' },
          { name: './usr/h', type: '1', linkname: './usr/a' },
          { name: './usr/p', content: 'pax', pax: { path: './usr/long-name-from-pax' } },
        ]),
      );
      const deb = arBytes([
        { name: 'debian-binary', data: Buffer.from('2.0\n') },
        { name: 'control.tar.gz', data: ctl },
        { name: 'data.tar.gz', data },
      ]);
      expect(await fuzz('deb', deb, (b) => drainDeb('fuzz.deb', b))).toBeGreaterThan(0);
    },
    TEST_TIMEOUT,
  );

  test(
    'tar (the reader of .deb data archives)',
    async () => {
      const tar = tarBytes([
        { name: './', type: '5' },
        { name: './etc/', type: '5', mode: 0o755 },
        { name: './etc/f', content: 'x'.repeat(700) },
        { name: './etc/s', type: '2', linkname: '../etc/f' },
        { name: './etc/p', content: '1', pax: { path: './etc/pp', linkpath: 'z' } },
        { name: './dev/c', type: '3', devmajor: 1, devminor: 3 },
      ]);
      const n = await fuzz('tar', tar, async (b) => {
        for await (const e of readTar(
          (async function* () {
            yield b;
          })(),
          'fuzz.tar',
        ))
          for await (const _ of e.body);
      });
      expect(n).toBeGreaterThan(0);
    },
    TEST_TIMEOUT,
  );

  test(
    'control files and Packages indexes (deb822)',
    async () => {
      const stanza =
        'Package: a\nVersion: 1:2.3-4\nArchitecture: amd64\nDepends: b (>= 1), c | d [amd64], e:any\nProvides: f (= 1)\nPre-Depends: g\nConflicts: h (<< 2)\nBreaks: i\nMulti-Arch: same\nFilename: pool/a.deb\nSize: 10\nSHA256: ' +
        'a'.repeat(64) +
        '\nDescription: x\n more\n .\n';
      const index = Buffer.from(`${stanza}\n${stanza.replace('Package: a', 'Package: b')}\n`);
      const relations = (r: {
        depends: unknown;
        preDepends: unknown;
        provides: unknown;
        conflicts: unknown;
        breaks: unknown;
      }) => [r.depends, r.preDepends, r.provides, r.conflicts, r.breaks];
      // A local .deb's control file: parsed, then made a package record (as lock does).
      expect(
        await fuzz('control', Buffer.from(stanza), (b) =>
          relations(
            packageRecordFromControl(
              parseControlStanza(b.toString('utf8')),
              { filename: 'x.deb', sha256: 'a'.repeat(64), size: 1 },
              { suite: 'local', rank: -1 },
            ),
          ),
        ),
      ).toBeGreaterThan(0);
      expect(
        await fuzz('packages', index, (b) => {
          for (const r of parsePackagesIndex(b.toString('utf8'), { suite: 's', rank: 0, url: 'file:///fuzz' }))
            relations(r);
        }),
      ).toBeGreaterThan(0);
    },
    TEST_TIMEOUT * 2,
  );

  test(
    'InRelease (the signed Release text)',
    async () => {
      const text = Buffer.from(
        'Origin: T\nLabel: T\nSuite: stable\nCodename: s\nDate: Tue, 14 Nov 2023 22:13:20 UTC\nValid-Until: Tue, 14 Nov 2090 22:13:20 UTC\nArchitectures: amd64\nComponents: main\nAcquire-By-Hash: yes\nSHA256:\n ' +
          'b'.repeat(64) +
          ' 120 main/binary-amd64/Packages\n ' +
          'c'.repeat(64) +
          ' 90 main/binary-amd64/Packages.xz\n',
      );
      expect(
        await fuzz('release', text, (b) =>
          parseReleaseChecked(b.toString('utf8'), { suite: 'stable', url: 'file:///fuzz' }, new Date(1.7e12)),
        ),
      ).toBeGreaterThan(0);
    },
    TEST_TIMEOUT,
  );

  test(
    'the manifest loader',
    async () => {
      const m = Buffer.from(
        'apiVersion: mkimg/v1\nname: test/fuzz\ntag: "1"\nsourceDateEpoch: 1700000000\nsources:\n  - url: http://127.0.0.1:1/debian\n    suites: [stable]\n    allowUnsigned: true\npackages: [aa, bb=1.0]\naccounts:\n  users: [{name: app, uid: 1000}]\nconfig:\n  entrypoint: ["/bin/a", &x "b"]\n  cmd: [*x]\n  env: {A: "1"}\n  user: app\n  exposedPorts: ["80/tcp"]\n  stopSignal: SIGTERM\n  workdir: /srv\nminimize:\n  checks:\n    - args: ["/bin/a"]\n      expect: {exitCode: 0, stdout: "x"}\n',
      );
      mkdirSync(join(dir, 'm'), { recursive: true });
      expect(await fuzz('manifest', m, (b) => parseManifest(b, join(dir, 'm', 'manifest.yaml')))).toBeGreaterThan(0);
    },
    TEST_TIMEOUT,
  );

  test(
    'the image tar readers (verify, push, inspect)',
    async () => {
      const proj = join(dir, 'img');
      mkdirSync(proj);
      writeFileSync(join(proj, 'a.txt'), 'a\n');
      const manifest = join(proj, 'manifest.yaml');
      writeFileSync(
        manifest,
        'apiVersion: mkimg/v1\nname: test/fz\ntag: "1"\nsourceDateEpoch: 1700000000\nfiles:\n  - src: a.txt\n    dest: /a.txt\nminimize: false\n',
      );
      expect(mkimg(['lock', manifest]).code).toBe(0);
      const image = join(proj, 'image.tar');
      const built = mkimg(['build', manifest, '-o', image]);
      expect(built.stderr).toBe('');
      const valid = (await import('node:fs')).readFileSync(image);
      const p = join(dir, 'fz.tar');
      const n = await fuzz('image-tar', valid, async (b) => {
        writeFileSync(p, b);
        await scanImageTar(p);
        await openImageTar(p);
        await inspectImage(p, { files: true });
      });
      expect(n).toBeGreaterThan(0);
    },
    TEST_TIMEOUT + 60_000,
  );

  test(
    'registry JSON (manifests, indexes) through mkimg pull',
    async () => {
      const sha = (b: Buffer) => 'sha256:' + createHash('sha256').update(b).digest('hex');
      const layer = Buffer.alloc(1024, 1);
      // An uncompressed layer's diff_id is its own digest (pull checks the config lists it).
      const config = Buffer.from(
        JSON.stringify({
          architecture: 'amd64',
          os: 'linux',
          created: '2023-11-14T22:13:20Z',
          rootfs: { type: 'layers', diff_ids: [sha(layer)] },
        }),
      );
      const manifest = Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha(config), size: config.length },
          layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha(layer), size: layer.length }],
        }),
      );
      const index = Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: 'application/vnd.oci.image.index.v1+json',
          manifests: [
            {
              mediaType: 'application/vnd.oci.image.manifest.v1+json',
              digest: sha(manifest),
              size: manifest.length,
              platform: { os: 'linux', architecture: 'amd64' },
            },
          ],
        }),
      );
      let current = { top: index, manifest, config };
      const server = http.createServer((req, res) => {
        const url = req.url ?? '';
        if (url === '/v2/' || url === '/v2') return res.writeHead(200).end('{}');
        const m = /^\/v2\/fz\/(manifests|blobs)\/(.+)$/.exec(url);
        if (!m) return res.writeHead(404).end();
        const send = (b: Buffer, type: string) =>
          res.writeHead(200, { 'content-type': type, 'content-length': String(b.length) }).end(b);
        if (m[1] === 'manifests' && m[2] === '1') return send(current.top, 'application/vnd.oci.image.index.v1+json');
        if (m[1] === 'manifests') return send(current.manifest, 'application/vnd.oci.image.manifest.v1+json');
        if (m[2] === sha(config)) return send(current.config, 'application/octet-stream');
        if (m[2] === sha(layer)) return send(layer, 'application/octet-stream');
        res.writeHead(404).end();
      });
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      const host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
      const out = join(dir, 'pulled.tar');
      try {
        const pull = () => pullImage(`${host}/fz:1`, out, { retries: 0, deadlineMs: HANG_MS });
        let n = 0;
        for (const which of ['top', 'manifest', 'config'] as const) {
          n += await fuzz(`registry-${which}`, current[which], async (b) => {
            // The mutated document is served; the others stay valid.
            current = { top: index, manifest, config, [which]: b };
            await pull();
          });
        }
        expect(n).toBeGreaterThan(0);
      } finally {
        server.closeAllConnections();
        await new Promise((r) => server.close(r));
      }
    },
    TEST_TIMEOUT * 3,
  );
});
