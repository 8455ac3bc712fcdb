/**
 * Test fixtures for registry work: a real Debian `docker-registry` on a free
 * loopback port (optionally with htpasswd Basic auth), a counting/faulting HTTP
 * proxy in front of it, a small Bearer-token front end, and an in-process
 * runner for the push/pull commands.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';

export async function freePort(addr = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.unref();
    s.on('error', reject);
    s.listen(0, addr, () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

export interface TestRegistry {
  /** "127.0.0.1:PORT" */
  host: string;
  port: number;
  url: string;
  storage: string;
  stop: () => Promise<void>;
}

export interface RegistryFixtureOptions {
  htpasswd?: { user: string; password: string };
  /** Answer relative Location headers (http.relativeurls). */
  relativeUrls?: boolean;
  /** Listen address (default 127.0.0.1); a non-loopback one tests the HTTPS rules. */
  addr?: string;
  /** Serve HTTPS with a fresh self-signed certificate. */
  tls?: boolean;
}

async function waitReady(url: string, child: ChildProcess, log: () => string): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`docker-registry exited (${child.exitCode}): ${log()}`);
    const ok = await new Promise<boolean>((resolve) => {
      const get = url.startsWith('https:')
        ? (u: string, cb: (res: http.IncomingMessage) => void) => https.get(u, { rejectUnauthorized: false }, cb)
        : http.get;
      const req = get(url + '/v2/', (res) => {
        res.resume();
        resolve(res.statusCode === 200 || res.statusCode === 401);
      });
      req.on('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`docker-registry did not answer at ${url}: ${log()}`);
}

/** Start /usr/bin/docker-registry with a temp storage dir on a free loopback port. */
export async function startRegistry(opts: RegistryFixtureOptions = {}): Promise<TestRegistry> {
  const dir = mkdtempSync(join(tmpdir(), 'mkimg-registry-'));
  const storage = join(dir, 'storage');
  let authYaml = '';
  if (opts.htpasswd) {
    const file = join(dir, 'htpasswd');
    const r = spawnSync('htpasswd', ['-Bbn', opts.htpasswd.user, opts.htpasswd.password], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`htpasswd failed: ${r.stderr}`);
    writeFileSync(file, r.stdout);
    authYaml = `auth:\n  htpasswd:\n    realm: mkimg-test\n    path: ${file}\n`;
  }
  const addr = opts.addr ?? '127.0.0.1';
  let tlsYaml = '';
  if (opts.tls) {
    const key = join(dir, 'key.pem');
    const cert = join(dir, 'cert.pem');
    const r = spawnSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-keyout',
        key,
        '-out',
        cert,
        '-days',
        '1',
        '-subj',
        '/CN=mkimg-test',
        '-addext',
        `subjectAltName=IP:${addr}`,
      ],
      { encoding: 'utf8' },
    );
    if (r.status !== 0) throw new Error(`openssl failed: ${r.stderr}`);
    tlsYaml = `  tls:\n    certificate: ${cert}\n    key: ${key}\n`;
  }
  for (let attempt = 0; ; attempt++) {
    const port = await freePort(addr);
    const config = join(dir, 'config.yml');
    writeFileSync(
      config,
      `version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: ${storage}
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: ${addr}:${port}
  secret: mkimg-test-secret
  relativeurls: ${opts.relativeUrls ? 'true' : 'false'}
${tlsYaml}${authYaml}`,
    );
    const child = spawn('/usr/bin/docker-registry', ['serve', config], { stdio: ['ignore', 'ignore', 'pipe'] });
    let log = '';
    child.stderr!.on('data', (d: Buffer) => {
      log = (log + d.toString()).slice(-4000);
    });
    const url = `${opts.tls ? 'https' : 'http'}://${addr}:${port}`;
    try {
      await waitReady(url, child, () => log);
    } catch (e) {
      child.kill('SIGKILL');
      if (attempt < 2) continue;
      rmSync(dir, { recursive: true, force: true });
      throw e;
    }
    return {
      host: `${addr}:${port}`,
      port,
      url,
      storage,
      stop: async () => {
        if (child.exitCode === null) {
          const exited = new Promise((r) => child.once('exit', r));
          child.kill('SIGTERM');
          const t = setTimeout(() => child.kill('SIGKILL'), 3000);
          await exited;
          clearTimeout(t);
        }
        rmSync(dir, { recursive: true, force: true });
      },
    };
  }
}

export interface ProxyRequestLog {
  method: string;
  path: string;
  /** Request body bytes forwarded. */
  bytes: number;
  status: number;
  headers: http.IncomingHttpHeaders;
}

export interface TestProxy {
  host: string;
  port: number;
  log: ProxyRequestLog[];
  /**
   * Called for each request before forwarding: return true when it answered
   * the request itself (fault injection), false to forward.
   */
  intercept?: (req: http.IncomingMessage, res: http.ServerResponse, n: number) => boolean;
  /** Adjust response headers from upstream before sending them on. */
  rewriteHeaders?: (req: http.IncomingMessage, headers: http.IncomingHttpHeaders) => void;
  /** Abort the connection once this many request-body bytes went through a matching request (then reset). */
  dropAfter?: { match: (req: http.IncomingMessage) => boolean; bytes: number } | undefined;
  stop: () => Promise<void>;
}

/** A counting (and optionally faulting) HTTP proxy on a free loopback port in front of `target` ("127.0.0.1:PORT"). */
export async function startProxy(target: string): Promise<TestProxy> {
  const [thost, tport] = target.split(':');
  const sockets = new Set<net.Socket>();
  let n = 0;
  const proxy: TestProxy = {
    host: '',
    port: 0,
    log: [],
    stop: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
  const server = http.createServer((req, res) => {
    const i = n++;
    if (proxy.intercept?.(req, res, i)) {
      proxy.log.push({ method: req.method!, path: req.url!, bytes: 0, status: res.statusCode, headers: req.headers });
      return;
    }
    const entry: ProxyRequestLog = { method: req.method!, path: req.url!, bytes: 0, status: 0, headers: req.headers };
    proxy.log.push(entry);
    const drop = proxy.dropAfter && proxy.dropAfter.match(req) ? proxy.dropAfter : undefined;
    if (drop) proxy.dropAfter = undefined; // once
    const up = http.request(
      { host: thost, port: Number(tport), method: req.method, path: req.url, headers: req.headers },
      (ures) => {
        entry.status = ures.statusCode ?? 0;
        const headers = { ...ures.headers };
        proxy.rewriteHeaders?.(req, headers);
        res.writeHead(ures.statusCode ?? 502, headers);
        ures.pipe(res);
      },
    );
    up.on('error', () => {
      req.socket.destroy();
    });
    req.on('data', (chunk: Buffer) => {
      entry.bytes += chunk.length;
      if (drop && entry.bytes >= drop.bytes) {
        entry.status = -1;
        up.destroy();
        req.socket.destroy();
      }
    });
    req.pipe(up);
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  proxy.port = (server.address() as net.AddressInfo).port;
  proxy.host = `127.0.0.1:${proxy.port}`;
  return proxy;
}

/** Blob-upload requests in a proxy log (POST/PATCH/PUT on blobs/uploads). */
export function uploadRequests(log: ProxyRequestLog[]): ProxyRequestLog[] {
  return log.filter((r) => /\/blobs\/uploads\//.test(r.path) && r.method !== 'GET' && r.method !== 'HEAD');
}

/** Write an auth file with Basic credentials for `host`. */
export function writeAuthFile(dir: string, host: string, user: string, password: string): string {
  const file = join(dir, 'auth.json');
  writeFileSync(
    file,
    JSON.stringify({ auths: { [host]: { auth: Buffer.from(`${user}:${password}`).toString('base64') } } }),
  );
  return file;
}

export interface CommandRun {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/**
 * Run one mkimg command in-process (commander program with just that command
 * registered), capturing stdout/stderr and the exit code action() sets.
 */
export async function runCommand(register: (p: Command) => void, args: string[]): Promise<CommandRun> {
  const program = new Command('mkimg').exitOverride();
  register(program);
  let stdout = '';
  let stderr = '';
  const ow = process.stdout.write.bind(process.stdout);
  const ew = process.stderr.write.bind(process.stderr);
  const prevExit = process.exitCode;
  process.exitCode = undefined;
  (process.stdout as { write: unknown }).write = (s: string | Uint8Array) => {
    stdout += typeof s === 'string' ? s : Buffer.from(s).toString();
    return true;
  };
  (process.stderr as { write: unknown }).write = (s: string | Uint8Array) => {
    stderr += typeof s === 'string' ? s : Buffer.from(s).toString();
    return true;
  };
  let exitCode: number;
  try {
    try {
      await program.parseAsync(['node', 'mkimg', ...args]);
      exitCode = Number(process.exitCode ?? 0);
    } catch (e) {
      const err = e as { code?: string };
      exitCode = typeof err.code === 'string' && err.code.startsWith('commander.') ? 2 : 1;
      stderr += String(e);
    }
  } finally {
    process.stdout.write = ow;
    process.stderr.write = ew;
    process.exitCode = prevExit;
  }
  return { exitCode, stdout, stderr };
}

/** PUT raw bytes at a path of a loopback registry (e.g. a hand-made manifest); resolves to the HTTP status. */
export function putRaw(registryUrl: string, path: string, mediaType: string, body: Buffer): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      `${registryUrl}${path}`,
      { method: 'PUT', headers: { 'content-type': mediaType, 'content-length': body.length } },
      (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** skopeo inspect --raw / inspect against a loopback registry. */
export function skopeo(args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync('skopeo', args, { encoding: 'utf8', timeout: 120_000, maxBuffer: 64 << 20 });
  return { code: r.status ?? 1, stdout: r.stdout, stderr: r.stderr };
}

export interface TokenFrontEnd {
  host: string;
  /** Token requests seen: scopes asked for, and whether Basic credentials were valid. */
  tokenRequests: Array<{ scopes: string[]; account?: string; ok: boolean }>;
  stop: () => Promise<void>;
}

/**
 * A Bearer-token front end for an anonymous registry: requests without a valid
 * token get 401 with `WWW-Authenticate: Bearer realm=…/token,service=…,scope=…`;
 * /token issues tokens for Basic user:password. Pushes (non-GET/HEAD) to a repo
 * listed in `denyPush` get 403 DENIED, as a registry with per-repo permissions answers.
 */
export async function startTokenFrontEnd(
  target: string,
  opts: { user: string; password: string; denyPush?: string[] },
): Promise<TokenFrontEnd> {
  const proxy = await startProxy(target);
  const issued = new Map<string, string[]>();
  const fe: TokenFrontEnd = { host: proxy.host, tokenRequests: [], stop: proxy.stop };
  proxy.intercept = (req, res) => {
    const url = new URL(req.url!, 'http://x');
    if (url.pathname === '/token') {
      const auth = req.headers.authorization ?? '';
      const ok = auth === 'Basic ' + Buffer.from(`${opts.user}:${opts.password}`).toString('base64');
      const scopes = url.searchParams.getAll('scope');
      fe.tokenRequests.push({ scopes, account: url.searchParams.get('account') ?? undefined, ok });
      if (!ok) {
        res.writeHead(401, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ errors: [{ code: 'UNAUTHORIZED', message: 'authentication required' }] }));
        return true;
      }
      const token = `tok${issued.size}`;
      issued.set(token, scopes);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ token, expires_in: 300 }));
      return true;
    }
    const m = /^\/v2\/(.+?)\/(blobs|manifests|tags)\//.exec(url.pathname);
    const repo = m?.[1];
    const need = repo
      ? `repository:${repo}:${req.method === 'GET' || req.method === 'HEAD' ? 'pull' : 'pull,push'}`
      : undefined;
    const tok = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
    const granted = tok ? issued.get(tok) : undefined;
    const covers =
      granted &&
      (!need || granted.some((s) => s === need || (need.endsWith(':pull') && s === `repository:${repo}:pull,push`)));
    if (!covers) {
      req.resume();
      res.writeHead(401, {
        'content-type': 'application/json',
        'www-authenticate': `Bearer realm="http://${proxy.host}/token",service="mkimg-test"${need ? `,scope="${need}"` : ''}`,
      });
      res.end(JSON.stringify({ errors: [{ code: 'UNAUTHORIZED', message: 'authentication required' }] }));
      return true;
    }
    if (repo && opts.denyPush?.includes(repo) && req.method !== 'GET' && req.method !== 'HEAD') {
      req.resume();
      res.writeHead(403, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ errors: [{ code: 'DENIED', message: 'requested access to the resource is denied' }] }));
      return true;
    }
    return false;
  };
  return fe;
}
