/**
 * Layer digests taken from the bytes as written: the layer's sha256 and the
 * sha256 and sha1 of recorded content ranges, inline or on a worker thread that reads
 * the output back. The threaded path needs the compiled worker, so it runs
 * through dist/ (`npm test` compiles first).
 */
import { createHash } from 'node:crypto';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  InlineLayerDigester,
  RangeDigester,
  type LayerHashThread as LayerHashThreadType,
} from '../../src/image/layer-hash.js';
import { HashingSink } from '../../src/image/sink.js';
import { planLayer, writeLayer, type ContentDigests, type LayerEntry } from '../../src/image/layer.js';
import { prng } from '../helpers/prng.js';

const work = mkdtempSync(join(tmpdir(), 'mkimg-layer-hash-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const sha1 = (b: Buffer) => createHash('sha1').update(b).digest('hex');

function randomBytes(rnd: () => number, n: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = Math.floor(rnd() * 256);
  return b;
}

describe('RangeDigester (through InlineLayerDigester)', () => {
  it('gives the stream sha256 and each range sha256 and sha1 whatever the chunking (seeded property test)', () => {
    for (let seed = 1; seed <= 40; seed++) {
      const rnd = prng(seed);
      const data = randomBytes(rnd, 1 + Math.floor(rnd() * 20_000));
      // Non-overlapping, increasing ranges, some adjacent, some one byte long.
      const ranges: [number, number][] = [];
      for (let at = Math.floor(rnd() * 50); at < data.length; ) {
        const len = 1 + Math.floor(rnd() * (rnd() < 0.3 ? 2 : 3000));
        if (at + len > data.length) break;
        ranges.push([at, at + len]);
        at += len + (rnd() < 0.4 ? 0 : Math.floor(rnd() * 700));
      }
      const d = new InlineLayerDigester(); // its RangeDigester takes the ranges, it takes the stream
      for (const [s, e] of ranges) d.addRange(s, e);
      for (let at = 0; at < data.length; ) {
        const n = Math.min(data.length - at, 1 + Math.floor(rnd() * (rnd() < 0.5 ? 10 : 5000)));
        d.written(data.subarray(at, at + n), at);
        at += n;
      }
      expect(d.finish(), `seed ${seed}`).toBe(sha256(data));
      const got = ranges.map((_, i) => d.digestsOf(i)).map((r) => [r.sha256, r.sha1]);
      expect(got, `seed ${seed}`).toEqual(
        ranges.map(([s, e]) => [sha256(data.subarray(s, e)), sha1(data.subarray(s, e))]),
      );
    }
  });

  it('refuses to finish while a range has not ended', () => {
    const d = new RangeDigester({ count: () => 1, start: () => 5, end: () => 50 }, () => {});
    d.update(Buffer.alloc(20), 0);
    expect(() => d.finish()).toThrow(/did not end inside the layer/);
    const inline = new InlineLayerDigester();
    inline.addRange(5, 50);
    inline.written(Buffer.alloc(20), 0);
    expect(() => inline.finish()).toThrow(/did not end inside the layer/);
  });
});

/** Input files of various sizes (empty, tiny, several buffers long) for layer entries. */
function inputs(seed: number): { entries: LayerEntry[]; bytes: Map<string, Buffer> } {
  const rnd = prng(seed);
  const bytes = new Map<string, Buffer>();
  const entries: LayerEntry[] = [];
  const sizes = [0, 1, 511, 512, 513, 70_000, 5 << 20, 9 << 20, 3];
  sizes.forEach((size, i) => {
    const host = join(work, `in-${seed}-${i}`);
    const b = randomBytes(rnd, Math.min(size, 4096));
    const full = Buffer.alloc(size);
    for (let at = 0; at < size; at += b.length) b.copy(full, at, 0, Math.min(b.length, size - at));
    writeFileSync(host, full);
    bytes.set(host, full);
    entries.push({ path: `/data/f${i}`, type: 'file', mode: 0o644, uid: 0, gid: 0, size, hostPath: host });
  });
  return { entries, bytes };
}

/** Write a layer of `entries` (each recorded) and a content entry after them; return what was reported. */
function writeRecorded(entries: LayerEntry[], sinkOf: (fd: number) => HashingSink, out: string) {
  const reported = new Map<string, ContentDigests>();
  let reportedBeforeContent = 0;
  const summary = Buffer.from('x'.repeat(100));
  const all: LayerEntry[] = [
    ...entries.map((e) => ({ ...e, record: (d: ContentDigests) => reported.set(e.path, d) })),
    {
      path: '/zz-summary',
      type: 'file',
      mode: 0o644,
      uid: 0,
      gid: 0,
      size: summary.length,
      content: () => {
        reportedBeforeContent = reported.size;
        return summary;
      },
    },
  ];
  const fd = openSync(out, 'w+');
  let layer;
  try {
    const sink = sinkOf(fd);
    try {
      layer = writeLayer(planLayer(all), 1700000000, sink);
    } finally {
      sink.close();
    }
  } finally {
    closeSync(fd);
  }
  return { layer, reported, reportedBeforeContent };
}

describe('writeLayer with recorded content', () => {
  it('inline: reports each file’s sha256 and sha1 before later content is made; the layer digest is the file’s', () => {
    const { entries, bytes } = inputs(7);
    const out = join(work, 'inline.tar');
    const r = writeRecorded(entries, (fd) => new HashingSink(fd, { digester: new InlineLayerDigester() }), out);
    expect(r.reportedBeforeContent).toBe(entries.length);
    for (const e of entries) {
      const b = bytes.get(e.hostPath!)!;
      expect(r.reported.get(e.path)).toEqual({ sha256: sha256(b), sha1: sha1(b), size: b.length });
    }
    expect(r.layer.sha256).toBe(sha256(readFileSync(out)));
  });

  it('made content of another size than planned is an internal error', () => {
    const fd = openSync(join(work, 'bad-content.tar'), 'w');
    try {
      const e: LayerEntry = {
        path: '/x',
        type: 'file',
        mode: 0o644,
        uid: 0,
        gid: 0,
        size: 10,
        content: () => Buffer.alloc(11),
      };
      expect(() => writeLayer(planLayer([e]), 0, new HashingSink(fd))).toThrow(/produced 11 bytes, planned 10/);
    } finally {
      closeSync(fd);
    }
  });
});

describe('LayerHashThread (compiled worker)', () => {
  const compiled = join(__dirname, '../../dist/image/layer-hash.js');
  const load = async () => {
    expect(existsSync(compiled), 'run `npm run build` first').toBe(true);
    return (await import(compiled)) as { LayerHashThread: typeof LayerHashThreadType };
  };
  const compiledSink = async () =>
    (await import(join(__dirname, '../../dist/image/sink.js'))) as { HashingSink: typeof HashingSink };

  it('gives the same digests and bytes as inline hashing, with the layer written at an offset', async () => {
    const { LayerHashThread } = await load();
    const { HashingSink: Sink } = await compiledSink();
    const { entries } = inputs(11);
    const thread = (await LayerHashThread.start())!;
    expect(thread).toBeDefined();
    await thread.ready; // booted (in a build it boots while the root is staged): it takes the job as soon as it is posted
    try {
      const inline = writeRecorded(entries, (fd) => new HashingSink(fd, { position: 4096 }), join(work, 'a.tar'));
      const threaded = writeRecorded(
        entries,
        (fd) =>
          new Sink(fd, {
            position: 4096,
            digester: thread.digester(fd, 4096, entries.length),
          }) as unknown as HashingSink,
        join(work, 'b.tar'),
      );
      expect(threaded.layer).toEqual(inline.layer);
      expect(threaded.reported).toEqual(inline.reported);
      expect(threaded.reportedBeforeContent).toBe(entries.length);
      expect(readFileSync(join(work, 'b.tar')).equals(readFileSync(join(work, 'a.tar')))).toBe(true);
      expect(threaded.layer.sha256).toBe(sha256(readFileSync(join(work, 'a.tar')).subarray(4096)));
    } finally {
      thread.close();
    }
  });

  it('a thread that never takes the job (gone): the writer takes it over at its first wait, same digests, no hang', async () => {
    const { LayerHashThread } = await load();
    const { HashingSink: Sink } = await compiledSink();
    const { entries } = inputs(13);
    const thread = (await LayerHashThread.start())!;
    thread.close(); // terminated: the job posted below is never taken
    const inline = writeRecorded(entries, (fd) => new HashingSink(fd), join(work, 'c.tar'));
    const takenOver = writeRecorded(
      entries,
      (fd) => new Sink(fd, { digester: thread.digester(fd, 0, entries.length) }) as unknown as HashingSink,
      join(work, 'd.tar'),
    );
    expect(takenOver.layer).toEqual(inline.layer);
    expect(takenOver.reported).toEqual(inline.reported);
  });

  it('a write that fails part way stops the thread before the output is closed (no hang)', async () => {
    const { LayerHashThread } = await load();
    const { HashingSink: Sink } = await compiledSink();
    const thread = (await LayerHashThread.start())!;
    try {
      const fd = openSync(join(work, 'aborted.tar'), 'w+');
      const sink = new Sink(fd, { digester: thread.digester(fd, 0, 1) });
      sink.write(Buffer.alloc(10 << 20, 1));
      expect(() => sink.copyFile(join(work, 'missing'), 10, '/x', { record: true })).toThrow(/ENOENT/);
      sink.close(); // returns once the thread no longer reads fd
      closeSync(fd);
    } finally {
      thread.close();
    }
  });

  it('a thread that fails fails the build with its reason', async () => {
    const { LayerHashThread } = await load();
    const thread = (await LayerHashThread.start())!;
    await thread.ready; // so that the thread takes the job (a writer that waits for a thread not started yet takes it over)
    try {
      const fd = openSync(join(work, 'failing.tar'), 'w');
      const digester = thread.digester(fd, 0, 1);
      digester.addRange(10, 600); // a range that the layer ends inside: the thread fails at the end
      const buf = digester.nextBuffer!();
      buf.fill(1, 0, 100);
      digester.written(buf.subarray(0, 100), 0);
      await new Promise((r) => setTimeout(r, 300)); // the thread takes the job and hashes the chunk
      expect(() => digester.finish(100)).toThrow(/layer digest thread: .*did not end inside the layer/);
      closeSync(fd);
    } finally {
      thread.close();
    }
  });

  it('bytes written from another buffer than the one handed out are refused', async () => {
    const { LayerHashThread } = await load();
    const thread = (await LayerHashThread.start())!;
    try {
      const fd = openSync(join(work, 'other-buffer.tar'), 'w');
      const digester = thread.digester(fd, 0, 1);
      digester.nextBuffer!();
      expect(() => digester.written(Buffer.alloc(100), 0)).toThrow(/another buffer than the one handed out/);
      digester.abort();
      closeSync(fd);
    } finally {
      thread.close();
    }
  });

  it('the writer fills two shared buffers in turn, waiting for the thread before reusing one (same digests)', async () => {
    const { LayerHashThread } = await load();
    const { HashingSink: Sink } = await compiledSink();
    const thread = (await LayerHashThread.start())!;
    await thread.ready;
    try {
      const fd = openSync(join(work, 'turns.tar'), 'w+');
      const digester = thread.digester(fd, 0, 1);
      await new Promise((r) => setTimeout(r, 100)); // the thread has taken the job: the writer waits for it, never takes over
      const seen = new Set<ArrayBufferLike>();
      const next = digester.nextBuffer!.bind(digester);
      digester.nextBuffer = () => {
        const b = next();
        seen.add(b.buffer);
        return b;
      };
      const data = Buffer.alloc(21 << 20);
      for (let i = 0; i < data.length; i += 4096) data[i] = (i >> 12) & 0xff;
      // To /dev/null: the writer outruns the thread's hashing, so it must wait before reusing a buffer.
      const fast = openSync('/dev/null', 'w');
      const range = digester.addRange(0, data.length);
      const sink = new Sink(fast, { digester });
      sink.write(data);
      const layer = sink.finish();
      closeSync(fast);
      closeSync(fd);
      expect(seen.size).toBe(2);
      expect(digester.digestsOf(range)).toEqual({ sha256: sha256(data), sha1: sha1(data) });
      expect(layer.sha256).toBe(sha256(data));
    } finally {
      thread.close();
    }
  });
});
