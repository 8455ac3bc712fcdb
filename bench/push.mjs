#!/usr/bin/env node
// Benchmark: push a 100 MB image to a loopback docker-registry with mkimg, side by side with
// `skopeo copy --dest-tls-verify=false oci-archive:image.tar docker://127.0.0.1:PORT/x:y`,
// each run into a fresh repository. Prints median wall times and the ratio.
//
// Needs: npm run build (dist/, or MKIMG_DIST=<compiled dir>), /usr/bin/docker-registry, skopeo.
// Usage: node bench/push.mjs [--runs N] [--mb SIZE]
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, openSync, writeSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import net from 'node:net';
import http from 'node:http';
import { randomBytes } from 'node:crypto';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const arg = (name, dflt) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const RUNS = arg('--runs', 5);
const dist = process.env.MKIMG_DIST ?? join(root, 'dist');
const MB = arg('--mb', 100);

let writeImageTar;
try {
  ({ writeImageTar } = await import(join(dist, 'image/write-image.js')));
  await import(join(dist, 'registry/push.js'));
} catch (e) {
  console.error(`bench/push.mjs: dist/ is missing or stale: run \`npm run build\` first (${e.message})`);
  process.exit(1);
}

function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

async function waitReady(url) {
  for (let i = 0; i < 200; i++) {
    const ok = await new Promise((r) => {
      http
        .get(url + '/v2/', (res) => {
          res.resume();
          r(res.statusCode === 200);
        })
        .on('error', () => r(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('docker-registry did not start');
}

function timeIt(cmd, args) {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 1 << 26 });
  const dt = Number(process.hrtime.bigint() - t0) / 1e9;
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
  return dt;
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const work = mkdtempSync(join(tmpdir(), 'mkimg-bench-push-'));
let registry;
try {
  // The image: one layer holding MB megabytes of random bytes (incompressible, like real binaries at worst).
  const data = join(work, 'data.bin');
  const fd = openSync(data, 'w');
  for (let left = MB * 1e6; left > 0; left -= 4 << 20) writeSync(fd, randomBytes(Math.min(4 << 20, left)));
  closeSync(fd);
  const image = join(work, 'image.tar');
  const size = MB * 1e6;
  const w = writeImageTar(
    {
      name: 'bench',
      tag: '1',
      architecture: 'amd64',
      sourceDateEpoch: 1700000000,
      config: { env: {}, labels: {}, exposedPorts: [] },
      manifestSha256: '0'.repeat(64),
    },
    [{ path: '/data.bin', type: 'file', mode: 0o644, uid: 0, gid: 0, size, hostPath: data }],
    image,
  );

  // A fresh registry (new port, empty storage) for every push: nothing to skip or mount, for
  // either tool (skopeo remembers blob locations per registry host and would mount them).
  let n = 0;
  async function withRegistry(fn) {
    const port = await freePort();
    const dir = join(work, `reg${n++}`);
    const config = join(work, `config${n}.yml`);
    writeFileSync(
      config,
      `version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: ${dir}\n  maintenance:\n    uploadpurging:\n      enabled: false\nhttp:\n  addr: 127.0.0.1:${port}\n  secret: bench\n`,
    );
    registry = spawn('/usr/bin/docker-registry', ['serve', config], { stdio: 'ignore' });
    try {
      await waitReady(`http://127.0.0.1:${port}`);
      return fn(`127.0.0.1:${port}`);
    } finally {
      registry.kill('SIGTERM');
      await new Promise((r) => registry.once('exit', r));
      registry = undefined;
      rmSync(dir, { recursive: true, force: true });
    }
  }

  const pushScript = `const { pushImage } = await import(${JSON.stringify(join(dist, 'registry/push.js'))}); await pushImage(process.argv[1], process.argv[2]);`;
  const mkimg = [];
  const skopeoDefault = [];
  const skopeoPreserve = [];
  for (let i = 0; i <= RUNS; i++) {
    const m = await withRegistry((host) =>
      timeIt(process.execPath, ['--input-type=module', '-e', pushScript, image, `${host}/bench/m${i}:1`]),
    );
    const s = await withRegistry((host) =>
      timeIt('skopeo', [
        'copy',
        '--quiet',
        '--dest-tls-verify=false',
        `oci-archive:${image}`,
        `docker://${host}/bench/s${i}:1`,
      ]),
    );
    const p = await withRegistry((host) =>
      timeIt('skopeo', [
        'copy',
        '--quiet',
        '--preserve-digests',
        '--dest-tls-verify=false',
        `oci-archive:${image}`,
        `docker://${host}/bench/p${i}:1`,
      ]),
    );
    if (i === 0) continue; // warm-up
    mkimg.push(m);
    skopeoDefault.push(s);
    skopeoPreserve.push(p);
  }
  const mm = median(mkimg);
  const sd = median(skopeoDefault);
  const sp = median(skopeoPreserve);
  console.log(
    `push of a ${MB} MB image (manifest ${w.manifestDigest.slice(0, 19)}…) to loopback docker-registry, median of ${RUNS} runs, fresh repository each:`,
  );
  console.log(`  mkimg push                               ${mm.toFixed(2)} s`);
  console.log(
    `  skopeo copy oci-archive: docker://       ${sd.toFixed(2)} s   (compresses the layer with gzip: a different image)`,
  );
  console.log(`  skopeo copy --preserve-digests           ${sp.toFixed(2)} s   (same bytes as mkimg pushes)`);
  console.log(
    `  ratio mkimg / skopeo:                    ${(mm / sd).toFixed(2)} (default), ${(mm / sp).toFixed(2)} (--preserve-digests)`,
  );
  console.log(
    JSON.stringify({
      mb: MB,
      runs: RUNS,
      mkimgSeconds: mm,
      skopeoSeconds: sd,
      skopeoPreserveDigestsSeconds: sp,
      ratio: mm / sd,
      ratioPreserveDigests: mm / sp,
    }),
  );
} finally {
  if (registry) {
    registry.kill('SIGTERM');
    await new Promise((r) => registry.once('exit', r));
  }
  rmSync(work, { recursive: true, force: true });
}
