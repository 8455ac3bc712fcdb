/**
 * `mkimg run --explain`: run the program traced, then name what it looked
 * for and did not find that the image's unminimized package closure had.
 *
 * The closure is the set of Debian packages in the image's SBOM
 * (/usr/share/mkimg/sbom.spdx.json: name, version, sha256 of the .deb); their
 * .debs come from mkimg's cache (blobs/sha256/<sha256>, what the build
 * fetched). A path the program touched that does not exist in the image is
 * matched against each .deb's data paths, both taken through the image's own
 * directory symlinks (/lib -> usr/lib), so /lib/x and /usr/lib/x are the same.
 */
import { existsSync, lstatSync, mkdtempSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, posix } from 'node:path';
import type { LaunchRecord } from './record.js';
import { launch, type LaunchSpec } from './launch.js';

interface SbomPackage {
  name: string;
  version: string;
  sha256: string;
}

export interface ExplainedPath {
  path: string;
  package: string;
  version: string;
}

export interface Explanation {
  /** Paths the program touched that the image lacks, canonical, sorted. */
  missing: string[];
  /** Those of them that a package of the closure ships. */
  shipped: ExplainedPath[];
  /** Packages of the SBOM whose .deb is not in the cache (their files could not be checked). */
  uncached: string[];
  sbom: boolean;
}

/**
 * The canonical image path of `p` in `root`: each existing component that is
 * a symlink is followed (inside the root; at most 40 hops), the first missing
 * one and the rest are appended as written. `exists` says whether all of it exists.
 */
export function canonicalInRoot(root: string, p: string): { path: string; exists: boolean } {
  let todo = p.split('/').filter((s) => s !== '' && s !== '.');
  const done: string[] = [];
  let hops = 0;
  while (todo.length > 0) {
    const c = todo.shift()!;
    if (c === '..') {
      done.pop();
      continue;
    }
    const host = join(root, ...done, c);
    let st;
    try {
      st = lstatSync(host);
    } catch {
      return { path: '/' + [...done, c, ...todo.filter((s) => s !== '..')].join('/'), exists: false };
    }
    if (st.isSymbolicLink() && todo.length > 0 && ++hops <= 40) {
      const t = readlinkSync(host);
      if (t.startsWith('/')) done.length = 0;
      todo = [...t.split('/').filter((s) => s !== '' && s !== '.'), ...todo];
      continue;
    }
    done.push(c);
  }
  return { path: '/' + done.join('/'), exists: true };
}

function readSbom(root: string): SbomPackage[] | undefined {
  const p = join(root, 'usr/share/mkimg/sbom.spdx.json');
  if (!existsSync(p) || !lstatSync(p).isFile()) return undefined;
  try {
    const doc = JSON.parse(readFileSync(p, 'utf8')) as {
      packages?: Array<{
        name?: string;
        versionInfo?: string;
        checksums?: Array<{ algorithm: string; checksumValue: string }>;
        externalRefs?: Array<{ referenceType?: string }>;
      }>;
    };
    const out: SbomPackage[] = [];
    for (const pk of doc.packages ?? []) {
      if (!pk.externalRefs?.some((r) => r.referenceType === 'purl')) continue;
      const sha = pk.checksums?.find((c) => c.algorithm === 'SHA256')?.checksumValue;
      if (pk.name && sha && /^[0-9a-f]{64}$/.test(sha))
        out.push({ name: pk.name, version: pk.versionInfo ?? '', sha256: sha });
    }
    return out;
  } catch {
    return undefined;
  }
}

export async function explainEvents(root: string, eventsText: string, cacheDir: string): Promise<Explanation> {
  const { parseEvents } = await import('../trace/events.js');
  const missing = new Set<string>();
  for (const ev of parseEvents(eventsText)) {
    if (!ev.abs || !ev.abs.startsWith('/')) continue;
    if (
      ev.abs === '/proc' ||
      ev.abs.startsWith('/proc/') ||
      ev.abs.startsWith('/dev/') ||
      ev.abs.startsWith('/sys/') ||
      ev.abs.startsWith('/tmp/') ||
      ev.abs.startsWith('/run/')
    )
      continue;
    const c = canonicalInRoot(root, ev.abs);
    if (!c.exists) missing.add(c.path);
  }
  const packages = readSbom(root);
  const shipped: ExplainedPath[] = [];
  const uncached: string[] = [];
  if (packages && missing.size > 0) {
    const { readDeb } = await import('../debian/deb/deb.js');
    for (const pk of packages) {
      const deb = join(cacheDir, 'blobs', 'sha256', pk.sha256);
      if (!existsSync(deb)) {
        uncached.push(pk.name);
        continue;
      }
      const d = await readDeb(deb);
      for await (const e of d.entries()) {
        if (e.type === 'dir') continue;
        const c = canonicalInRoot(root, posix.normalize('/' + e.name));
        if (missing.has(c.path)) shipped.push({ path: c.path, package: pk.name, version: pk.version });
      }
    }
  }
  shipped.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  return { missing: [...missing].sort(), shipped, uncached, sbom: packages !== undefined };
}

export function formatExplanation(x: Explanation, exitCode: number): string[] {
  const out: string[] = [];
  out.push(
    `mkimg: explain: the program exited ${exitCode}; it looked for ${x.missing.length} path(s) this image does not have.`,
  );
  if (!x.sbom)
    out.push('mkimg: explain: the image has no /usr/share/mkimg/sbom.spdx.json, so its package closure is unknown.');
  if (x.shipped.length > 0) {
    out.push('mkimg: explain: minimization removed these, which the closure had:');
    for (const s of x.shipped) out.push(`  ${s.path}  (package ${s.package} ${s.version})`);
    out.push('mkimg: explain: to keep them, add to manifest.yaml (then mkimg build again):');
    out.push('  minimize:');
    out.push(`    keep: [${[...new Set(x.shipped.map((s) => JSON.stringify(s.path)))].join(', ')}]`);
    out.push(`  # the packages: ${[...new Set(x.shipped.map((s) => s.package))].join(', ')}`);
  } else if (x.missing.length > 0 && x.sbom) {
    out.push(
      'mkimg: explain: none of them is shipped by a package of the closure (so minimization did not remove them).',
    );
  }
  if (x.uncached.length > 0)
    out.push(
      `mkimg: explain: not checked (their .debs are not in the cache; build the image once with this --cache-dir): ${x.uncached.join(', ')}`,
    );
  return out;
}

export async function explain(rec: LaunchRecord, spec: LaunchSpec, cacheDir: string): Promise<number> {
  const tmp = mkdtempSync(join(tmpdir(), 'mkimg-explain-'));
  try {
    const events = join(tmp, 'events.jsonl');
    const code = await launch({ ...spec, events });
    const text = existsSync(events) ? readFileSync(events, 'utf8') : '';
    const x = await explainEvents(rec.root, text, cacheDir);
    for (const l of formatExplanation(x, code)) process.stderr.write(l + '\n');
    return code;
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}
