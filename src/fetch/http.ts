/**
 * A small HTTP(S) GET client: redirects, retries on network errors and 5xx,
 * an idle timeout, and errors that name the URL. `file://` URLs are read from
 * disk (handy for local mirrors). Every failure is MkimgError('repository')
 * with details { url, status? } so callers can tell a 404 from an outage.
 */
import { createWriteStream, createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { Agent } from 'node:http';
import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { MkimgError } from '../util/errors.js';
import { asEnvironmentError } from '../util/environment.js';

export interface HttpOptions {
  /** Idle timeout per attempt (no bytes for this long aborts it). Default 30 s. */
  timeoutMs?: number;
  /** Attempts in total for network errors and 5xx. Default 3. */
  attempts?: number;
  /** Refuse a body past this many bytes (httpGet; default HTTP_BODY_LIMIT). */
  maxBytes?: number;
  /** Called with (bytesSoFar, totalOrUndefined) while a body streams in. */
  onProgress?: (bytes: number, total?: number) => void;
}

export function httpStatusOf(e: unknown): number | undefined {
  if (e instanceof MkimgError && e.details && typeof e.details.status === 'number') return e.details.status as number;
  return undefined;
}

/**
 * node:http and node:https with one keep-alive agent each, loaded on the first request: most
 * commands (a warm build, a lock that re-pins files: inputs only) fetch nothing, and loading
 * them costs every start a few milliseconds.
 */
type Client = { get: typeof import('node:http').get; agent: Agent };
const clients: { [scheme: string]: Promise<Client> } = {};
function clientFor(scheme: 'http:' | 'https:'): Promise<Client> {
  clients[scheme] ??= (scheme === 'https:' ? import('node:https') : import('node:http')).then((m) => {
    const mod = (m as { default?: typeof import('node:http') }).default ?? (m as typeof import('node:http'));
    return { get: mod.get, agent: new mod.Agent({ keepAlive: true, maxSockets: 8 }) };
  });
  return clients[scheme];
}

interface Sink {
  /** false: pause the source until `drain` is called back. */
  write(chunk: Buffer): boolean | void;
  /** Called back once the sink takes more, or has failed (see failure()). */
  onDrain?(cb: () => void): void;
  /** The sink's own failure (a full disk), which ends the transfer: not a network error, not retried. */
  failure?(): unknown;
  end(): Promise<void>;
  abort(): void;
}

async function once(url: string, sink: () => Sink, opts: HttpOptions, redirects = 0): Promise<void> {
  const u = new URL(url);
  if (u.protocol === 'file:') {
    const p = fileURLToPath(u);
    let st;
    try {
      st = await stat(p);
    } catch {
      throw new MkimgError('repository', `GET ${url}: not found`, { details: { url, status: 404 } });
    }
    const s = sink();
    let n = 0;
    for await (const chunk of createReadStream(p)) {
      if (s.write(chunk as Buffer) === false && s.onDrain) await new Promise<void>((r) => s.onDrain!(r));
      const f = s.failure?.();
      if (f) {
        s.abort();
        throw f;
      }
      n += (chunk as Buffer).length;
      opts.onProgress?.(n, st.size);
    }
    await s.end();
    return;
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') {
    throw new MkimgError('repository', `unsupported URL scheme in ${url}`, {
      hint: 'use an http://, https:// or file:// mirror URL',
    });
  }
  const client = await clientFor(u.protocol);
  await new Promise<void>((resolve, reject) => {
    // Set once the response has decided the outcome, so a connection that
    // closes before that (a timeout while paused) still settles this promise.
    let decided = false;
    const req = client.get(u, { agent: client.agent, headers: { 'user-agent': 'mkimg' } }, (res) => {
      const status = res.statusCode ?? 0;
      if (status !== 200) decided = true;
      if (status >= 300 && status < 400 && res.headers.location) {
        res.resume();
        if (redirects >= 5)
          return reject(new MkimgError('repository', `GET ${url}: too many redirects`, { details: { url } }));
        const next = new URL(res.headers.location, u).toString();
        once(next, sink, opts, redirects + 1).then(resolve, reject);
        return;
      }
      if (status !== 200) {
        res.resume();
        return reject(new MkimgError('repository', `GET ${url}: HTTP ${status}`, { details: { url, status } }));
      }
      const total = res.headers['content-length'] ? Number(res.headers['content-length']) : undefined;
      const s = sink();
      let n = 0;
      let failed = false;
      const failIfSinkFailed = (): boolean => {
        const f = s.failure?.();
        if (!f || failed) return failed;
        failed = true;
        decided = true;
        s.abort();
        res.destroy();
        reject(f);
        return true;
      };
      res.on('data', (chunk: Buffer) => {
        if (failed) return;
        if (s.write(chunk) === false && s.onDrain) {
          res.pause();
          s.onDrain(() => {
            if (!failIfSinkFailed()) res.resume();
          });
        }
        if (failIfSinkFailed()) return;
        n += chunk.length;
        opts.onProgress?.(n, total);
      });
      res.on('end', () => {
        decided = true;
        if (failed) return;
        if (!res.complete || (total !== undefined && n !== total)) {
          s.abort();
          return reject(
            new MkimgError('repository', `GET ${url}: connection closed after ${n} of ${total ?? '?'} bytes`, {
              details: { url, retry: true },
            }),
          );
        }
        s.end().then(resolve, reject);
      });
      res.on('error', (e) => {
        decided = true;
        if (failed) return;
        s.abort();
        reject(new MkimgError('repository', `GET ${url}: ${e.message}`, { details: { url, retry: true }, cause: e }));
      });
    });
    req.on('close', () => {
      if (!decided)
        reject(
          new MkimgError('repository', `GET ${url}: the connection closed before the body was complete`, {
            details: { url, retry: true },
          }),
        );
    });
    req.setTimeout(opts.timeoutMs ?? 30_000, () => {
      req.destroy(new Error(`no data for ${(opts.timeoutMs ?? 30_000) / 1000} s`));
    });
    req.on('error', (e) =>
      reject(new MkimgError('repository', `GET ${url}: ${e.message}`, { details: { url, retry: true }, cause: e })),
    );
  });
}

function retryable(e: unknown): boolean {
  if (!(e instanceof MkimgError)) return false;
  const st = httpStatusOf(e);
  if (st !== undefined) return st >= 500 || st === 408 || st === 429;
  return Boolean(e.details?.retry);
}

async function withRetries(url: string, sink: () => Sink, opts: HttpOptions): Promise<void> {
  const attempts = Math.max(1, opts.attempts ?? 3);
  let last: unknown;
  for (let i = 0; i < attempts; i++) {
    try {
      await once(url, sink, opts);
      return;
    } catch (e) {
      last = e;
      if (!retryable(e) || i === attempts - 1) break;
      await new Promise((r) => setTimeout(r, 250 * 2 ** i));
    }
  }
  const e = last as MkimgError;
  if (e instanceof MkimgError && attempts > 1 && retryable(e)) {
    throw new MkimgError('repository', `${e.message} (after ${attempts} attempts)`, {
      details: e.details,
      hint: 'check the mirror URL and the network, or choose another mirror with --mirror SUITE=URL',
    });
  }
  throw last;
}

/** The most httpGet holds in memory unless told otherwise (an InRelease is well under 1 MiB). SPEC §4 "Limits". */
export const HTTP_BODY_LIMIT = 64 << 20;

/** GET a whole body into memory (indexes, InRelease), at most opts.maxBytes (HTTP_BODY_LIMIT). */
export async function httpGet(url: string, opts: HttpOptions = {}): Promise<Buffer> {
  let chunks: Buffer[] = [];
  const max = opts.maxBytes ?? HTTP_BODY_LIMIT;
  await withRetries(
    url,
    () => {
      chunks = [];
      let n = 0;
      let failed: MkimgError | null = null;
      return {
        write: (c) => {
          n += c.length;
          if (n > max) {
            failed ??= new MkimgError('repository', `GET ${url}: the body passes ${max} bytes, more than it may be`, {
              details: { url },
            });
            chunks = [];
            return;
          }
          chunks.push(c);
        },
        failure: () => failed,
        end: async () => {
          if (failed) throw failed;
        },
        abort: () => (chunks = []),
      };
    },
    opts,
  );
  return Buffer.concat(chunks);
}

/** GET a body into a file (created/truncated), hashing while writing; at most opts.maxBytes when given. */
export async function httpGetToFile(
  url: string,
  dest: string,
  opts: HttpOptions = {},
): Promise<{ sha256: string; size: number }> {
  let hash = createHash('sha256');
  let size = 0;
  await withRetries(
    url,
    () => {
      hash = createHash('sha256');
      size = 0;
      const ws = createWriteStream(dest);
      let failed: unknown = null;
      const drains: Array<() => void> = [];
      ws.on('error', (e) => {
        failed = asEnvironmentError(e, `cannot write ${dest} (fetching ${url})`);
        for (const cb of drains.splice(0)) cb();
      });
      return {
        write: (c) => {
          size += c.length;
          if (opts.maxBytes !== undefined && size > opts.maxBytes) {
            failed ??= new MkimgError(
              'repository',
              `GET ${url}: the body passes ${opts.maxBytes} bytes, the size it should have`,
              { details: { url } },
            );
            return true;
          }
          hash.update(c);
          return ws.write(c);
        },
        onDrain: (cb) => {
          if (failed) return cb();
          drains.push(cb);
          ws.once('drain', () => {
            const i = drains.indexOf(cb);
            if (i >= 0) drains.splice(i, 1)[0]!();
          });
        },
        failure: () => failed,
        end: () =>
          new Promise<void>((resolve, reject) => {
            if (failed) return reject(failed);
            ws.end(() => (failed ? reject(failed) : resolve()));
          }),
        abort: () => ws.destroy(),
      };
    },
    opts,
  );
  return { sha256: hash.digest('hex'), size };
}
