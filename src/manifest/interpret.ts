/**
 * A manifest's value made into a Manifest: JSON Schema validation
 * (manifests/mkimg-v1.schema.json, the same file editors use), defaults, and
 * path resolution against the manifest's folder. Without the YAML library:
 * load.ts reads YAML with source positions (and places every error at a
 * file, line and column); parseManifestQuickly reads the manifests mkimg
 * writes itself (a plain head, the lock: section as lock writes it) and
 * loads load.ts, with the library, only for any other text or any error. A
 * warm lock or build then never loads the library (~10 ms of each start).
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, isAbsolute, resolve, posix } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ErrorObject, Options as AjvOptions, ValidateFunction } from 'ajv';
import { MkimgError } from '../util/errors.js';
import { readInputFile } from '../util/input-file.js';
import { sha256Hex } from '../util/digest.js';
import { loadCommonJsCached } from './code-cache.js';
import { readPlainHead } from './head-text.js';
import { readWrittenLock } from './lock-text.js';
import type { CheckSpec, FileInput, Lock, Manifest, MinimizeSpec, PackageRequest, Source, Variant } from './types.js';

const here = dirname(fileURLToPath(import.meta.url));
export const SCHEMA_PATH = resolve(here, '../../manifests/mkimg-v1.schema.json');
/** ajv options of the manifest validator (also read by scripts/gen-schema-validator.mjs). */
export const AJV_OPTIONS: AjvOptions = { allErrors: true, strict: false };
/**
 * The validator compiled at build time (scripts/gen-schema-validator.mjs,
 * part of npm run build): ajv's standalone code for the schema, so that no
 * command loads ajv's compiler or compiles the schema at run time. Written
 * as ../manifest/ so that it names dist/manifest/ from dist/bundle/ too.
 */
export const SCHEMA_VALIDATOR_URL = new URL('../manifest/schema-validator.cjs', import.meta.url).href;

const require = createRequire(import.meta.url);
let validator: ValidateFunction | undefined;
/** Writes the prebuilt validator's code cache once it has run (when it was compiled from its text). */
let afterFirstRun: (() => void) | undefined;
function schemaValidator(): ValidateFunction {
  if (!validator) {
    const text = readFileSync(SCHEMA_PATH);
    const built = fileURLToPath(SCHEMA_VALIDATOR_URL);
    // Loaded with V8's code cache (code-cache.ts): parsing and compiling it cost ~15 ms of every start.
    const pre = existsSync(built) ? loadCommonJsCached<ValidateFunction & { schemaSha256?: string }>(built) : undefined;
    if (pre && pre.exports.schemaSha256 === sha256Hex(text)) {
      validator = pre.exports;
      if (pre.cache === 'compiled') afterFirstRun = pre.make;
    } else {
      // Running from src/ (tests), or the schema changed since the build: compile it now.
      const { Ajv } = require('ajv') as typeof import('ajv');
      validator = new Ajv(AJV_OPTIONS).compile(JSON.parse(text.toString('utf8')));
    }
  }
  return validator;
}

export function readManifestBytes(path: string): Buffer {
  return readInputFile(path, 'manifest', 'give the path of a manifest.yaml (see examples/ and SPEC.md)');
}

/** The largest manifest read (SPEC §4 "Limits"); a lock of thousands of packages is well under it. */
export const MANIFEST_MAX_BYTES = 8 << 20;

/**
 * The first way parseManifest reads a manifest: its written lock: section
 * and a plain head, interpreted; undefined when the text is not of that
 * shape or interpreting it fails (parseManifest then reports the error, with
 * its position).
 */
export function parsePlain(bytes: Buffer, absPath: string): Manifest | undefined {
  const written = readWrittenLock(bytes.toString('utf8'));
  try {
    return written && plainManifest(written, bytes, absPath);
  } catch (e) {
    if (!(e instanceof MkimgError)) throw e;
    return undefined;
  }
}

/**
 * The manifest whose lock: section is `written`, when the text before it
 * keeps to the plain subset (head-text.ts): no YAML library at all.
 * Undefined when it does not; throws what interpreting it throws.
 */
export function plainManifest(
  written: { head: string; lock: unknown },
  bytes: Buffer,
  absPath: string,
): Manifest | undefined {
  const plain = readPlainHead(written.head);
  if (!plain || 'lock' in plain.raw) return undefined;
  return interpret(
    {
      raw: { ...plain.raw, lock: written.lock },
      // Errors are reported by the whole-document path, which places them.
      fieldPos: () => absPath,
      lineOf: (path) => plain.lineAt(path),
      schemaError: () => absPath,
    },
    bytes,
    absPath,
  );
}

/** A manifest's value, and where its fields are for messages. */
export interface Placed {
  raw: unknown;
  /** "file:line:col" of the node at a path (or its nearest ancestor). */
  fieldPos(path: (string | number)[]): string;
  /** The line of the node at a path. */
  lineOf(path: (string | number)[]): number | undefined;
  /** A schema error, placed and worded. */
  schemaError(err: ErrorObject): string;
}

export function interpret(
  { raw, fieldPos, lineOf: lineAt, schemaError }: Placed,
  bytes: Buffer,
  absPath: string,
): Manifest {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new MkimgError(
      'manifest',
      `${absPath}: a manifest is a YAML mapping with apiVersion: mkimg/v1 (see SPEC.md)`,
    );
  }
  const validate = schemaValidator();
  const valid = validate(raw);
  afterFirstRun?.();
  afterFirstRun = undefined;
  if (!valid) {
    const err = pickError(validate.errors ?? []);
    throw new MkimgError('manifest', schemaError(err));
  }
  const dir = dirname(absPath);
  const m = raw as Record<string, any>;
  checkValues(m, fieldPos);

  const resolveInput = (p: string, path: (string | number)[], field: string) => {
    const full = isAbsolute(p) ? p : resolve(dir, p);
    try {
      statSync(full);
    } catch {
      throw new MkimgError('manifest', `${fieldPos(path)}: ${field}: ${p} does not exist (resolved to ${full})`, {
        hint: "relative paths resolve against the manifest's folder",
      });
    }
    return full;
  };

  if (m.architecture !== undefined && m.architectures !== undefined) {
    throw new MkimgError('manifest', `${fieldPos(['architectures'])}: give architecture or architectures, not both`, {
      hint: 'architecture: X is the same as architectures: [X]',
    });
  }
  const architectures: string[] = m.architectures ?? [m.architecture ?? 'amd64'];

  const sources: Source[] = (m.sources ?? []).map((s: any, i: number) => ({
    url: s.url,
    suites: s.suites,
    components: s.components ?? ['main'],
    keyring:
      s.keyring !== undefined ? resolveInput(s.keyring, ['sources', i, 'keyring'], `sources[${i}].keyring`) : undefined,
    allowUnsigned: s.allowUnsigned ?? false,
  }));

  const packages: PackageRequest[] = (m.packages ?? []).map((p: any, i: number) => {
    const line = lineAt(['packages', i]);
    if (typeof p === 'string') {
      const [name, version] = p.split('=', 2) as [string, string | undefined];
      return { kind: 'name', name, version, line };
    }
    if (typeof p.name === 'string') {
      const [name, version] = p.name.split('=', 2) as [string, string | undefined];
      for (const a of p.architectures as string[]) {
        if (!architectures.includes(a)) {
          throw new MkimgError(
            'manifest',
            `${fieldPos(['packages', i, 'architectures'])}: packages[${i}] names architecture ${a}, which the manifest does not build (${architectures.join(', ')})`,
            {
              hint: 'list only architectures from architectures:',
            },
          );
        }
      }
      return { kind: 'name', name, version, line, architectures: p.architectures };
    }
    return {
      kind: 'deb',
      path: resolveInput(p.deb, ['packages', i, 'deb'], `packages[${i}].deb`),
      sha256: p.sha256,
      line,
    };
  });
  if (packages.some((p) => p.kind === 'name') && sources.length === 0) {
    throw new MkimgError(
      'manifest',
      `${fieldPos(['packages'])}: packages names Debian packages but the manifest has no sources:`,
      {
        hint: 'add a sources: entry (suites, components, keyring); see SPEC.md',
      },
    );
  }

  const variants: Variant[] = Object.keys(m.variants ?? {})
    .sort()
    .map((name) => {
      const v = m.variants[name];
      return {
        name,
        packages: v.packages.map((spec: string) => {
          const [pkg, version] = spec.split('=');
          return { kind: 'name' as const, name: pkg!, version };
        }),
        ...(v.entrypoint ? { entrypoint: v.entrypoint } : {}),
      };
    });

  const lock: Lock | undefined = m.lock
    ? {
        version: 1,
        ...(m.lock.resolution ? { resolution: m.lock.resolution } : {}),
        packages: m.lock.packages ?? [],
        ...(m.lock.architectures ? { architectures: m.lock.architectures } : {}),
        ...(m.lock.variants ? { variants: m.lock.variants } : {}),
        files: m.lock.files ?? [],
      }
    : undefined;

  const lockedFiles = new Map<string, { sha256: string }>();
  for (const l of lock?.files ?? []) if (!lockedFiles.has(l.src)) lockedFiles.set(l.src, l);
  const files: FileInput[] = (m.files ?? []).map((f: any, i: number) => {
    const dest = posix.normalize(f.dest);
    if (dest !== f.dest.replace(/\/+$/, '') && dest !== f.dest) {
      throw new MkimgError(
        'manifest',
        `${fieldPos(['files', i, 'dest'])}: files[${i}].dest ${f.dest} is not a normalized absolute path (use ${dest})`,
      );
    }
    if (dest.split('/').includes('..')) {
      throw new MkimgError('manifest', `${fieldPos(['files', i, 'dest'])}: files[${i}].dest must not contain ..`);
    }
    const pin = lockedFiles.get(f.src);
    return {
      src: resolveInput(f.src, ['files', i, 'src'], `files[${i}].src`),
      srcAsWritten: f.src,
      dest: dest === '/' ? '/' : dest.replace(/\/+$/, ''),
      mode: f.mode !== undefined ? parseInt(f.mode, 8) : undefined,
      uid: f.uid,
      gid: f.gid,
      sha256: pin?.sha256,
    };
  });

  const accounts = {
    groups: (m.accounts?.groups ?? []).map((g: any) => ({ name: g.name, gid: g.gid, members: g.members ?? [] })),
    users: (m.accounts?.users ?? []).map((u: any) => ({
      name: u.name,
      uid: u.uid,
      gid: u.gid ?? u.uid,
      home: u.home ?? (u.uid === 0 ? '/root' : `/home/${u.name}`),
      shell: u.shell ?? '/usr/sbin/nologin',
      gecos: u.gecos,
    })),
  };
  checkUnique(
    accounts.users.map((u: any) => u.name),
    'accounts.users name',
    fieldPos(['accounts', 'users']),
  );
  checkUnique(
    accounts.groups.map((g: any) => g.name),
    'accounts.groups name',
    fieldPos(['accounts', 'groups']),
  );

  const c = m.config ?? {};
  const config = {
    entrypoint: c.entrypoint,
    cmd: c.cmd,
    env: c.env ?? {},
    workdir: c.workdir,
    user: c.user,
    labels: c.labels ?? {},
    exposedPorts: c.exposedPorts ?? [],
    stopSignal: c.stopSignal,
    volumes: c.volumes,
  };

  let minimize: MinimizeSpec | false;
  if (m.minimize === false) minimize = false;
  else {
    const mz = m.minimize ?? {};
    const checks: CheckSpec[] = (mz.checks ?? []).map((k: any) => ({
      name: k.name,
      args: k.args,
      env: k.env ?? {},
      stdin: k.stdin,
      workdir: k.workdir,
      user: k.user,
      expect: { exitCode: k.expect?.exitCode ?? 0, stdout: k.expect?.stdout, stderr: k.expect?.stderr },
    }));
    if (checks.length === 0 && !(config.entrypoint?.length || config.cmd?.length)) {
      throw new MkimgError(
        'manifest',
        `${fieldPos(['minimize'])}: minimization needs something to run: give minimize.checks, or config.entrypoint/cmd`,
        {
          hint: 'or set `minimize: false` to keep every file',
        },
      );
    }
    minimize = {
      checks,
      keepGroups: mz.keepGroups ?? [],
      keep: mz.keep ?? [],
      exclude: mz.exclude ?? [],
      keepListed: mz.keepListed ?? false,
      keepPackages: mz.keepPackages ?? [],
      timeoutSeconds: mz.timeoutSeconds ?? 60,
    };
  }

  return {
    apiVersion: 'mkimg/v1',
    name: m.name,
    tag: m.tag ?? 'latest',
    architecture: architectures[0]!,
    architectures,
    sourceDateEpoch: m.sourceDateEpoch,
    sources,
    packages,
    files,
    accounts,
    config,
    minimize,
    variants,
    layering: { strategy: m.layering?.strategy ?? 'origin', budget: m.layering?.budget ?? 16 },
    bytecode: m.bytecode ?? true,
    compression: m.compression ?? 'gzip',
    lock,
    origin: { path: absPath, dir, bytes, sha256: sha256Hex(bytes) },
  };
}

function checkUnique(names: string[], what: string, at: string) {
  const seen = new Set<string>();
  for (const n of names) {
    if (seen.has(n)) throw new MkimgError('manifest', `${at}: ${what} "${n}" appears twice`);
    seen.add(n);
  }
}

/** Among ajv's errors (oneOf produces several), the deepest one speaks most plainly. */
function pickError(errors: ErrorObject[]): ErrorObject {
  const ranked = [...errors].sort((a, b) => {
    const depth = (e: ErrorObject) => e.instancePath.split('/').length + (e.keyword === 'additionalProperties' ? 1 : 0);
    const weak = (e: ErrorObject) =>
      e.keyword === 'oneOf' || (e.keyword === 'const' && e.instancePath === '/minimize') ? 1 : 0;
    return weak(a) - weak(b) || depth(b) - depth(a);
  });
  return ranked[0]!;
}

export function fieldName(path: (string | number)[]): string {
  return path.reduce<string>((acc, p) => (typeof p === 'number' ? `${acc}[${p}]` : acc ? `${acc}.${p}` : p), '');
}

/**
 * What the schema cannot say: no NUL byte in any string or key (the kernel
 * would cut an argument or a variable there, so the image would not run what
 * the manifest says); a workdir without ".."; ports 1-65535; a stop signal
 * that is a signal name or number; a numeric user within 0..4294967294.
 */
export function checkValues(m: Record<string, any>, fieldPos: (path: (string | number)[]) => string): void {
  const fail = (path: (string | number)[], msg: string): never => {
    throw new MkimgError('manifest', `${fieldPos(path)}: ${fieldName(path)} ${msg}`);
  };
  const stack: Array<{ v: unknown; path: (string | number)[] }> = [{ v: m, path: [] }];
  while (stack.length) {
    const { v, path } = stack.pop()!;
    if (typeof v === 'string') {
      if (v.includes('\0')) fail(path, 'contains a NUL byte');
    } else if (Array.isArray(v)) {
      v.forEach((x, i) => stack.push({ v: x, path: [...path, i] }));
    } else if (v && typeof v === 'object') {
      for (const [k, x] of Object.entries(v)) {
        if (k.includes('\0')) fail(path, `has a key with a NUL byte (${JSON.stringify(k)})`);
        stack.push({ v: x, path: [...path, k] });
      }
    }
  }
  const workdirs: Array<[string | undefined, (string | number)[]]> = [[m.config?.workdir, ['config', 'workdir']]];
  (m.minimize?.checks ?? []).forEach((k: any, i: number) =>
    workdirs.push([k.workdir, ['minimize', 'checks', i, 'workdir']]),
  );
  for (const [w, path] of workdirs) {
    if (typeof w === 'string' && w.split('/').includes('..')) fail(path, `must not contain .. (${w})`);
  }
  (m.config?.exposedPorts ?? []).forEach((p: string, i: number) => {
    const n = Number(p.split('/')[0]);
    if (!(n >= 1 && n <= 65535)) fail(['config', 'exposedPorts', i], `port ${n} is not within 1-65535`);
  });
  const sig = m.config?.stopSignal;
  if (sig !== undefined && !/^(SIG[A-Z][A-Z0-9]*([+-][0-9]{1,2})?|[0-9]{1,2})$/.test(sig)) {
    fail(['config', 'stopSignal'], `${JSON.stringify(sig)} is not a signal name (SIGTERM, SIGRTMIN+3) or number`);
  }
  const users: Array<[unknown, (string | number)[]]> = [[m.config?.user, ['config', 'user']]];
  (m.minimize?.checks ?? []).forEach((k: any, i: number) => users.push([k.user, ['minimize', 'checks', i, 'user']]));
  for (const [u, path] of users) {
    if (typeof u !== 'string') continue;
    for (const part of u.split(':')) {
      if (/^[0-9]+$/.test(part) && !(Number(part) <= 4294967294))
        fail(path, `${part} is not a valid uid or gid (0-4294967294)`);
    }
  }
}
