/**
 * Reads manifest.yaml: YAML with source positions, then interpret.ts (JSON
 * Schema validation, defaults, path resolution against the manifest's
 * folder). Every error names the file, line and column, and the field.
 */
import { resolve } from 'node:path';
import type { ErrorObject } from 'ajv';
import { LineCounter, parseDocument, isMap, isPair, isScalar, type Document, type Node } from 'yaml';
import { MkimgError } from '../util/errors.js';
import { readWrittenLock } from './lock-text.js';
import { documentToJS, YamlShapeError } from './yaml-js.js';
import { interpret, MANIFEST_MAX_BYTES, plainManifest, type Placed, readManifestBytes } from './interpret.js';
import type { Manifest } from './types.js';

export {
  AJV_OPTIONS,
  MANIFEST_MAX_BYTES,
  readManifestBytes,
  SCHEMA_PATH,
  SCHEMA_VALIDATOR_URL,
} from './interpret.js';

export function loadManifest(path: string): Manifest {
  const abs = resolve(path);
  return parseManifest(readManifestBytes(abs), abs);
}

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
      const plain = plainManifest(written, bytes, absPath);
      if (plain) return plain;
      const head = readYaml(written.head, absPath);
      if (head.raw !== null && typeof head.raw === 'object' && !Array.isArray(head.raw) && !('lock' in head.raw))
        return interpret(placed({ ...head, raw: { ...head.raw, lock: written.lock } }, absPath), bytes, absPath);
    } catch (e) {
      if (!(e instanceof MkimgError)) throw e;
    }
  }
  return interpret(placed(readYaml(text, absPath), absPath), bytes, absPath);
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
