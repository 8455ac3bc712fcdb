/**
 * Reads manifest.yaml: YAML with source positions, JSON Schema validation
 * (manifests/mkimg-v1.schema.json, the same file editors use), defaults, and
 * path resolution against the manifest's folder. Every error names the file,
 * line and column, and the field.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, isAbsolute, resolve, posix } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ErrorObject, Options as AjvOptions, ValidateFunction } from 'ajv';
import { LineCounter, parseDocument, isMap, isPair, isScalar, type Document, type Node } from 'yaml';
import { MkimgError } from '../util/errors.js';
import { readInputFile } from '../util/input-file.js';
import { sha256Hex } from '../util/digest.js';
import { readPlainHead } from './head-text.js';
import { readWrittenLock } from './lock-text.js';
import { documentToJS, YamlShapeError } from './yaml-js.js';
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
function schemaValidator(): ValidateFunction {
  if (!validator) {
    const text = readFileSync(SCHEMA_PATH);
    const built = fileURLToPath(SCHEMA_VALIDATOR_URL);
    const pre = existsSync(built) ? (require(built) as ValidateFunction & { schemaSha256?: string }) : undefined;
    if (pre && pre.schemaSha256 === sha256Hex(text)) {
      validator = pre;
    } else {
      // Running from src/ (tests), or the schema changed since the build: compile it now.
      const { Ajv } = require('ajv') as typeof import('ajv');
      validator = new Ajv(AJV_OPTIONS).compile(JSON.parse(text.toString('utf8')));
    }
  }
  return validator;
}

export function loadManifest(path: string): Manifest {
  const abs = resolve(path);
  return parseManifest(readManifestBytes(abs), abs);
}

export function readManifestBytes(path: string): Buffer {
  return readInputFile(path, 'manifest', 'give the path of a manifest.yaml (see examples/ and SPEC.md)');
}

/** The largest manifest read (SPEC §4 "Limits"); a lock of thousands of packages is well under it. */
export const MANIFEST_MAX_BYTES = 8 << 20;

export function parseManifest(bytes: Buffer, absPath: string): Manifest {
  if (bytes.length > MANIFEST_MAX_BYTES) {
    throw new MkimgError(
      'manifest',
      `${absPath}: the manifest is ${bytes.length} bytes, more than the ${MANIFEST_MAX_BYTES >> 20} MiB a manifest may be`,
      {
        hint: 'a manifest lists packages and files; move large data into files: inputs',
      },
    );
  }
  const text = bytes.toString('utf8');
  // A lock: section as mkimg writes it is read without the YAML library (most of the bytes, most
  // of the time). Any error is then reported by the whole-document path, with its position.
  const written = readWrittenLock(text);
  if (written) {
    try {
      // The text before it too, when it keeps to the plain subset (head-text.ts): no YAML library at all.
      const plain = readPlainHead(written.head);
      if (plain && !('lock' in plain.raw))
        return interpret(
          {
            raw: { ...plain.raw, lock: written.lock },
            // Errors are reported by the whole-document path below, which places them.
            fieldPos: () => absPath,
            lineOf: (path) => plain.lineAt(path),
            schemaError: () => absPath,
          },
          bytes,
          absPath,
        );
      const head = readYaml(written.head, absPath);
      if (head.raw !== null && typeof head.raw === 'object' && !Array.isArray(head.raw) && !('lock' in head.raw))
        return interpret(placed({ ...head, raw: { ...head.raw, lock: written.lock } }, absPath), bytes, absPath);
    } catch (e) {
      if (!(e instanceof MkimgError)) throw e;
    }
  }
  return interpret(placed(readYaml(text, absPath), absPath), bytes, absPath);
}

/** A manifest's value, and where its fields are for messages. */
interface Placed {
  raw: unknown;
  /** "file:line:col" of the node at a path (or its nearest ancestor). */
  fieldPos(path: (string | number)[]): string;
  /** The line of the node at a path. */
  lineOf(path: (string | number)[]): number | undefined;
  /** A schema error, placed and worded. */
  schemaError(err: ErrorObject): string;
}

function placed({ doc, lineCounter, raw }: ReadYaml, absPath: string): Placed {
  const where = (offset: number | undefined) => {
    if (offset === undefined) return absPath;
    const { line, col } = lineCounter.linePos(offset);
    return `${absPath}:${line}:${col}`;
  };
  return {
    raw,
    fieldPos: (path) => where(nodeAt(doc, path)?.range?.[0]),
    lineOf: (path) => lineOf(doc, lineCounter, path),
    schemaError: (err) => describeSchemaError(err, doc, where),
  };
}

interface ReadYaml {
  doc: Document;
  lineCounter: LineCounter;
  raw: unknown;
}

/** The YAML text as plain JS, with the document and line counter that place errors. */
function readYaml(text: string, absPath: string): ReadYaml {
  const lineCounter = new LineCounter();
  // Duplicate keys are found by documentToJS (linear); the library's check is quadratic.
  let doc: Document;
  try {
    doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: false });
  } catch (e) {
    if (e instanceof RangeError) throw new MkimgError('manifest', `${absPath}: the manifest nests too deeply to parse`);
    throw e;
  }
  const where = (offset: number | undefined) => {
    if (offset === undefined) return absPath;
    const { line, col } = lineCounter.linePos(offset);
    return `${absPath}:${line}:${col}`;
  };
  if (doc.errors.length > 0) {
    const e = doc.errors[0]!;
    throw new MkimgError('manifest', `${where(e.pos[0])}: invalid YAML: ${e.message.split('\n')[0]}`);
  }
  try {
    return { doc, lineCounter, raw: documentToJS(doc) };
  } catch (e) {
    if (e instanceof YamlShapeError) throw new MkimgError('manifest', `${where(e.offset)}: invalid YAML: ${e.message}`);
    throw e;
  }
}

function interpret({ raw, fieldPos, lineOf: lineAt, schemaError }: Placed, bytes: Buffer, absPath: string): Manifest {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new MkimgError(
      'manifest',
      `${absPath}: a manifest is a YAML mapping with apiVersion: mkimg/v1 (see SPEC.md)`,
    );
  }
  const validate = schemaValidator();
  if (!validate(raw)) {
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

function lineOf(doc: Document, lc: LineCounter, path: (string | number)[]): number | undefined {
  const off = nodeAt(doc, path)?.range?.[0];
  return off === undefined ? undefined : lc.linePos(off).line;
}

function nodeAt(doc: Document, path: (string | number)[]): Node | undefined {
  for (let n = path.length; n >= 0; n--) {
    const node = doc.getIn(path.slice(0, n), true) as Node | undefined;
    if (node && typeof node === 'object' && 'range' in node) return node;
  }
  return doc.contents ?? undefined;
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

function describeSchemaError(err: ErrorObject, doc: Document, where: (off: number | undefined) => string): string {
  const path = err.instancePath
    .split('/')
    .slice(1)
    .map((s) => (/^\d+$/.test(s) ? Number(s) : s.replace(/~1/g, '/').replace(/~0/g, '~')));
  const field =
    path.reduce<string>((acc, p) => (typeof p === 'number' ? `${acc}[${p}]` : acc ? `${acc}.${p}` : p), '') ||
    '(top level)';
  if (err.keyword === 'additionalProperties') {
    const key = (err.params as { additionalProperty: string }).additionalProperty;
    const parent = nodeAt(doc, path);
    let off = parent?.range?.[0];
    if (parent && isMap(parent)) {
      for (const pair of parent.items) {
        if (isPair(pair) && isScalar(pair.key) && pair.key.value === key) off = pair.key.range?.[0];
      }
    }
    return `${where(off)}: unknown key "${key}" in ${field} (see manifests/mkimg-v1.schema.json for the allowed keys)`;
  }
  const at = where(nodeAt(doc, path)?.range?.[0]);
  switch (err.keyword) {
    case 'required':
      return `${at}: ${field} is missing required key "${(err.params as { missingProperty: string }).missingProperty}"`;
    case 'type':
      return `${at}: ${field} must be ${(err.params as { type: string }).type}`;
    case 'const':
      return `${at}: ${field} must be ${JSON.stringify((err.params as { allowedValue: unknown }).allowedValue)}`;
    case 'enum':
      return `${at}: ${field} must be one of ${(err.params as { allowedValues: unknown[] }).allowedValues.map((v) => JSON.stringify(v)).join(', ')}`;
    case 'pattern':
      return `${at}: ${field} has an invalid value (must match ${(err.params as { pattern: string }).pattern})`;
    default:
      return `${at}: ${field} ${err.message ?? 'is invalid'}`;
  }
}

function fieldName(path: (string | number)[]): string {
  return path.reduce<string>((acc, p) => (typeof p === 'number' ? `${acc}[${p}]` : acc ? `${acc}.${p}` : p), '');
}

/**
 * What the schema cannot say: no NUL byte in any string or key (the kernel
 * would cut an argument or a variable there, so the image would not run what
 * the manifest says); a workdir without ".."; ports 1-65535; a stop signal
 * that is a signal name or number; a numeric user within 0..4294967294.
 */
function checkValues(m: Record<string, any>, fieldPos: (path: (string | number)[]) => string): void {
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
