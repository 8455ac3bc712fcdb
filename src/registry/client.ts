/**
 * A small OCI distribution-spec HTTP client: one registry host, node:http(s)
 * with keep-alive, authentication (anonymous, Basic, Bearer token from a
 * WWW-Authenticate challenge), bounded exponential-backoff retries on 5xx and
 * network errors, redirects for blob downloads, and errors that name the
 * registry, the repository, the HTTP status and the registry's error code.
 */
import http from 'node:http';
import https from 'node:https';
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import type { Readable } from 'node:stream';
import { MkimgError } from '../util/errors.js';
import { basicHeader, findCredentials, parseChallenges, type Credentials } from './auth.js';
import { isLoopbackHost } from './reference.js';

export interface RegistryOptions {
  /** Allow plain HTTP (and unverified TLS) to a non-loopback registry. */
  insecure?: boolean;
  /** An auth file read before the standard ones. */
  authFile?: string;
  /** Credentials to use instead of the auth files. */
  credentials?: { username: string; password: string };
  /** Attempts after the first on 5xx and network errors (default 5). */
  retries?: number;
  /** First backoff delay in ms, doubled each time (default 250). */
  retryBaseMs?: number;
  /** Largest backoff delay in ms (default 8000). */
  retryMaxMs?: number;
  /** Idle socket timeout in ms (default 120000). */
  timeoutMs?: number;
  /** Progress lines on stderr (push/pull decide from the TTY when unset). */
  progress?: boolean;
}

/** A request body that can be opened again (for retries). */
export interface BodySource {
  length: number;
  open: () => Readable;
}

export interface RegistryRequest {
  method: string;
  /** Absolute URL, or a path ("/v2/...") on this registry. */
  url: string | URL;
  headers?: Record<string, string>;
  body?: Buffer | BodySource;
  /** Token scopes the request needs, e.g. "repository:app:pull,push". */
  scopes: string[];
  /** Retry on 5xx and network errors (default true). Off for upload steps: the caller restarts the blob. */
  retry?: boolean;
  /** Return the response body as a stream (the caller must consume or destroy it). */
  stream?: boolean;
  /** Follow 301/302/303/307/308 (GET/HEAD only). */
  followRedirects?: boolean;
  /** Human description for errors: "upload of blob sha256:…". */
  what: string;
  /** Repository for error messages. */
  repository: string;
}

export interface RegistryResponse {
  status: number;
  headers: IncomingHttpHeaders;
  /** Body (empty when stream was requested). */
  body: Buffer;
  stream?: IncomingMessage;
  url: URL;
}

/** The most a buffered registry answer (a manifest, an index, a token, an error) may hold (SPEC §4 "Limits"); past it the answer is cut off and refused. */
export const MAX_BODY = 8 << 20;
const TRANSIENT_CODES = new Set([
  'ECONNRESET',
  'EPIPE',
  'ECONNREFUSED',
  'ETIMEDOUT',
  'ECONNABORTED',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENETDOWN',
  'ERR_STREAM_PREMATURE_CLOSE',
  'UND_ERR_SOCKET',
]);

export function isTransient(e: unknown): boolean {
  if (e instanceof MkimgError) return e.details?.transient === true;
  const err = e as NodeJS.ErrnoException;
  if (err && typeof err === 'object') {
    if (err.code && TRANSIENT_CODES.has(err.code)) return true;
    if (/socket hang up|aborted|timeout|premature close/i.test(String(err.message))) return true;
  }
  return false;
}

/** 5xx and 429 (too many requests) are worth another try. */
export function isRetryableStatus(status: number): boolean {
  return status >= 500 || status === 429;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Describe a registry error body: "MANIFEST_BLOB_UNKNOWN: blob unknown to registry (detail)". */
export function describeErrorBody(body: Buffer): { text: string; codes: string[] } {
  const raw = body.toString('utf8').trim();
  if (raw === '') return { text: '', codes: [] };
  try {
    const doc = JSON.parse(raw) as { errors?: Array<{ code?: string; message?: string; detail?: unknown }> };
    if (Array.isArray(doc.errors) && doc.errors.length > 0) {
      const parts = doc.errors.map((e) => {
        let s = `${e.code ?? 'UNKNOWN'}: ${e.message ?? ''}`.trim();
        if (e.detail !== undefined && e.detail !== null && e.detail !== '') {
          s += ` (${typeof e.detail === 'string' ? e.detail : JSON.stringify(e.detail)})`;
        }
        return s;
      });
      return { text: parts.join('; '), codes: doc.errors.map((e) => String(e.code ?? 'UNKNOWN')) };
    }
  } catch {
    /* not JSON */
  }
  const oneLine = raw.replace(/\s+/g, ' ');
  return { text: oneLine.length > 300 ? oneLine.slice(0, 300) + '…' : oneLine, codes: [] };
}

export class RegistryClient {
  readonly registry: string;
  readonly hostname: string;
  private scheme: 'http' | 'https';
  private readonly opts: RegistryOptions;
  private agent: http.Agent | https.Agent;
  private readonly credentials?: Credentials;
  private basic = false;
  private bearer?: { realm: string; service?: string };
  private readonly tokens = new Map<string, string>();
  private pinged = false;

  constructor(registry: string, hostname: string, opts: RegistryOptions = {}) {
    this.registry = registry;
    this.hostname = hostname;
    this.opts = opts;
    const loopback = isLoopbackHost(hostname);
    this.scheme = loopback ? 'http' : 'https';
    this.agent = this.makeAgent();
    if (opts.credentials) this.credentials = { ...opts.credentials, source: 'the given credentials' };
    else this.credentials = findCredentials(registry, opts.authFile);
  }

  private makeAgent(): http.Agent | https.Agent {
    return this.scheme === 'http'
      ? new http.Agent({ keepAlive: true, maxSockets: 8 })
      : new https.Agent({ keepAlive: true, maxSockets: 8, rejectUnauthorized: !this.opts.insecure });
  }

  get baseUrl(): string {
    return `${this.scheme}://${this.registry}`;
  }

  get username(): string | undefined {
    return this.credentials?.username;
  }

  close(): void {
    this.agent.destroy();
  }

  /** An error naming the registry, the repository, what failed, the status and the registry's message. */
  fail(res: RegistryResponse, what: string, repository: string): MkimgError {
    const { text, codes } = describeErrorBody(res.body);
    const status = `${res.status} ${http.STATUS_CODES[res.status] ?? ''}`.trim();
    let hint: string | undefined;
    if (res.status === 403 || codes.includes('DENIED')) {
      hint = `the account${this.credentials ? ` "${this.credentials.username}"` : ' (anonymous)'} may not do this in repository "${repository}"; ask the registry's administrator for push access, or push to a repository you own`;
    } else if (codes.includes('MANIFEST_BLOB_UNKNOWN') || codes.includes('BLOB_UNKNOWN')) {
      hint =
        'the registry does not have every blob the manifest references; push the image again (mkimg checks each blob with HEAD)';
    } else if (codes.includes('NAME_UNKNOWN') || codes.includes('MANIFEST_UNKNOWN')) {
      hint = 'check the repository name and tag';
    } else if (res.status >= 500) {
      hint = 'the registry failed; try again later, or check its logs';
    }
    return new MkimgError(
      'registry',
      `registry ${this.registry}, repository "${repository}": ${what} failed: HTTP ${status}${text ? `: ${text}` : ''}`,
      {
        hint,
        details: {
          registry: this.registry,
          repository,
          status: res.status,
          codes,
          transient: isRetryableStatus(res.status),
        },
      },
    );
  }

  private networkError(e: unknown, what: string, repository: string): MkimgError {
    const err = e as NodeJS.ErrnoException;
    const msg = err?.code ? `${err.code} ${err.message}` : String(err?.message ?? e);
    return new MkimgError(
      'registry',
      `registry ${this.registry}, repository "${repository}": ${what} failed: network error: ${msg}`,
      {
        hint:
          err?.code === 'ECONNREFUSED'
            ? `is the registry running and listening at ${this.baseUrl}?`
            : /EPROTO|wrong version number|certificate|SSL/i.test(msg)
              ? 'for a registry without valid TLS, pass --insecure'
              : 'check the network and try again; a repeated push resends only what is missing',
        details: { registry: this.registry, repository, transient: isTransient(e) },
        cause: e,
      },
    );
  }

  /** GET /v2/: checks the registry speaks the API and learns its authentication scheme. */
  async ping(repository: string): Promise<void> {
    if (this.pinged) return;
    if (this.opts.insecure && this.scheme === 'https') {
      try {
        await this.pingOnce(repository);
        return;
      } catch (e) {
        const msg = String((e as Error).message);
        if (!/EPROTO|wrong version number|ECONNRESET|SSL|certificate|ECONNREFUSED/i.test(msg)) throw e;
        this.scheme = 'http';
        this.agent.destroy();
        this.agent = this.makeAgent();
      }
    }
    await this.pingOnce(repository);
  }

  private async pingOnce(repository: string): Promise<void> {
    const res = await this.request({ method: 'GET', url: '/v2/', scopes: [], what: 'API check GET /v2/', repository });
    if (res.status !== 200) {
      if (res.status === 404) {
        throw new MkimgError(
          'registry',
          `registry ${this.registry}: GET /v2/ answered 404: this is not an OCI distribution (v2) registry`,
          {
            details: { registry: this.registry, status: 404 },
          },
        );
      }
      throw this.fail(res, 'API check GET /v2/', repository);
    }
    this.pinged = true;
  }

  private resolve(url: string | URL): URL {
    return url instanceof URL ? url : new URL(url, this.baseUrl + '/');
  }

  private backoff(attempt: number): number {
    const base = this.opts.retryBaseMs ?? 250;
    const max = this.opts.retryMaxMs ?? 8000;
    return Math.min(max, base * 2 ** attempt);
  }

  /**
   * Send a request with authentication, retries (when req.retry !== false) and
   * redirects. Returns every HTTP status except authentication failures, which
   * throw. Network errors throw MkimgError('registry') with details.transient.
   */
  async request(req: RegistryRequest): Promise<RegistryResponse> {
    const retries = req.retry === false ? 0 : (this.opts.retries ?? 5);
    let attempt = 0;
    for (;;) {
      let res: RegistryResponse;
      try {
        res = await this.authed(req);
      } catch (e) {
        if (e instanceof MkimgError && !isTransient(e)) throw e;
        if (attempt < retries && isTransient(e)) {
          await sleep(this.backoff(attempt++));
          continue;
        }
        throw e instanceof MkimgError ? e : this.networkError(e, req.what, req.repository);
      }
      if (isRetryableStatus(res.status) && attempt < retries) {
        res.stream?.destroy();
        await sleep(this.backoff(attempt++));
        continue;
      }
      return res;
    }
  }

  private async authed(req: RegistryRequest): Promise<RegistryResponse> {
    let refreshed = false;
    let sentBasic = false;
    for (;;) {
      const headers: Record<string, string> = { ...(req.headers ?? {}) };
      if (this.bearer) {
        headers.authorization = `Bearer ${await this.token(req.scopes, req.repository)}`;
      } else if (this.basic && this.credentials) {
        headers.authorization = basicHeader(this.credentials);
        sentBasic = true;
      }
      const res = await this.follow(req, headers);
      if (res.status !== 401) return res;
      // Authentication needed or refused.
      res.stream?.destroy();
      const challenges = parseChallenges(res.headers['www-authenticate']);
      const bearer = challenges.find((c) => c.scheme === 'bearer');
      const basic = challenges.find((c) => c.scheme === 'basic');
      if (bearer && bearer.params.realm) {
        const hadToken = this.bearer !== undefined;
        this.bearer = { realm: bearer.params.realm, service: bearer.params.service };
        const extra = bearer.params.scope ? bearer.params.scope.split(' ').filter(Boolean) : [];
        const scopes = [...new Set([...req.scopes, ...extra])];
        if (hadToken && refreshed) throw this.authError(res, req);
        // Drop a cached token for these scopes (it may have expired) and fetch again.
        this.tokens.delete(scopeKey(req.scopes));
        if (extra.length > 0) {
          const tok = await this.fetchToken(scopes, req.repository);
          this.tokens.set(scopeKey(req.scopes), tok);
        }
        refreshed = true;
        continue;
      }
      if (basic || challenges.length === 0) {
        if (this.credentials && !sentBasic) {
          this.basic = true;
          continue;
        }
        throw this.authError(res, req);
      }
      throw this.authError(res, req);
    }
  }

  private authError(res: RegistryResponse, req: RegistryRequest): MkimgError {
    const { text, codes } = describeErrorBody(res.body);
    const base = `registry ${this.registry}, repository "${req.repository}": ${req.what} failed: HTTP 401 Unauthorized${text ? `: ${text}` : ''}`;
    if (this.credentials) {
      return new MkimgError(
        'registry',
        `${base}; the registry rejected the credentials of user "${this.credentials.username}" (from ${this.credentials.source})`,
        {
          hint: `check the password for ${this.registry} (log in again with "podman login ${this.registry}" or "docker login ${this.registry}")`,
          details: { registry: this.registry, repository: req.repository, status: 401, codes },
        },
      );
    }
    return new MkimgError(
      'registry',
      `${base}; the registry requires authentication and no credentials for ${this.registry} were found`,
      {
        hint: `log in with "podman login ${this.registry}" or "docker login ${this.registry}", or set REGISTRY_AUTH_FILE to a file with {"auths":{"${this.registry}":{"auth":"<base64 user:password>"}}}`,
        details: { registry: this.registry, repository: req.repository, status: 401, codes },
      },
    );
  }

  private async token(scopes: string[], repository: string): Promise<string> {
    const key = scopeKey(scopes);
    const cached = this.tokens.get(key);
    if (cached) return cached;
    const tok = await this.fetchToken(scopes, repository);
    this.tokens.set(key, tok);
    return tok;
  }

  private async fetchToken(scopes: string[], repository: string): Promise<string> {
    if (!this.bearer) throw new Error('no bearer realm');
    const url = new URL(this.bearer.realm);
    if (url.protocol === 'http:' && !isLoopbackHost(url.hostname) && !this.opts.insecure) {
      throw new MkimgError('registry', `registry ${this.registry}: the token service ${url.origin} uses plain HTTP`, {
        hint: 'pass --insecure to allow it',
      });
    }
    if (this.bearer.service) url.searchParams.set('service', this.bearer.service);
    for (const s of scopes) url.searchParams.append('scope', s);
    const headers: Record<string, string> = {};
    if (this.credentials) {
      headers.authorization = basicHeader(this.credentials);
      url.searchParams.set('account', this.credentials.username);
    }
    const what = `token request to ${url.origin}${url.pathname}`;
    let attempt = 0;
    for (;;) {
      let res: RegistryResponse;
      try {
        res = await this.send('GET', url, headers, undefined, false);
      } catch (e) {
        if (isTransient(e) && attempt < (this.opts.retries ?? 5)) {
          await sleep(this.backoff(attempt++));
          continue;
        }
        throw this.networkError(e, what, repository);
      }
      if (res.status >= 500 && attempt < (this.opts.retries ?? 5)) {
        await sleep(this.backoff(attempt++));
        continue;
      }
      if (res.status === 401 || res.status === 403) {
        const { text } = describeErrorBody(res.body);
        throw new MkimgError(
          'registry',
          `registry ${this.registry}, repository "${repository}": ${what} failed: HTTP ${res.status}${text ? `: ${text}` : ''}; ${
            this.credentials
              ? `the token service rejected the credentials of user "${this.credentials.username}" (from ${this.credentials.source})`
              : 'no credentials were found'
          }`,
          {
            hint: `check the login for ${this.registry} ("podman login ${this.registry}")`,
            details: { registry: this.registry, repository, status: res.status },
          },
        );
      }
      if (res.status !== 200) throw this.fail(res, what, repository);
      let doc: { token?: string; access_token?: string };
      try {
        doc = JSON.parse(res.body.toString('utf8'));
      } catch {
        throw new MkimgError('registry', `registry ${this.registry}: ${what} answered 200 but not JSON`);
      }
      const tok = doc.token ?? doc.access_token;
      if (!tok) throw new MkimgError('registry', `registry ${this.registry}: ${what} answered without a token`);
      return tok;
    }
  }

  private async follow(req: RegistryRequest, headers: Record<string, string>): Promise<RegistryResponse> {
    let url = this.resolve(req.url);
    const origin = new URL(this.baseUrl).origin;
    for (let hops = 0; ; hops++) {
      const h = { ...headers };
      if (url.origin !== origin) delete h.authorization;
      const res = await this.send(req.method, url, h, req.body, req.stream === true);
      const redirect = [301, 302, 303, 307, 308].includes(res.status) && res.headers.location;
      if (!redirect || !req.followRedirects || hops >= 5) return res;
      res.stream?.destroy();
      url = new URL(res.headers.location as string, url);
    }
  }

  /** One HTTP exchange. With stream=true the body of a 2xx answer is returned unread. */
  send(
    method: string,
    url: URL,
    headers: Record<string, string>,
    body: Buffer | BodySource | undefined,
    stream: boolean,
  ): Promise<RegistryResponse> {
    const mod = url.protocol === 'https:' ? https : http;
    const h: Record<string, string> = { 'user-agent': 'mkimg', ...headers };
    if (body !== undefined) h['content-length'] = String(Buffer.isBuffer(body) ? body.length : body.length);
    else if (method === 'PUT' || method === 'POST' || method === 'PATCH') h['content-length'] = '0';
    const agent = url.origin === new URL(this.baseUrl).origin ? this.agent : undefined;
    return new Promise<RegistryResponse>((resolve, reject) => {
      let settled = false;
      let src: Readable | undefined;
      const done = (e: unknown, r?: RegistryResponse) => {
        if (settled) return;
        settled = true;
        if (e) {
          src?.destroy();
          reject(e);
        } else resolve(r!);
      };
      const creq = mod.request(
        url,
        {
          method,
          headers: h,
          agent,
          ...(url.protocol === 'https:' && this.opts.insecure ? { rejectUnauthorized: false } : {}),
        },
        (res) => {
          const status = res.statusCode ?? 0;
          const early = src !== undefined && !src.readableEnded;
          if (early) {
            // The server answered before the body was sent: stop sending and do not reuse the socket.
            src!.unpipe(creq);
            src!.destroy();
          }
          if (stream && status >= 200 && status < 300) {
            done(null, { status, headers: res.headers, body: Buffer.alloc(0), stream: res, url });
            return;
          }
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (c: Buffer) => {
            size += c.length;
            if (size <= MAX_BODY) chunks.push(c);
            else {
              // An endless or oversized answer: refuse it (first, so the abort below is not taken for a network error), stop reading.
              done(
                new MkimgError(
                  'registry',
                  `registry ${url.host}: ${method} ${url.pathname} answered with more than ${MAX_BODY >> 20} MiB, more than a manifest or index may be`,
                  {
                    hint: 'the registry misbehaves; check its URL',
                  },
                ),
              );
              res.destroy();
              creq.destroy();
            }
          });
          res.on('end', () => {
            if (early) creq.destroy();
            done(null, { status, headers: res.headers, body: Buffer.concat(chunks), url });
          });
          res.on('error', (e) => done(e));
          res.on('aborted', () => done(Object.assign(new Error('response aborted'), { code: 'ECONNRESET' })));
        },
      );
      creq.setTimeout(this.opts.timeoutMs ?? 120_000, () =>
        creq.destroy(Object.assign(new Error('socket timeout'), { code: 'ETIMEDOUT' })),
      );
      creq.on('error', (e) => done(e));
      if (body === undefined) creq.end();
      else if (Buffer.isBuffer(body)) creq.end(body);
      else {
        src = body.open();
        src.on('error', (e) => {
          creq.destroy(e);
          done(e);
        });
        src.pipe(creq);
      }
    });
  }
}

function scopeKey(scopes: string[]): string {
  return [...scopes].sort().join(' ');
}
