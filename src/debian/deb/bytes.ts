/**
 * A pull reader over an async stream of chunks: exact reads, bounded streaming
 * of the next n bytes, skipping. The ar and tar readers are built on it so a
 * .deb is read front to back once, never seeked, never loaded whole.
 */
import { MkimgError } from '../../util/errors.js';

const EMPTY = Buffer.alloc(0);

export class ByteReader {
  private readonly it: AsyncIterator<Uint8Array>;
  private buf: Buffer = EMPTY;
  private ended = false;
  /** Bytes handed out (or skipped) so far. */
  offset = 0;

  /** `label` names the input in truncation errors, e.g. "/cache/x.deb: data.tar.xz". */
  constructor(
    source: AsyncIterable<Uint8Array>,
    readonly label: string,
  ) {
    this.it = source[Symbol.asyncIterator]();
  }

  private async pull(): Promise<boolean> {
    if (this.ended) return false;
    const r = await this.it.next();
    if (r.done) {
      this.ended = true;
      return false;
    }
    const chunk = Buffer.isBuffer(r.value)
      ? r.value
      : Buffer.from(r.value.buffer, r.value.byteOffset, r.value.byteLength);
    if (chunk.length === 0) return true;
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    return true;
  }

  /** Read up to n bytes; fewer only at end of input. */
  async read(n: number): Promise<Buffer> {
    while (this.buf.length < n && (await this.pull()));
    const out = this.buf.subarray(0, Math.min(n, this.buf.length));
    this.buf = this.buf.subarray(out.length);
    this.offset += out.length;
    return out;
  }

  /** Read exactly n bytes or throw an 'input' error saying the input is truncated. */
  async readExact(n: number, what: string): Promise<Buffer> {
    const b = await this.read(n);
    if (b.length !== n) throw truncated(this.label, what, this.offset);
    return b;
  }

  /** True when no byte is left. */
  async atEnd(): Promise<boolean> {
    while (this.buf.length === 0) if (!(await this.pull())) return true;
    return false;
  }

  /**
   * Yield exactly the next n bytes as chunks (no copy of the whole). Throws when
   * the input ends early. Stopping the iteration early leaves the rest unread:
   * the caller tracks how much it consumed (`onChunk`).
   */
  async *chunks(n: number, what: string, onChunk?: (len: number) => void): AsyncGenerator<Buffer> {
    let left = n;
    while (left > 0) {
      if (this.buf.length === 0 && !(await this.pull())) throw truncated(this.label, what, this.offset);
      const take = Math.min(left, this.buf.length);
      if (take === 0) continue;
      const out = this.buf.subarray(0, take);
      this.buf = this.buf.subarray(take);
      this.offset += take;
      left -= take;
      onChunk?.(take);
      yield out;
    }
  }

  async skip(n: number, what: string): Promise<void> {
    for await (const _ of this.chunks(n, what)) void _;
  }

  /** Stop reading the source (closes the underlying file stream, if any). */
  async close(): Promise<void> {
    this.ended = true;
    this.buf = EMPTY;
    if (typeof this.it.return === 'function') {
      try {
        await this.it.return(undefined);
      } catch {
        /* closing a failed stream: nothing to report */
      }
    }
  }
}

export function truncated(label: string, what: string, offset: number): MkimgError {
  return new MkimgError('input', `${label}: truncated: the input ends inside ${what} (after ${offset} bytes)`, {
    hint: 'the file is incomplete or corrupt; delete it from the cache and fetch it again',
  });
}
