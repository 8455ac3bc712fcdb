/**
 * A buffered, hashing file sink: everything written is hashed on the way out
 * (by a LayerDigester: on this thread, or on a worker right behind the
 * writer), so a layer's digest is known the moment its last byte is written
 * (one walk, no second read). Content is read straight into the sink's buffer.
 *
 * The sink writes at explicit file positions (pwrite), starting at
 * `position`: the image writer puts the layer's bytes straight at their final
 * offset inside the image tar, then writes the rest of the tar around them.
 */
import { createHash } from 'node:crypto';
import { closeSync, openSync, readSync, writeSync } from 'node:fs';
import { MkimgError } from '../util/errors.js';
import { InlineLayerDigester, SINK_BUFFER_BYTES as BUF_SIZE, type LayerDigester } from './layer-hash.js';

/** The fd of a sink that only hashes (digestOnly). */
const NO_FILE = -1;
/** Host files kept open for content read from inside them (package data tars hold many files each). */
const MAX_OPEN_SLICED = 16;
/** The digests of empty content (recorded without a range). */
const EMPTY = { sha256: createHash('sha256').digest('hex'), sha1: createHash('sha1').digest('hex') };

/** What copyFile returns for recorded content: its size and the digester's range for its digests (none when empty). */
export interface CopiedContent {
  size: number;
  range?: number;
}

export class HashingSink {
  // One spare byte past BUF_SIZE: copyFile reads one byte beyond a file's
  // last chunk to see whether the file grew, without another read call.
  // A digester on another thread may hand out the buffers (it hashes them
  // where they are): then the next one is asked for after each write.
  private buf: Buffer;
  private used = 0;
  private finished: { sha256: string; size: number } | undefined;
  private ended = false;
  private readonly digester: LayerDigester | undefined;
  /** File position at which the buffer's first byte goes. */
  private pos: number;
  private start: number;
  private readonly onWritten: ((data: Buffer) => void) | undefined;
  /** hostPath → fd, least recently used first: files content is sliced from (copyFile with an offset). */
  private readonly sliced = new Map<string, number>();

  /**
   * `hash: false` for a sink whose digest nobody needs (the outer image tar).
   * `position`: the file offset of the sink's first byte (default 0).
   * `digester`: who hashes (default: inline, on this thread). A sink hashes one stream: finish() ends it.
   * `onWritten`: given every run of bytes once written, in order (a compressor taking the layer as it is
   * written); the buffer is reused after the call.
   */
  constructor(
    private readonly fd: number,
    opts: { hash?: boolean; position?: number; digester?: LayerDigester; onWritten?: (data: Buffer) => void } = {},
  ) {
    this.digester = opts.hash === false ? undefined : (opts.digester ?? new InlineLayerDigester());
    this.buf = this.digester?.nextBuffer?.() ?? Buffer.allocUnsafe(BUF_SIZE + 1);
    this.start = this.pos = opts.position ?? 0;
    this.onWritten = opts.onWritten;
  }

  /** A sink that writes nothing: the digest of what would be written, hashed on this thread. */
  static digestOnly(): HashingSink {
    return new HashingSink(NO_FILE);
  }

  /** Bytes written (or skipped) so far. */
  get bytes(): number {
    return this.pos + this.used - this.start;
  }

  write(data: Buffer): void {
    if (data.length > BUF_SIZE - this.used) this.flush();
    if (data.length >= BUF_SIZE && this.digester?.nextBuffer) {
      // The digester hashes only its own buffers: big data goes through them.
      const piece = BUF_SIZE >> 1;
      for (let at = 0; at < data.length; at += piece) this.write(data.subarray(at, at + piece));
      return;
    }
    if (data.length >= BUF_SIZE) {
      this.emit(data);
      return;
    }
    data.copy(this.buf, this.used);
    this.used += data.length;
  }

  zeros(n: number): void {
    while (n > 0) {
      if (this.used === BUF_SIZE) this.flush();
      const k = Math.min(n, BUF_SIZE - this.used);
      this.buf.fill(0, this.used, this.used + k);
      this.used += k;
      n -= k;
    }
  }

  /**
   * Pass over `n` bytes of the file without writing them: they were written
   * by another sink (the layer, inside the image tar). Only for a sink that
   * does not hash.
   */
  skip(n: number): void {
    if (this.digester) throw new MkimgError('internal', 'a hashing sink cannot skip bytes');
    this.flush();
    this.pos += n;
  }

  /**
   * Copy exactly `size` bytes of a host file into the sink. With `offset`,
   * the content is the slice [offset, offset + size) of a larger file (a
   * package's data tar): only that slice is read, and fewer bytes than
   * `size` there is an error. Without it, the content is the whole file: a
   * file shorter or longer than `size` is an error (it changed while being
   * written).
   *
   * For content read straight from an input outside the staging root:
   * - `expectSha256`: the bytes copied must have that digest (the input's pin
   *   was checked before), so a file changed since cannot slip into the image;
   * - `record`: the digester hashes the bytes copied (sha256 and sha1), for
   *   the caller to check against the pin: what is checked is exactly what
   *   the image holds. They are known once the digester has passed the
   *   content's end: `digestsOf()` after sync() or finish(). (On a digester
   *   thread, which reads the bytes back from the output, this thread only
   *   reads and writes.)
   */
  copyFile(
    hostPath: string,
    size: number,
    what: string,
    opts: { offset?: number; expectSha256?: string; record?: boolean } = {},
  ): CopiedContent | undefined {
    const { offset, expectSha256, record } = opts;
    const whole = offset === undefined;
    const fd = whole ? openSync(hostPath, 'r') : this.slicedFd(hostPath);
    const check = expectSha256 !== undefined ? createHash('sha256') : undefined;
    const input = check !== undefined || record; // content from outside the staging root: a change is the user's
    let range: number | undefined;
    if (record && size > 0) {
      if (!this.digester) throw new MkimgError('internal', 'record: a sink that does not hash');
      range = this.digester.addRange(this.bytes, this.bytes + size);
    }
    let at = offset ?? 0;
    try {
      let left = size;
      let probed = false;
      let grew = false;
      while (left > 0) {
        if (this.used === BUF_SIZE) this.flush();
        const want = Math.min(left, BUF_SIZE - this.used);
        // The whole file's last chunk: ask for one byte more (the buffer has room for it).
        probed = whole && want === left;
        let n = readSync(fd, this.buf, this.used, probed ? want + 1 : want, at);
        if (n === 0) {
          throw new MkimgError(
            input ? 'input' : 'internal',
            whole
              ? `${what}: file shrank while being written (${hostPath})`
              : `${what}: ${hostPath} ends before the ${size} bytes at offset ${offset}`,
            input ? { hint: 'build again once the file is no longer being written' } : {},
          );
        }
        if (n > left) {
          grew = true; // reported after the digest check, which names the more likely cause
          n = left;
        }
        check?.update(this.buf.subarray(this.used, this.used + n));
        this.used += n;
        left -= n;
        at += n;
      }
      const sha256 = check?.digest('hex');
      if (expectSha256 !== undefined && sha256 !== expectSha256) {
        throw new MkimgError('input', `${what}: ${hostPath} changed after its pin was checked`, {
          hint: 'build again once the file is no longer being written',
        });
      }
      // The last read asked for one byte past `size`; a regular file reads in full
      // up to its end, so getting none means the file ends there. (No read was made
      // for an empty file: look for a first byte.)
      if (whole && (grew || (!probed && readSync(fd, Buffer.alloc(1), 0, 1, at) !== 0))) {
        throw new MkimgError(
          input ? 'input' : 'internal',
          `${what}: file grew while being written (${hostPath})`,
          input ? { hint: 'build again once the file is no longer being written' } : {},
        );
      }
      return record ? { size, range } : undefined;
    } finally {
      if (whole) closeSync(fd);
    }
  }

  /** Wait until the digester has hashed everything written so far (the buffer is flushed first). */
  sync(): void {
    this.flush();
    this.digester?.sync(this.bytes);
  }

  /** Digests of recorded content (none is asked for empty content). After sync() or finish(). */
  digestsOf(c: CopiedContent): { sha256: string; sha1: string; size: number } {
    if (c.range === undefined) return { sha256: EMPTY.sha256, sha1: EMPTY.sha1, size: 0 };
    const d = this.digester!.digestsOf(c.range);
    return { sha256: d.sha256, sha1: d.sha1, size: c.size };
  }

  private slicedFd(hostPath: string): number {
    let fd = this.sliced.get(hostPath);
    if (fd !== undefined) {
      this.sliced.delete(hostPath); // most recently used goes last
    } else {
      if (this.sliced.size >= MAX_OPEN_SLICED) {
        const [oldest, oldFd] = this.sliced.entries().next().value as [string, number];
        this.sliced.delete(oldest);
        closeSync(oldFd);
      }
      fd = openSync(hostPath, 'r');
    }
    this.sliced.set(hostPath, fd);
    return fd;
  }

  /** Close the host files kept open for sliced content. finish() does it too; call it when giving up early (it stops the digester). */
  close(): void {
    for (const fd of this.sliced.values()) closeSync(fd);
    this.sliced.clear();
    if (!this.ended) this.digester?.abort();
  }

  /** Flush and return the sha256 (hex) and byte count of everything written. The sink is done (a second call returns the same). */
  finish(): { sha256: string; size: number } {
    if (this.finished) return this.finished;
    for (const fd of this.sliced.values()) closeSync(fd);
    this.sliced.clear();
    this.flush();
    this.ended = true; // a digester that fails to finish has stopped: close() need not stop it
    this.finished = { sha256: this.digester ? this.digester.finish(this.bytes) : '', size: this.bytes };
    return this.finished;
  }

  private flush(): void {
    if (this.used === 0) return;
    const n = this.used;
    this.used = 0;
    this.emit(this.buf.subarray(0, n));
    if (this.digester?.nextBuffer) this.buf = this.digester.nextBuffer();
  }

  private emit(data: Buffer): void {
    let off = 0;
    if (this.fd === NO_FILE) off = data.length;
    while (off < data.length) off += writeSync(this.fd, data, off, data.length - off, this.pos + off);
    // After the write: a digester on another thread reads these bytes back.
    this.digester?.written(data, this.pos - this.start);
    this.onWritten?.(data);
    this.pos += data.length;
  }
}
