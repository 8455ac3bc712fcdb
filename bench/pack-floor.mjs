#!/usr/bin/env node
// The least a Node.js packer of bench/pack.mjs's tree does, for comparison
// with `mkimg build`: walk the tree (readdir), then per file open, fstat,
// read, write into one output file (512-byte gaps for headers), close; the
// digests mkimg needs (sha256 and sha1 of each file, sha256 of the whole
// output) taken on a second thread that reads the output back, as mkimg's
// layer hashing does. No manifest, no tar headers, no SBOM, no pins, no OCI
// layout. Not part of mkimg: a measuring stick for what Node.js start-up and
// these syscalls cost on this machine.
//   node bench/pack-floor.mjs TREE OUT
import { closeSync, fstatSync, openSync, readdirSync, readSync, renameSync, writeSync } from 'node:fs';
import * as crypto from 'node:crypto';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';

const CHUNK = 4 << 20;

if (!isMainThread) {
  // Hash what the writer has written, right behind it: [0] bytes written, [1] done, [2] file ranges published.
  const { fd, state, ranges } = workerData;
  const st = new Float64Array(state);
  const seq = new Int32Array(ranges, 0, 2);
  const rg = new Float64Array(ranges, 8);
  const buf = Buffer.allocUnsafe(CHUNK);
  const whole = crypto.createHash('sha256');
  let at = 0;
  let next = 0;
  let cur; // a file that started in an earlier piece: its hashes so far
  for (;;) {
    const s = Atomics.load(seq, 0);
    const written = st[0];
    if (at < written) {
      const n = readSync(fd, buf, 0, Math.min(CHUNK, written - at), at);
      const piece = buf.subarray(0, n);
      whole.update(piece);
      while (next < Atomics.load(seq, 1) && rg[2 * next] < at + n) {
        const start = rg[2 * next];
        const end = rg[2 * next + 1];
        if (!cur && start >= at && end <= at + n) {
          // Wholly inside this piece (most files): one-shot digests.
          const part = piece.subarray(start - at, end - at);
          crypto.hash('sha256', part, 'buffer');
          crypto.hash('sha1', part, 'buffer');
          next++;
          continue;
        }
        cur ??= [crypto.createHash('sha256'), crypto.createHash('sha1')];
        const part = piece.subarray(Math.max(start, at) - at, Math.min(end, at + n) - at);
        cur[0].update(part);
        cur[1].update(part);
        if (end > at + n) break; // continues in the next piece
        cur[0].digest();
        cur[1].digest();
        cur = undefined;
        next++;
      }
      at += n;
      continue;
    }
    if (st[1] === 1) break;
    Atomics.wait(seq, 0, s, 20);
  }
  parentPort.postMessage(whole.digest('hex'));
} else {
  const [tree, out] = process.argv.slice(2);
  const fd = openSync(out + '.tmp', 'w+');
  const state = new SharedArrayBuffer(16);
  const st = new Float64Array(state);
  const ranges = new SharedArrayBuffer(8 + 16 * 200_000);
  const seq = new Int32Array(ranges, 0, 2);
  const rg = new Float64Array(ranges, 8);
  const worker = new Worker(new URL(import.meta.url), { workerData: { fd, state, ranges } });
  const digest = new Promise((resolve) => worker.once('message', resolve));

  const files = [];
  const walk = (dir) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      if (e.isDirectory()) walk(`${dir}/${e.name}`);
      else if (e.isFile()) files.push(`${dir}/${e.name}`);
    }
  };
  walk(tree);
  files.sort();

  const buf = Buffer.alloc(CHUNK + 1);
  let used = 0;
  let base = 0;
  let published = 0;
  const flush = () => {
    for (let o = 0; o < used; ) o += writeSync(fd, buf, o, used - o, base + o);
    base += used;
    used = 0;
    st[0] = base;
    Atomics.store(seq, 1, published);
    Atomics.add(seq, 0, 1);
    Atomics.notify(seq, 0);
  };
  for (const f of files) {
    const ffd = openSync(f, 'r');
    const size = fstatSync(ffd).size;
    if (used + 512 + size > CHUNK) flush();
    buf.fill(0, used, used + 512);
    used += 512;
    rg[2 * published] = base + used;
    rg[2 * published + 1] = base + used + size;
    published++;
    for (let left = size; left > 0; ) {
      const n = readSync(ffd, buf, used, left, null);
      used += n;
      left -= n;
    }
    closeSync(ffd);
  }
  flush();
  st[1] = 1;
  Atomics.add(seq, 0, 1);
  Atomics.notify(seq, 0);
  const hex = await digest;
  await worker.terminate();
  closeSync(fd);
  renameSync(out + '.tmp', out);
  process.stdout.write(`${files.length} files, sha256 ${hex}\n`);
}
