/** HashingSink: positional output, content read from inside a host file (contentOffset), size checks. */
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { HashingSink } from '../../src/image/sink.js';
import type { MkimgError } from '../../src/util/errors.js';
import { planLayer, writeLayer, type LayerEntry } from '../../src/image/layer.js';
import { TarParser } from '../../src/image/tar-reader.js';

const work = mkdtempSync(join(tmpdir(), 'mkimg-sink-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
let n = 0;

/** Run `fill` on a sink over a fresh file; return the file's bytes and the sink's result. */
function withSink(
  fill: (s: HashingSink) => void,
  opts?: ConstructorParameters<typeof HashingSink>[1],
): { bytes: Buffer; sha256: string; size: number } {
  const out = join(work, `out${n++}`);
  const fd = openSync(out, 'w');
  try {
    const s = new HashingSink(fd, opts);
    fill(s);
    return { ...s.finish(), bytes: readFileSync(out) };
  } finally {
    closeSync(fd);
  }
}

describe('HashingSink.copyFile with an offset (content inside a host file)', () => {
  const host = join(work, 'data.tar');
  const data = randomBytes(9 << 20); // more than the 4 MiB buffer
  writeFileSync(host, data);

  it('copies exactly `size` bytes from `offset`, across buffer flushes, and hashes them', () => {
    const offset = 12345;
    const size = data.length - offset - 20000; // bytes follow the slice: not an error
    const r = withSink((s) => {
      s.write(Buffer.from('head'));
      s.copyFile(host, size, '/usr/bin/x', { offset });
    });
    const want = Buffer.concat([Buffer.from('head'), data.subarray(offset, offset + size)]);
    expect(r.bytes.equals(want)).toBe(true);
    expect(r).toMatchObject({ size: want.length, sha256: sha(want) });
  });

  it('a slice that ends exactly at the end of the file, and small slices, are fine', () => {
    const r = withSink((s) => {
      s.copyFile(host, 100, 'a', { offset: data.length - 100 });
      s.copyFile(host, 1, 'b', { offset: 0 });
    });
    expect(r.bytes.equals(Buffer.concat([data.subarray(data.length - 100), data.subarray(0, 1)]))).toBe(true);
  });

  it('checks the slice against expectSha256', () => {
    const slice = data.subarray(500, 1500);
    expect(
      withSink((s) => s.copyFile(host, 1000, 'a', { expectSha256: sha(slice), offset: 500 })).bytes.equals(slice),
    ).toBe(true);
    expect(() =>
      withSink((s) => s.copyFile(host, 1000, 'a', { expectSha256: sha(data.subarray(501, 1501)), offset: 500 })),
    ).toThrow(/changed after its pin was checked/);
  });

  it('fewer bytes than `size` at the offset is an error', () => {
    expect(() => withSink((s) => s.copyFile(host, 1000, '/etc/x', { offset: data.length - 999 }))).toThrow(
      /ends before the 1000 bytes at offset/,
    );
    expect(() => withSink((s) => s.copyFile(host, 10, '/etc/x', { offset: data.length }))).toThrow(/ends before/);
  });

  it('keeps a few sliced host files open between copies, and closes them all at finish() or close()', () => {
    const hosts = Array.from({ length: 40 }, (_, i) => {
      const f = join(work, `pkg${i}.tar`);
      writeFileSync(f, Buffer.alloc(1000, 65 + (i % 26)));
      return f;
    });
    const fds = () => readdirSync('/proc/self/fd').length;
    const before = fds();
    const want: Buffer[] = [];
    const r = withSink((s) => {
      // Interleaved, as files of several packages are in path order; more hosts than stay open.
      for (let k = 0; k < 200; k++) {
        const i = (k * 7) % 40;
        s.copyFile(hosts[i]!, 10, `f${k}`, { offset: k % 900 });
        want.push(Buffer.alloc(10, 65 + (i % 26)));
      }
      expect(fds()).toBeLessThanOrEqual(before + 1 + 16);
    });
    expect(r.bytes.equals(Buffer.concat(want))).toBe(true);
    expect(fds()).toBe(before);
    const out = join(work, 'closed');
    const fd = openSync(out, 'w');
    const s = new HashingSink(fd);
    s.copyFile(hosts[0]!, 10, 'x', { offset: 0 });
    s.close();
    closeSync(fd);
    expect(fds()).toBe(before);
  });

  it('the layer writer reads entries with contentOffset from inside their host file', () => {
    const entries: LayerEntry[] = [
      { path: '/a', type: 'file', mode: 0o644, uid: 0, gid: 0, size: 3000, hostPath: host, contentOffset: 7 },
      { path: '/b', type: 'file', mode: 0o755, uid: 0, gid: 0, size: 5 << 20, hostPath: host, contentOffset: 1 << 20 },
      {
        path: '/c',
        type: 'hardlink',
        mode: 0o644,
        uid: 0,
        gid: 0,
        size: 3000,
        hostPath: host,
        contentOffset: 7,
        linkTarget: '/a',
      },
    ];
    const r = withSink((s) => writeLayer(planLayer(entries), 0, s));
    const bodies = new Map<string, Buffer>();
    const p = new TarParser((h) => {
      const parts: Buffer[] = [];
      return {
        write: (b) => parts.push(Buffer.from(b)),
        end: () => bodies.set(`${h.name}:${h.type}`, Buffer.concat(parts)),
      };
    });
    p.push(r.bytes);
    p.end();
    expect(bodies.get('a:0')!.equals(data.subarray(7, 3007))).toBe(true);
    expect(bodies.get('b:0')!.equals(data.subarray(1 << 20, 6 << 20))).toBe(true);
    expect(bodies.get('c:1')!.length).toBe(0);
  });
});

describe('HashingSink.copyFile without an offset (the whole file)', () => {
  const host = join(work, 'whole');
  writeFileSync(host, Buffer.alloc(5000, 'w'));

  it('copies the file', () => {
    expect(withSink((s) => s.copyFile(host, 5000, 'w')).bytes.equals(Buffer.alloc(5000, 'w'))).toBe(true);
  });

  it('a file longer or shorter than `size` changed while being written', () => {
    expect(() => withSink((s) => s.copyFile(host, 4999, 'w'))).toThrow(/file grew while being written/);
    expect(() => withSink((s) => s.copyFile(host, 5001, 'w'))).toThrow(/file shrank while being written/);
    expect(() => withSink((s) => s.copyFile(host, 0, 'w'))).toThrow(/file grew while being written/);
  });

  it('a changed pinned file names the pin first', () => {
    expect(() => withSink((s) => s.copyFile(host, 4999, 'w', { expectSha256: sha(Buffer.alloc(4999, 'x')) }))).toThrow(
      /changed after its pin was checked/,
    );
  });

  it('an input (pinned or recorded) of another size than its walk saw is the user’s input error, not an internal one', () => {
    const kindOf = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        return [(e as MkimgError).kind, (e as MkimgError).message];
      }
      return undefined;
    };
    expect(kindOf(() => withSink((s) => s.copyFile(host, 5001, '/app/w', { record: true })))).toEqual([
      'input',
      expect.stringMatching(/file shrank while being written/),
    ]);
    expect(kindOf(() => withSink((s) => s.copyFile(host, 4000, '/app/w', { record: true })))).toEqual([
      'input',
      expect.stringMatching(/file grew while being written/),
    ]);
    expect(kindOf(() => withSink((s) => s.copyFile(host, 4000, '/app/w')))).toEqual([
      'internal',
      expect.stringMatching(/file grew/),
    ]);
  });

  it('recorded content: its sha256 and sha1, known once the sink is synced', () => {
    let got;
    withSink((s) => {
      const c = s.copyFile(host, 5000, '/app/w', { record: true })!;
      s.sync();
      got = s.digestsOf(c);
    });
    const b = Buffer.alloc(5000, 'w');
    expect(got).toEqual({ sha256: sha(b), sha1: createHash('sha1').update(b).digest('hex'), size: 5000 });
  });
});

describe('HashingSink positions', () => {
  it('writes from `position`, and a non-hashing sink can skip bytes written by another', () => {
    const out = join(work, 'pos');
    const fd = openSync(out, 'w');
    try {
      const inner = new HashingSink(fd, { position: 1000 });
      inner.write(Buffer.alloc(24, 'L'));
      expect(inner.finish()).toMatchObject({ size: 24, sha256: sha(Buffer.alloc(24, 'L')) });
      const outer = new HashingSink(fd, { hash: false });
      outer.write(Buffer.alloc(1000, 'h'));
      outer.skip(24);
      outer.zeros(100_000);
      expect(outer.finish().size).toBe(101_024);
      expect(() => new HashingSink(fd).skip(1)).toThrow(/cannot skip/);
    } finally {
      closeSync(fd);
    }
    expect(
      readFileSync(out).equals(Buffer.concat([Buffer.alloc(1000, 'h'), Buffer.alloc(24, 'L'), Buffer.alloc(100_000)])),
    ).toBe(true);
  });
});
