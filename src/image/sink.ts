/**
 * A buffered, hashing file sink: everything written is hashed on the way out,
 * so a layer's digest is known the moment its last byte is written (one walk,
 * no second read). Content is read straight into the sink's buffer.
 */
import { createHash, type Hash } from 'node:crypto';
import { closeSync, openSync, readSync, writeSync } from 'node:fs';
import { MkimgError } from '../util/errors.js';

const BUF_SIZE = 4 << 20;

export class HashingSink {
  private readonly buf = Buffer.allocUnsafe(BUF_SIZE);
  private used = 0;
  private hash: Hash | undefined;
  bytes = 0;

  /** `hash: false` for a sink whose digest nobody needs (the outer image tar). */
  constructor(
    private readonly fd: number,
    private readonly opts: { hash: boolean } = { hash: true },
  ) {
    this.hash = opts.hash ? createHash('sha256') : undefined;
  }

  write(data: Buffer): void {
    if (data.length > BUF_SIZE - this.used) this.flush();
    if (data.length >= BUF_SIZE) {
      this.emit(data);
      return;
    }
    data.copy(this.buf, this.used);
    this.used += data.length;
  }

  zeros(n: number): void {
    if (n > 0) this.write(Buffer.alloc(n));
  }

  /**
   * Copy exactly `size` bytes of a host file into the sink; a size change is an
   * error. With `expectSha256`, the bytes copied must have that digest: for
   * content read straight from an input pinned earlier, so a file changed
   * since its pin was checked cannot slip into the image.
   */
  copyFile(hostPath: string, size: number, what: string, expectSha256?: string, offset?: number): void {
    const fd = openSync(hostPath, 'r');
    const check = expectSha256 ? createHash('sha256') : undefined;
    // With an offset the content is a slice of a larger file (a package's data tar): read exactly that slice.
    let pos = offset ?? null;
    try {
      let left = size;
      while (left > 0) {
        if (this.used === BUF_SIZE) this.flush();
        const want = Math.min(left, BUF_SIZE - this.used);
        const n = readSync(fd, this.buf, this.used, want, pos);
        if (pos !== null) pos += n;
        if (n === 0) throw new MkimgError('internal', `${what}: file shrank while being written (${hostPath})`);
        check?.update(this.buf.subarray(this.used, this.used + n));
        this.used += n;
        left -= n;
      }
      if (check && check.digest('hex') !== expectSha256) {
        throw new MkimgError('input', `${what}: ${hostPath} changed after its pin was checked`, { hint: 'build again once the file is no longer being written' });
      }
      if (offset === undefined && readSync(fd, Buffer.alloc(1), 0, 1, null) !== 0) {
        throw new MkimgError('internal', `${what}: file grew while being written (${hostPath})`);
      }
    } finally {
      closeSync(fd);
    }
  }

  /** Flush and return the sha256 (hex) and byte count of everything written. */
  finish(): { sha256: string; size: number } {
    this.flush();
    const out = { sha256: this.hash ? this.hash.digest('hex') : '', size: this.bytes };
    this.hash = this.opts.hash ? createHash('sha256') : undefined;
    this.bytes = 0;
    return out;
  }

  private flush(): void {
    if (this.used === 0) return;
    this.emit(this.buf.subarray(0, this.used));
    this.used = 0;
  }

  private emit(data: Buffer): void {
    this.hash?.update(data);
    let off = 0;
    while (off < data.length) off += writeSync(this.fd, data, off, data.length - off);
    this.bytes += data.length;
  }
}
