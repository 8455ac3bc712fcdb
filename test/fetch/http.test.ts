import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import http from 'node:http';
import { mkdtempSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { AddressInfo } from 'node:net';
import { httpGet, httpGetToFile, httpStatusOf } from '../../src/fetch/http.js';
import { rejection } from '../helpers/errors.js';

let server: http.Server;
let base: string;
const hits = new Map<string, number>();
const sockets = new Set<import('node:net').Socket>();

beforeAll(async () => {
  server = http.createServer((req, res) => {
    const path = req.url ?? '/';
    hits.set(path, (hits.get(path) ?? 0) + 1);
    if (path === '/redirect') return void res.writeHead(302, { location: '/target' }).end();
    if (path === '/target') return void res.end('target body');
    if (path === '/stall') {
      res.writeHead(200, { 'content-length': '10' });
      res.write('abc'); // and then nothing
      return;
    }
    if (path === '/short') {
      res.writeHead(200, { 'content-length': '100' });
      res.end('only 20 bytes here..');
      return;
    }
    if (path === '/big') {
      const chunk = Buffer.alloc(1 << 16, 7);
      res.writeHead(200, { 'content-length': String(chunk.length * 64) });
      for (let i = 0; i < 64; i++) res.write(chunk);
      return void res.end();
    }
    res.writeHead(404).end();
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  for (const s of sockets) s.destroy();
  await new Promise<void>((r) => server.close(() => r()));
});

describe('http client', () => {
  it('follows redirects', async () => {
    expect((await httpGet(`${base}/redirect`)).toString()).toBe('target body');
  });

  it('does not retry a 404 and reports its status and URL', async () => {
    const e = await rejection(httpGet(`${base}/missing`));
    expect(httpStatusOf(e)).toBe(404);
    expect(e.kind).toBe('repository');
    expect(e.message).toBe(`GET ${base}/missing: HTTP 404`);
    expect(hits.get('/missing')).toBe(1);
  });

  it('times out a stalled body and retries a truncated one', async () => {
    const stalled = await rejection(httpGet(`${base}/stall`, { timeoutMs: 300, attempts: 1 }));
    expect(stalled.message).toMatch(/^GET http:\/\/127\.0\.0\.1:\d+\/stall: no data for 0\.3 s$/);
    const short = await rejection(httpGet(`${base}/short`, { attempts: 2 }));
    expect(short.message).toMatch(/\/short: .*(after 2 attempts)/);
    expect(hits.get('/short')).toBe(2);
  });

  it('streams a body to a file with its sha256, and reads file:// URLs', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mkimg-http-'));
    try {
      const dest = join(dir, 'big');
      const got = await httpGetToFile(`${base}/big`, dest);
      expect(got.size).toBe(64 << 16);
      expect(readFileSync(dest).length).toBe(64 << 16);
      const src = join(dir, 'local.txt');
      writeFileSync(src, 'from disk');
      expect((await httpGet(pathToFileURL(src).toString())).toString()).toBe('from disk');
      expect(httpStatusOf(await rejection(httpGet(pathToFileURL(join(dir, 'nope')).toString())))).toBe(404);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
