/**
 * The report stage's entry points: read the image tar(s), build the data
 * (model.ts), render the page (html.ts). `mkimg inspect --html`, `mkimg
 * build --report-html` and `mkimg diff --html` call these.
 */
import { readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { inspectImage } from '../inspect/inspect.js';
import type { MinimizeReport } from '../minimize/report.js';
import type { ImageDiff } from '../verify/diff.js';
import { MkimgError } from '../util/errors.js';
import { renderReport } from './html.js';
import { lineDiff } from '../util/line-diff.js';
import { diffFiles, diffReportData, imageReportData } from './model.js';

/** Changed text files up to this size get a line diff... */
export const TEXT_DIFF_MAX_BYTES = 256 << 10;
/** ...and at most this many of them. */
export const TEXT_DIFF_MAX_FILES = 200;

/** The JSON `mkimg build --report` wrote, checked enough to draw from. */
export function readMinimizeReport(file: string): MinimizeReport {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new MkimgError('usage', `cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`, {
      hint: 'give the JSON file `mkimg build --report FILE` wrote',
    });
  }
  let r: any;
  try {
    r = JSON.parse(text);
  } catch {
    throw new MkimgError('input', `${file} is not JSON`, {
      hint: 'give the JSON file `mkimg build --report FILE` wrote',
    });
  }
  if (!r || typeof r !== 'object' || !r.before || !r.after || !Array.isArray(r.packages)) {
    throw new MkimgError('input', `${file} is not a minimization report (no before, after, packages)`, {
      hint: 'give the JSON file `mkimg build --report FILE` wrote',
    });
  }
  if (!Array.isArray(r.paths)) {
    throw new MkimgError('input', `${file} has no "paths" list (written by an older mkimg)`, {
      hint: 'rebuild with this mkimg and --report FILE to get the per-path report',
    });
  }
  return r as MinimizeReport;
}

/** The HTML report of one image tar, with the before/after view when the build's minimization report is given. */
export async function imageReportHtml(imageTar: string, minimize?: MinimizeReport, platform?: string): Promise<Buffer> {
  const r = await inspectImage(imageTar, { files: true, platform });
  return renderReport(imageReportData(r, minimize));
}

function asText(b: Buffer | undefined): string | undefined {
  if (!b) return undefined;
  if (b.subarray(0, 8000).includes(0)) return undefined;
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(b);
  } catch {
    return undefined;
  }
}

/** The HTML report of two image tars: files and packages added, removed and changed, line diffs of changed text files. */
export async function diffReportHtml(pathA: string, pathB: string, diff: ImageDiff): Promise<Buffer> {
  const [a, b] = await Promise.all([
    inspectImage(pathA, { files: true, digests: true }),
    inspectImage(pathB, { files: true, digests: true }),
  ]);
  const { files, packages } = diffFiles(a, b);
  const candidates = files.filter(
    (f) => f.what.includes('content') && f.a!.s <= TEXT_DIFF_MAX_BYTES && f.b!.s <= TEXT_DIFF_MAX_BYTES,
  );
  const wanted = new Set(candidates.slice(0, TEXT_DIFF_MAX_FILES).map((f) => f.p));
  if (wanted.size) {
    const [ca, cb] = await Promise.all([
      inspectImage(pathA, { contents: wanted }),
      inspectImage(pathB, { contents: wanted }),
    ]);
    for (const f of candidates) {
      if (!wanted.has(f.p)) {
        f.textNote = `not diffed: only the first ${TEXT_DIFF_MAX_FILES} changed files get a text diff`;
        continue;
      }
      const ta = asText(ca.contents?.get(f.p));
      const tb = asText(cb.contents?.get(f.p));
      if (ta === undefined || tb === undefined) f.textNote = 'binary content (not UTF-8 text): no line diff';
      else {
        const hunks = lineDiff(ta, tb);
        if (hunks) f.hunks = hunks;
        else f.textNote = 'the two versions are too different for a line diff (over 1000 edits)';
      }
    }
  }
  for (const f of files) {
    if (f.what.includes('content') && !f.hunks && !f.textNote)
      f.textNote = `larger than ${TEXT_DIFF_MAX_BYTES >> 10} KiB: no line diff`;
  }
  return renderReport(diffReportData(a, b, diff.identical, diff.differences, files, packages));
}

/** Write the page whole or not at all: a temporary name, then a rename. */
export function writeReport(path: string, bytes: Buffer): void {
  const tmp = `${path}.tmp-${process.pid}`;
  try {
    writeFileSync(tmp, bytes);
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw new MkimgError('usage', `cannot write ${path}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`, {
      hint: 'give a writable path for the HTML report',
    });
  }
}
