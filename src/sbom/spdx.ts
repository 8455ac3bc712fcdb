/**
 * An SPDX 2.3 JSON SBOM of what the minimized image really holds: the Debian
 * packages that still contribute kept files, every kept regular file with its
 * package, files: inputs, and what mkimg generated. Deterministic: no clock
 * (created = sourceDateEpoch), sorted lists, canonical JSON bytes.
 */
import { SBOM_IMAGE_PATH as SBOM_IMAGE_PATH_ } from '../oci/model.js';
import { readEntryContent } from '../stage/fsutil.js';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { posix } from 'node:path';
import type { Manifest } from '../manifest/types.js';
import type { StageEntry, StagingRoot } from '../stage/types.js';
import { canonicalJson } from '../util/canonical-json.js';
import { normImagePath, writeRootFile } from '../system/rootfs.js';
import { MkimgError } from '../util/errors.js';
import { sha256Hex } from '../util/digest.js';
import { isNormalImagePath, pathOrder } from '../util/path-order.js';
import { packageSourceFor } from '../packages/select.js';

/** Where the SBOM lives inside the image. */
export const SBOM_PATH = SBOM_IMAGE_PATH_;
/** Alias used by src/build/build.ts. */
export { SBOM_IMAGE_PATH_ as SBOM_IMAGE_PATH };
export const SPDX_IMAGE_ID = 'SPDXRef-Image';
export const SPDX_INPUTS_ID = 'SPDXRef-Package-mkimg-inputs';
export const SPDX_GENERATED_ID = 'SPDXRef-Package-mkimg-generated';

function mkimgVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
      version?: string;
    };
    return pkg.version ?? '0';
  } catch {
    return '0';
  }
}

function shortHash(s: string): string {
  return sha256Hex(s).slice(0, 16);
}

/** SPDXRef for a Debian package: readable and collision-free ("libstdc++6" -> "SPDXRef-Package-deb-libstdc--6-<hash>"). */
export function packageSpdxId(name: string): string {
  return `SPDXRef-Package-deb-${name.replace(/[^A-Za-z0-9.-]/g, '-')}-${shortHash(name).slice(0, 8)}`;
}

export function fileSpdxId(path: string): string {
  return `SPDXRef-File-${shortHash(path)}`;
}

function spdxDate(epoch: number): string {
  return new Date(epoch * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

interface FileRecord {
  entry: StageEntry;
  sha1: string;
  sha256: string;
  owner: string; // SPDXID of the containing package
  id: string; // fileSpdxId(entry.path)
}

/**
 * Digests not known when the document is made (see reserveSbom) are written as
 * placeholders: tokens of the digest's length, unique to this document (a
 * random nonce; the document never leaves the builder with them), each with
 * a function giving the real value. fill() swaps them for their values in
 * the serialized document, which keeps its size.
 */
const HEX = /^[0-9a-f]+$/;

class Placeholders {
  private readonly head = `Z${randomBytes(8).toString('hex')}`;
  /** What each token stands for: a digest field of an index entry (filled in by then), or a function of others. */
  private readonly values: (StageEntry | (() => string))[] = [];
  private readonly fields: ('sha1' | 'sha256' | undefined)[] = [];

  /** A token for a digest field of an entry, or for what `value` gives. */
  token(length: number, of: StageEntry | (() => string), field?: 'sha1' | 'sha256'): string {
    const i = this.values.push(of) - 1;
    this.fields.push(field);
    return this.head + String(i).padStart(length - this.head.length, '0');
  }

  private value(i: number): string {
    const of = this.values[i]!;
    if (typeof of === 'function') return of();
    const v = of[this.fields[i]!];
    if (v === undefined)
      throw new MkimgError('internal', `SBOM: ${of.path} was not hashed before the SBOM was written`);
    return v;
  }

  has(s: string): boolean {
    return s.startsWith(this.head);
  }

  /** A placeholder's value; any other string as it is. */
  resolve(s: string): string {
    return this.has(s) ? this.value(Number(s.slice(this.head.length))) : s;
  }

  /** `doc` (serialized, ASCII where the tokens are) with every placeholder replaced by its value (of the token's length). */
  fill(doc: string): string {
    let n = 0;
    const out = doc.replace(new RegExp(`${this.head}([0-9]+)`, 'g'), (token: string, digits: string) => {
      const v = this.value(Number(digits));
      if (v.length !== token.length || !HEX.test(v))
        throw new MkimgError('internal', `SBOM: placeholder ${token} got the value "${v}"`);
      n++;
      return v;
    });
    if (n !== this.values.length)
      throw new MkimgError('internal', `SBOM: ${this.values.length} placeholders made, ${n} found`);
    return out;
  }
}

/** Entries whose digests are not known yet (see reserveSbom), and who stands in for them. */
interface Unhashed {
  is: (e: StageEntry) => boolean;
  placeholders: Placeholders;
}

function hashFile(root: StagingRoot, e: StageEntry, unhashed?: Unhashed): { sha1: string; sha256: string } {
  let f = e;
  if (f.type === 'hardlink' && f.linkTarget) f = root.entries.get(normImagePath(f.linkTarget)) ?? f;
  // Digests computed when the file was staged: no second read of every file.
  if (f.sha1 && f.sha256) return { sha1: f.sha1, sha256: f.sha256 };
  if (unhashed?.is(f))
    return { sha1: unhashed.placeholders.token(40, f, 'sha1'), sha256: unhashed.placeholders.token(64, f, 'sha256') };
  const data = readEntryContent(root.dir, f);
  return {
    sha1: createHash('sha1').update(data).digest('hex'),
    sha256: createHash('sha256').update(data).digest('hex'),
  };
}

/** verificationCode, or a placeholder for it when some file's sha1 is one. */
function verificationCodeOf(files: FileRecord[], unhashed?: Unhashed): string {
  const ph = unhashed?.placeholders;
  if (!ph || !files.some((f) => ph.has(f.sha1))) return verificationCode(files);
  return ph.token(40, () => verificationCode(files.map((f) => ({ ...f, sha1: ph.resolve(f.sha1) }))));
}

function verificationCode(files: FileRecord[]): string {
  const sorted = files.map((f) => f.sha1).sort();
  return createHash('sha1').update(sorted.join('')).digest('hex');
}

/**
 * Build the SPDX 2.3 document (a plain object; serialize with
 * canonicalJsonBytes). `keep` is the minimized image's path set; packages
 * are those of contributingPackages() (exactly the status.d packages).
 * `debSha256ByName` overrides StagedPackage.sha256 when given.
 */
export function makeSbom(
  root: StagingRoot,
  keep: Set<string>,
  manifest: Manifest,
  debSha256ByName?: Map<string, string> | Record<string, string>,
): Record<string, unknown> {
  const { doc, files, fileRelationships } = sbomDocument(root, keep, manifest, debSha256ByName);
  const whole = {
    ...doc,
    files: files.map(fileObject),
    relationships: [
      ...(doc.relationships as unknown[]),
      ...fileRelationships.map(([owner, f]) => relationshipOf(owner, f)),
    ],
  };
  // Drop undefined fields so the object equals its canonical JSON.
  return JSON.parse(canonicalJson(whole)) as Record<string, unknown>;
}

/** An SPDX file object, its keys in canonical (sorted) order. */
function fileObject(f: FileRecord): Record<string, unknown> {
  return {
    SPDXID: f.id,
    checksums: [
      { algorithm: 'SHA1', checksumValue: f.sha1 },
      { algorithm: 'SHA256', checksumValue: f.sha256 },
    ],
    comment: fileComment(f.entry),
    copyrightText: 'NOASSERTION',
    fileName: f.entry.path,
    licenseConcluded: 'NOASSERTION',
  };
}

function relationshipOf(owner: string, f: FileRecord): Record<string, unknown> {
  return { relatedSpdxElement: f.id, relationshipType: 'CONTAINS', spdxElementId: owner };
}

function fileComment(e: StageEntry): string | undefined {
  return e.origin.startsWith('file:')
    ? `from files: input ${e.origin.slice(5)}`
    : e.origin.startsWith('generated:')
      ? `generated by mkimg (${e.origin.slice(10)})`
      : undefined;
}

/**
 * fileObject's and relationshipOf's canonical JSON, written directly (one
 * string per file, no object trees to normalize): thousands of files make
 * most of a document. The ids and digests are ASCII without escapes (hex,
 * or placeholder tokens); names and comments go through JSON.stringify, as
 * canonical JSON's own strings do.
 */
function fileJson(f: FileRecord): string {
  const comment = fileComment(f.entry);
  return (
    `{"SPDXID":"${f.id}","checksums":[{"algorithm":"SHA1","checksumValue":"${f.sha1}"},` +
    `{"algorithm":"SHA256","checksumValue":"${f.sha256}"}],` +
    (comment === undefined ? '' : `"comment":${JSON.stringify(comment)},`) +
    `"copyrightText":"NOASSERTION","fileName":${JSON.stringify(f.entry.path)},"licenseConcluded":"NOASSERTION"}`
  );
}

/**
 * The document's canonical JSON: the rest of the document through
 * canonicalJson with a marker where the files and their relationships go,
 * the markers then replaced by fileJson's text. Same text as canonicalJson of
 * the whole document (tested against makeSbom).
 */
function sbomText(parts: SbomParts): string {
  const mark = `M${randomBytes(8).toString('hex')}`;
  const hasRels = parts.fileRelationships.length > 0;
  const s = canonicalJson({
    ...parts.doc,
    files: [`${mark}F`],
    relationships: hasRels ? [...(parts.doc.relationships as unknown[]), `${mark}R`] : parts.doc.relationships,
  });
  const owners = new Map<string, string>();
  const ownerJson = (o: string) => owners.get(o) ?? owners.set(o, JSON.stringify(o)).get(o)!;
  const files = parts.files.map(fileJson).join(',');
  const rels = parts.fileRelationships
    .map(
      ([owner, f]) =>
        `{"relatedSpdxElement":"${f.id}","relationshipType":"CONTAINS","spdxElementId":${ownerJson(owner)}}`,
    )
    .join(',');
  const splice = (text: string, marker: string, by: string): string => {
    const at = text.indexOf(marker);
    if (at < 0 || text.indexOf(marker, at + 1) >= 0)
      throw new MkimgError('internal', `SBOM: the marker ${marker} is not in the document once`);
    return text.slice(0, at) + by + text.slice(at + marker.length);
  };
  const withFiles = splice(s, `"${mark}F"`, files);
  return hasRels ? splice(withFiles, `"${mark}R"`, rels) : withFiles;
}

/** The document's bytes: UTF-8 (ASCII text, most documents, is copied as latin1: the same bytes, faster). */
function encode(text: string): Buffer {
  return Buffer.from(text, NON_ASCII.test(text) ? 'utf8' : 'latin1');
}

// biome-ignore lint/suspicious/noControlCharactersInRegex: the range is every character outside ASCII, on purpose.
const NON_ASCII = /[^\x00-\x7f]/;

/**
 * makeSbom's document in parts: everything but the files and the package ->
 * file relationships (members may be undefined: canonical JSON leaves them
 * out), the file records, and those relationships (owner, file) in order.
 */
interface SbomParts {
  doc: Record<string, unknown>;
  files: FileRecord[];
  fileRelationships: [string, FileRecord][];
}

function sbomDocument(
  root: StagingRoot,
  keep: Set<string>,
  manifest: Manifest,
  debSha256ByName?: Map<string, string> | Record<string, string>,
  unhashed?: Unhashed,
): SbomParts {
  // The installed packages, as their source describes them (purls, suppliers, licenses).
  const described = packageSourceFor(manifest).describe(root, keep, manifest, debSha256ByName);
  const ownerOfPath = new Map<string, string>();
  for (const d of described) {
    const id = packageSpdxId(d.name);
    for (const p of d.paths) ownerOfPath.set(p, id);
  }
  // A license file reached through a package's doc link belongs to a sibling
  // package; when that sibling is not listed, the linking package names it.
  for (const d of described) {
    const id = packageSpdxId(d.name);
    for (const p of d.licensePaths) if (keep.has(p) && !ownerOfPath.has(p)) ownerOfPath.set(p, id);
  }

  // Files: every kept regular file (and hardlink), except the SBOM itself.
  const files: FileRecord[] = [];
  for (const p of [...keep].map((k) => (isNormalImagePath(k) ? k : normImagePath(k))).sort(pathOrder)) {
    if (p === SBOM_PATH) continue;
    const e = root.entries.get(p);
    if (!e || (e.type !== 'file' && e.type !== 'hardlink')) continue;
    const owner = ownerOfPath.get(p) ?? (e.origin.startsWith('file:') ? SPDX_INPUTS_ID : SPDX_GENERATED_ID);
    const { sha1, sha256 } = hashFile(root, e, unhashed);
    files.push({ entry: e, sha1, sha256, owner, id: fileSpdxId(e.path) });
  }
  const filesByOwner = new Map<string, FileRecord[]>();
  for (const f of files) {
    const own = filesByOwner.get(f.owner);
    if (own) own.push(f);
    else filesByOwner.set(f.owner, [f]);
  }

  const extracted = new Map<string, { licenseId: string; name: string; extractedText: string }>();
  const packages: Record<string, unknown>[] = [];
  const relationships: Record<string, unknown>[] = [
    { spdxElementId: 'SPDXRef-DOCUMENT', relationshipType: 'DESCRIBES', relatedSpdxElement: SPDX_IMAGE_ID },
  ];

  packages.push({
    SPDXID: SPDX_IMAGE_ID,
    name: manifest.name,
    versionInfo: manifest.tag,
    downloadLocation: 'NOASSERTION',
    filesAnalyzed: false,
    primaryPackagePurpose: 'CONTAINER',
    supplier: 'NOASSERTION',
    licenseConcluded: 'NOASSERTION',
    licenseDeclared: 'NOASSERTION',
    copyrightText: 'NOASSERTION',
    comment: `OCI image built by mkimg from manifest.yaml with sha256 ${manifest.origin.sha256}`,
  });

  for (const d of described) {
    const id = packageSpdxId(d.name);
    const own = filesByOwner.get(id) ?? [];
    for (const x of d.license.extracted) {
      const prev = extracted.get(x.licenseId);
      // Same name in two packages may carry different text: keep the first by package order, deterministically.
      if (!prev) extracted.set(x.licenseId, x);
    }
    packages.push({
      SPDXID: id,
      name: d.name,
      versionInfo: d.version,
      supplier: d.supplier,
      downloadLocation: 'NOASSERTION',
      packageFileName: d.fileName,
      homepage: d.homepage,
      sourceInfo: d.sourceInfo,
      summary: d.summary,
      filesAnalyzed: own.length > 0,
      packageVerificationCode:
        own.length > 0 ? { packageVerificationCodeValue: verificationCodeOf(own, unhashed) } : undefined,
      checksums: [{ algorithm: 'SHA256', checksumValue: d.sha256 }],
      externalRefs: [{ referenceCategory: 'PACKAGE-MANAGER', referenceType: 'purl', referenceLocator: d.purl }],
      licenseDeclared: d.license.expression,
      licenseConcluded: 'NOASSERTION',
      licenseComments: d.license.comment,
      copyrightText: 'NOASSERTION',
      attributionTexts: undefined,
    });
    relationships.push({ spdxElementId: SPDX_IMAGE_ID, relationshipType: 'CONTAINS', relatedSpdxElement: id });
  }

  for (const [id, name, summary] of [
    [SPDX_INPUTS_ID, `${manifest.name}-inputs`, "Files from the manifest's files: inputs"],
    [
      SPDX_GENERATED_ID,
      `${manifest.name}-generated`,
      'Files mkimg generated: accounts, system files, package database',
    ],
  ] as const) {
    const own = filesByOwner.get(id) ?? [];
    if (own.length === 0) continue;
    packages.push({
      SPDXID: id,
      name,
      versionInfo: manifest.tag,
      summary,
      supplier: 'NOASSERTION',
      downloadLocation: 'NOASSERTION',
      filesAnalyzed: true,
      packageVerificationCode: { packageVerificationCodeValue: verificationCodeOf(own, unhashed) },
      licenseDeclared: 'NOASSERTION',
      licenseConcluded: 'NOASSERTION',
      copyrightText: 'NOASSERTION',
    });
    relationships.push({ spdxElementId: SPDX_IMAGE_ID, relationshipType: 'CONTAINS', relatedSpdxElement: id });
  }

  // Package -> file relationships, grouped by package in package order, files in path order.
  const fileRelationships: [string, FileRecord][] = [];
  for (const p of packages) {
    const id = p.SPDXID as string;
    for (const f of filesByOwner.get(id) ?? []) fileRelationships.push([id, f]);
  }

  const doc = {
    spdxVersion: 'SPDX-2.3',
    dataLicense: 'CC0-1.0',
    SPDXID: 'SPDXRef-DOCUMENT',
    name: `${manifest.name}:${manifest.tag}`,
    documentNamespace: `https://mkimg.invalid/spdx/${encodeURIComponent(manifest.name)}-${manifest.origin.sha256}`,
    creationInfo: {
      created: spdxDate(manifest.sourceDateEpoch),
      creators: [`Tool: mkimg-${mkimgVersion()}`],
    },
    documentDescribes: undefined,
    packages,
    files: [],
    hasExtractedLicensingInfos:
      extracted.size > 0 ? [...extracted.values()].sort((a, b) => pathOrder(a.licenseId, b.licenseId)) : undefined,
    relationships,
  };
  return { doc, files, fileRelationships };
}

/** The SBOM's bytes: canonical JSON of makeSbom() (serialized once, without the round trip). */
export function sbomBytes(
  root: StagingRoot,
  keep: Set<string>,
  manifest: Manifest,
  debSha256ByName?: Map<string, string> | Record<string, string>,
): Buffer {
  return encode(sbomText(sbomDocument(root, keep, manifest, debSha256ByName)));
}

/**
 * Write the SBOM into the staging root at SBOM_PATH (0644 root) and return
 * its bytes (for --sbom FILE) and the image paths written, which the caller
 * adds to the keep set. Call after writeStatusD, with status.d paths in keep.
 */
export function writeSbom(
  root: StagingRoot,
  keep: Set<string>,
  manifest: Manifest,
  debSha256ByName?: Map<string, string> | Record<string, string>,
): { bytes: Buffer; paths: string[] } {
  const bytes = sbomBytes(root, keep, manifest, debSha256ByName);
  return { bytes, paths: placeSbom(root, bytes) };
}

/**
 * writeSbom for a root some of whose files are not hashed yet (`unhashed`:
 * files: inputs indexed in place, whose digests the layer writer records as
 * it writes them). The document is made once, with placeholders of the
 * digests' lengths where they are missing, so the SBOM's entry gets its final
 * size; `bytes()` fills them in once those entries have their digests (it
 * throws if one still lacks them). Nothing in the document is ordered by a
 * digest, so the placeholders change nothing else.
 */
export function reserveSbom(
  root: StagingRoot,
  keep: Set<string>,
  manifest: Manifest,
  debSha256ByName: Map<string, string> | Record<string, string> | undefined,
  unhashed: (e: StageEntry) => boolean,
): { paths: string[]; bytes: () => Buffer } {
  const placeholders = new Placeholders();
  const text = sbomText(sbomDocument(root, keep, manifest, debSha256ByName, { is: unhashed, placeholders }));
  const paths = placeSbom(root, encode(text));
  // What the root holds there is the document with placeholders: the entry's digest is not the SBOM's.
  delete root.entries.get(SBOM_PATH)!.sha256;
  return { paths, bytes: () => encode(placeholders.fill(text)) };
}

/**
 * The SBOM's folders must be folders: a package or a files: input that makes
 * /usr/share/mkimg (or a folder above it) a symlink or a file would move the
 * SBOM elsewhere, or have nowhere to put it. Refused, naming who did it.
 */
function checkSbomPlace(root: StagingRoot): void {
  for (let p = posix.dirname(SBOM_PATH); p !== '/'; p = posix.dirname(p)) {
    const e = root.entries.get(p);
    if (!e || e.type === 'dir') continue;
    const pkg = e.origin.startsWith('pkg:');
    const who = pkg ? `package ${e.origin.slice(4)}` : `the files: input ${e.origin.replace(/^file:/, '')}`;
    throw new MkimgError(
      pkg ? 'input' : 'manifest',
      `${p}: ${who} makes it a ${e.type}, but mkimg writes the image's SBOM at ${SBOM_PATH}, so ${p} must be a directory`,
      {
        hint: pkg
          ? 'drop that package from the manifest'
          : `remove ${p} from that files: tree (mkimg owns ${posix.dirname(SBOM_PATH)})`,
        details: { path: p, origin: e.origin },
      },
    );
  }
}

/** Write the SBOM's bytes at SBOM_PATH; the image paths it takes (the file and its parents). */
function placeSbom(root: StagingRoot, bytes: Buffer): string[] {
  checkSbomPlace(root);
  const r = writeRootFile(root, SBOM_PATH, bytes, 'generated:sbom');
  const paths = [...r.created, r.path];
  for (let p = posix.dirname(SBOM_PATH); p !== '/'; p = posix.dirname(p)) paths.push(p);
  return [...new Set(paths)].sort(pathOrder);
}
