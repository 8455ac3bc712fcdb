/**
 * A real, signed apt repository for tests, served on 127.0.0.1.
 *
 *   const repo = await createAptRepo({
 *     suites: [{ name: 'stable', packages: [{ name: 'hello', version: '1.0-1', depends: 'libc6 (>= 2.36)',
 *                                             files: { '/usr/bin/hello': { content: '#!/bin/sh\necho hi\n', mode: 0o755 } } }] }],
 *   });
 *   repo.url            // http://127.0.0.1:PORT  (mirror root: dists/ and pool/ below it)
 *   repo.keyringPath    // armored public key that signs InRelease (use as a source's keyring:)
 *   repo.otherKeyringPath // a different key (for "wrong key" tests)
 *   repo.deb('hello')   // { path, filename, sha256, size, version } of the built .deb
 *   repo.source('stable') // a manifest Source for this repo and suite (url set, keyring set)
 *   await repo.close()  // stops the server, kills gpg-agent, removes the temp dir
 *
 * Packages are built with `dpkg-deb --build --root-owner-group` from small trees
 * (DEBIAN/control from the fields given; SOURCE_DATE_EPOCH fixed, so the bytes are
 * stable). Each suite gets component `main` (or `component`), Packages/.gz/.xz for
 * binary-<arch> (architecture packages) and binary-all (Architecture: all, Debian's
 * No-Support-for-Architecture-all layout), a Release with SHA256 lines, and InRelease
 * clearsigned with gpg (ed25519 test key in a temp GNUPGHOME, %no-protection).
 *
 * Tampering (after building):
 *   repo.sign(suite, 'good' | 'other' | 'none' | 'expired' | 'revoked')  re-sign InRelease (none: no InRelease, Release only)
 *   repo.tamperPackages(suite, arch?)   flip a byte of that suite's Packages.xz/.gz/plain as served (after signing)
 *   repo.replaceDeb(name, bytes?)       serve other bytes for the package's pool file
 *   repo.serve(path, bytes | null)      override any path (null → 404); path like '/pool/...'
 *   repo.fail(path, times, status=500)  fail a path `times` times before serving it
 *   repo.requests                       paths requested so far (for "no network" assertions)
 *   await repo.stop() / repo.start()    stop/restart the HTTP server (on the same port)
 * Requires the Debian packages dpkg (dpkg-deb) and gpg (gnupg).
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
  chmodSync,
  existsSync,
  readdirSync,
} from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { xz } from '@napi-rs/lzma';
import type { AddressInfo } from 'node:net';
import type { Source } from '../../src/manifest/types.js';

export interface FixtureFile {
  content: string | Buffer;
  mode?: number;
}

export interface FixturePackage {
  name: string;
  version: string;
  /** Default 'amd64'; 'all' goes to binary-all. */
  architecture?: string;
  depends?: string;
  preDepends?: string;
  provides?: string;
  conflicts?: string;
  breaks?: string;
  recommends?: string;
  multiArch?: 'same' | 'foreign' | 'allowed';
  essential?: boolean;
  priority?: string;
  /** Extra control fields, written as given. */
  control?: Record<string, string>;
  /** Image path → content. Default: /usr/share/doc/<name>/README. */
  files?: Record<string, string | Buffer | FixtureFile>;
  /** Image path → symlink target. */
  symlinks?: Record<string, string>;
  /** Fields that differ in the Packages index only (not in the .deb), e.g. { Depends: 'x [i386]' }, which dpkg-deb would refuse. */
  indexFields?: Record<string, string>;
  /** Compression of the .deb's members (dpkg-deb -Z). Default gzip. */
  compression?: 'gzip' | 'xz' | 'zstd';
}

export type SignMode = 'good' | 'other' | 'none' | 'expired' | 'revoked';

export interface SuiteSpec {
  name: string;
  codename?: string;
  component?: string;
  packages: FixturePackage[];
  sign?: SignMode;
  notAutomatic?: boolean;
  validUntil?: Date;
}

export interface AptRepoOptions {
  suites: SuiteSpec[];
  /** Architectures with binary-<arch> indexes. Default ['amd64']. */
  architectures?: string[];
  /** SOURCE_DATE_EPOCH for dpkg-deb and Release Date. Default 1700000000. */
  epoch?: number;
}

export interface BuiltDeb {
  name: string;
  version: string;
  architecture: string;
  suite: string;
  path: string;
  filename: string;
  sha256: string;
  size: number;
}

export interface AptRepo {
  url: string;
  dir: string;
  keyringPath: string;
  otherKeyringPath: string;
  debs: BuiltDeb[];
  deb(name: string, version?: string): BuiltDeb;
  source(suite: string | string[], extra?: Partial<Source>): Source;
  sign(suite: string, mode: SignMode): void;
  tamperPackages(suite: string, arch?: string): void;
  replaceDeb(name: string, bytes?: Buffer, version?: string): void;
  serve(path: string, bytes: Buffer | null): void;
  fail(path: string, times: number, status?: number): void;
  requests: string[];
  stop(): Promise<void>;
  start(): Promise<void>;
  close(): Promise<void>;
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

function gpg(home: string, args: string[], input?: string, faked?: string): Buffer {
  const pre = ['--homedir', home, '--batch', '--yes', '--no-tty', '--quiet'];
  if (faked) pre.push('--faked-system-time', faked);
  return execFileSync('gpg', [...pre, ...args], { input, stdio: ['pipe', 'pipe', 'pipe'] });
}

interface TestKey {
  home: string;
  fpr: string;
  publicPath: string;
  /** Sign at this faked time (expired key: while it was valid). */
  faked?: string;
  revoke?: () => void;
  revoked?: boolean;
}

function makeKey(root: string, label: string, opts: { expired?: boolean; revoked?: boolean } = {}): TestKey {
  const home = join(root, `gnupg-${label}`);
  mkdirSync(home, { mode: 0o700 });
  const faked = opts.expired ? '20200101T000000!' : undefined;
  const params = [
    'Key-Type: eddsa',
    'Key-Curve: ed25519',
    'Key-Usage: sign',
    `Name-Real: mkimg test ${label}`,
    'Name-Email: test@example.invalid',
    `Expire-Date: ${opts.expired ? '1y' : '0'}`,
    '%no-protection',
    '%commit',
    '',
  ].join('\n');
  gpg(home, ['--gen-key'], params, faked);
  const colons = gpg(home, ['--with-colons', '--list-keys']).toString();
  const fpr = /^fpr:+([0-9A-F]{40}):/m.exec(colons)![1]!;
  const publicPath = join(root, `${label}.asc`);
  writeFileSync(publicPath, gpg(home, ['--armor', '--export', fpr]));
  const k: TestKey = { home, fpr, publicPath, faked };
  if (opts.revoked) {
    // Revoked after it signed: sign() uses the key first, then calls revoke().
    k.revoke = () => {
      const rev = readFileSync(join(home, 'openpgp-revocs.d', `${fpr}.rev`), 'utf8').replace(
        /^:-----BEGIN/m,
        '-----BEGIN',
      );
      const revPath = join(home, 'rev.asc');
      writeFileSync(revPath, rev);
      gpg(home, ['--import', revPath]);
      writeFileSync(publicPath, gpg(home, ['--armor', '--export', fpr]));
    };
  }
  return k;
}

function controlText(p: FixturePackage, arch: string, installedSize: number, index = false): string {
  if (index && p.indexFields) {
    const { indexFields, ...rest } = p;
    const q: FixturePackage = { ...rest, control: { ...(rest.control ?? {}) } };
    for (const [k, v] of Object.entries(indexFields)) {
      const key = k.toLowerCase();
      if (key === 'depends') q.depends = v;
      else if (key === 'pre-depends') q.preDepends = v;
      else if (key === 'provides') q.provides = v;
      else if (key === 'conflicts') q.conflicts = v;
      else if (key === 'breaks') q.breaks = v;
      else q.control![k] = v;
    }
    return controlText(q, arch, installedSize);
  }
  const lines = [
    `Package: ${p.name}`,
    `Version: ${p.version}`,
    `Architecture: ${arch}`,
    'Maintainer: mkimg tests <test@example.invalid>',
    `Installed-Size: ${installedSize}`,
  ];
  if (p.multiArch) lines.push(`Multi-Arch: ${p.multiArch}`);
  if (p.essential) lines.push('Essential: yes');
  if (p.priority) lines.push(`Priority: ${p.priority}`);
  if (p.preDepends) lines.push(`Pre-Depends: ${p.preDepends}`);
  if (p.depends) lines.push(`Depends: ${p.depends}`);
  if (p.recommends) lines.push(`Recommends: ${p.recommends}`);
  if (p.provides) lines.push(`Provides: ${p.provides}`);
  if (p.conflicts) lines.push(`Conflicts: ${p.conflicts}`);
  if (p.breaks) lines.push(`Breaks: ${p.breaks}`);
  for (const [k, v] of Object.entries(p.control ?? {})) lines.push(`${k}: ${v}`);
  lines.push(`Description: test package ${p.name}`, ' Built by test/helpers/apt-repo.ts.');
  return lines.join('\n') + '\n';
}

export async function createAptRepo(opts: AptRepoOptions): Promise<AptRepo> {
  const root = mkdtempSync(join(tmpdir(), 'mkimg-aptrepo-'));
  try {
    return await build(root, opts);
  } catch (e) {
    // a half-built fixture: stop its gpg-agents and remove it
    for (const n of readdirSync(root)) {
      if (n.startsWith('gnupg-')) killAgent(join(root, n));
    }
    rmSync(root, { recursive: true, force: true });
    throw e;
  }
}

function killAgent(home: string): void {
  try {
    execFileSync('gpgconf', ['--homedir', home, '--kill', 'gpg-agent'], { stdio: 'ignore' });
  } catch {
    /* no agent */
  }
}

async function build(root: string, opts: AptRepoOptions): Promise<AptRepo> {
  const www = join(root, 'www');
  mkdirSync(www);
  const epoch = opts.epoch ?? 1700000000;
  const arches = opts.architectures ?? ['amd64'];
  const keys = new Map<string, TestKey>();
  const key = (label: 'good' | 'other' | 'expired' | 'revoked'): TestKey => {
    let k = keys.get(label);
    if (!k) {
      k = makeKey(root, label, { expired: label === 'expired', revoked: label === 'revoked' });
      keys.set(label, k);
    }
    return k;
  };
  const good = key('good');
  const other = key('other');

  // Build the .debs.
  const debs: BuiltDeb[] = [];
  const built = new Map<string, BuiltDeb>(); // dedupe same name/version/arch across suites
  let n = 0;
  for (const suite of opts.suites) {
    const component = suite.component ?? 'main';
    for (const p of suite.packages) {
      const arch = p.architecture ?? 'amd64';
      const id = `${p.name}_${p.version}_${arch}`;
      const prev = built.get(id);
      if (prev) {
        debs.push({ ...prev, suite: suite.name });
        continue;
      }
      const tree = join(root, `tree-${n++}`);
      mkdirSync(join(tree, 'DEBIAN'), { recursive: true });
      const files = p.files ?? { [`/usr/share/doc/${p.name}/README`]: `${p.name} ${p.version}\n` };
      let bytes = 0;
      for (const [path, f] of Object.entries(files)) {
        const ff: FixtureFile = typeof f === 'string' || Buffer.isBuffer(f) ? { content: f } : f;
        const dest = join(tree, path);
        mkdirSync(dirname(dest), { recursive: true });
        writeFileSync(dest, ff.content);
        chmodSync(dest, ff.mode ?? 0o644);
        bytes += Buffer.byteLength(ff.content);
      }
      for (const [path, target] of Object.entries(p.symlinks ?? {})) {
        const dest = join(tree, path);
        mkdirSync(dirname(dest), { recursive: true });
        execFileSync('ln', ['-s', target, dest]);
      }
      writeFileSync(join(tree, 'DEBIAN', 'control'), controlText(p, arch, Math.max(1, Math.ceil(bytes / 1024))));
      const upstreamVersion = p.version.replace(/^\d+:/, '');
      const filename = `pool/${component}/${p.name[0]}/${p.name}/${p.name}_${upstreamVersion}_${arch}.deb`;
      const out = join(www, filename);
      mkdirSync(dirname(out), { recursive: true });
      execFileSync('dpkg-deb', ['--root-owner-group', `-Z${p.compression ?? 'gzip'}`, '--build', tree, out], {
        env: { ...process.env, SOURCE_DATE_EPOCH: String(epoch) },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      rmSync(tree, { recursive: true, force: true });
      const data = readFileSync(out);
      const d: BuiltDeb = {
        name: p.name,
        version: p.version,
        architecture: arch,
        suite: suite.name,
        path: out,
        filename,
        sha256: sha256(data),
        size: data.length,
      };
      built.set(id, d);
      debs.push(d);
    }
  }

  const overrides = new Map<string, Buffer | null>();
  const failures = new Map<string, { times: number; status: number }>();
  const requests: string[] = [];

  const indexPaths = (suite: SuiteSpec) => {
    const component = suite.component ?? 'main';
    const out: { rel: string; arch: string }[] = [];
    for (const a of [...arches, 'all']) out.push({ rel: `${component}/binary-${a}`, arch: a });
    return out;
  };

  // Write indexes and Release per suite.
  const releaseText = new Map<string, string>();
  for (const suite of opts.suites) {
    const dists = join(www, 'dists', suite.name);
    const table: string[] = [];
    const component = suite.component ?? 'main';
    for (const { rel, arch } of indexPaths(suite)) {
      const stanzas: string[] = [];
      const seen = new Set<string>();
      for (const p of suite.packages) {
        if ((p.architecture ?? 'amd64') !== arch) continue;
        const d = debs.find((x) => x.name === p.name && x.version === p.version && x.architecture === arch)!;
        if (seen.has(d.filename)) continue;
        seen.add(d.filename);
        const ctl = controlText(p, arch, 1, true).trimEnd();
        stanzas.push(`${ctl}\nFilename: ${d.filename}\nSize: ${d.size}\nSHA256: ${d.sha256}\n`);
      }
      const plain = Buffer.from(stanzas.join('\n'));
      const variants: [string, Buffer][] = [
        ['Packages', plain],
        ['Packages.gz', gzipSync(plain, { level: 9 })],
        ['Packages.xz', xz.compressSync(plain)],
      ];
      mkdirSync(join(dists, rel), { recursive: true });
      for (const [name, data] of variants) {
        writeFileSync(join(dists, rel, name), data);
        table.push(` ${sha256(data)} ${String(data.length).padStart(8)} ${rel}/${name}`);
      }
    }
    const fields = [
      'Origin: mkimg-test',
      'Label: mkimg-test',
      `Suite: ${suite.name}`,
      `Codename: ${suite.codename ?? suite.name}`,
      `Date: ${new Date(epoch * 1000).toUTCString()}`,
    ];
    if (suite.validUntil) fields.push(`Valid-Until: ${suite.validUntil.toUTCString()}`);
    if (suite.notAutomatic) fields.push('NotAutomatic: yes');
    fields.push(
      `Architectures: ${[...arches, 'all'].join(' ')}`,
      `Components: ${component}`,
      'No-Support-for-Architecture-all: Packages',
      'SHA256:',
      ...table,
    );
    const text = fields.join('\n') + '\n';
    releaseText.set(suite.name, text);
    writeFileSync(join(dists, 'Release'), text);
  }

  const sign = (suiteName: string, mode: SignMode) => {
    const dists = join(www, 'dists', suiteName);
    const inRelease = join(dists, 'InRelease');
    rmSync(inRelease, { force: true });
    if (mode === 'none') return;
    const k = key(mode === 'good' ? 'good' : mode);
    const signed = gpg(
      k.home,
      ['--local-user', k.fpr, '--digest-algo', 'SHA256', '--clearsign', '--output', '-', join(dists, 'Release')],
      undefined,
      k.faked,
    );
    writeFileSync(inRelease, signed);
    if (k.revoke && !k.revoked) {
      k.revoke();
      k.revoked = true;
    }
  };
  for (const suite of opts.suites) sign(suite.name, suite.sign ?? 'good');

  let server: http.Server | null = null;
  let url = '';
  const handler: http.RequestListener = (req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    requests.push(path);
    const f = failures.get(path);
    if (f && f.times > 0) {
      f.times--;
      res.writeHead(f.status).end('injected failure\n');
      return;
    }
    let body: Buffer | null | undefined = overrides.get(path);
    if (body === undefined) {
      const p = join(www, path);
      if (!p.startsWith(www + '/') || !existsSync(p) || readdirSafe(p)) body = null;
      else body = readFileSync(p);
    }
    if (body === null) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      return;
    }
    res.writeHead(200, { 'content-length': body.length, 'content-type': 'application/octet-stream' });
    res.end(body);
  };
  let port = 0; // a restart takes the same port again (the manifests name the URL)
  const start = async () => {
    server = http.createServer(handler);
    server.keepAliveTimeout = 1000;
    await new Promise<void>((r) => server!.listen(port, '127.0.0.1', r));
    port = (server!.address() as AddressInfo).port;
    url = `http://127.0.0.1:${port}`;
    repo.url = url;
  };
  const stop = async () => {
    if (!server) return;
    const s = server;
    server = null;
    s.closeAllConnections();
    await new Promise<void>((r) => s.close(() => r()));
  };

  const findDeb = (name: string, version?: string) => {
    const d = debs.find((x) => x.name === name && (version === undefined || x.version === version));
    if (!d) throw new Error(`fixture: no package ${name}${version ? ' ' + version : ''}`);
    return d;
  };

  const repo: AptRepo = {
    url,
    dir: www,
    keyringPath: good.publicPath,
    otherKeyringPath: other.publicPath,
    debs,
    deb: findDeb,
    source: (suite, extra = {}) => ({
      url: repo.url,
      suites: Array.isArray(suite) ? suite : [suite],
      components: [opts.suites.find((s) => s.name === (Array.isArray(suite) ? suite[0] : suite))?.component ?? 'main'],
      keyring: good.publicPath,
      allowUnsigned: false,
      ...extra,
    }),
    sign,
    tamperPackages: (suite, arch = arches[0]!) => {
      const s = opts.suites.find((x) => x.name === suite)!;
      const rel = `/dists/${suite}/${s.component ?? 'main'}/binary-${arch}`;
      for (const name of ['Packages', 'Packages.gz', 'Packages.xz']) {
        const data = Buffer.from(readFileSync(join(www, rel, name)));
        data[data.length - 2] = data[data.length - 2]! ^ 0x01;
        overrides.set(`${rel}/${name}`, data);
      }
    },
    replaceDeb: (name, bytes, version) => {
      const d = findDeb(name, version);
      const data = bytes ?? Buffer.from(readFileSync(d.path));
      if (!bytes) data[data.length - 1] = data[data.length - 1]! ^ 0xff;
      overrides.set('/' + d.filename, data);
    },
    serve: (path, bytes) => void overrides.set(path, bytes),
    fail: (path, times, status = 500) => void failures.set(path, { times, status }),
    requests,
    stop,
    start,
    close: async () => {
      await stop();
      for (const k of keys.values()) killAgent(k.home);
      rmSync(root, { recursive: true, force: true });
    },
  };
  await start();
  return repo;
}

function readdirSafe(p: string): boolean {
  try {
    readdirSync(p);
    return true; // a directory
  } catch {
    return false;
  }
}
