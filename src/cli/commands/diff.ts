import type { Command } from 'commander';
import { action } from '../output.js';
import { EXIT_CODES } from '../../util/errors.js';
import type { Difference } from '../../verify/diff.js';

interface DiffFlags {
  json?: boolean;
  limit: string;
  html?: string;
}

/**
 * The real differences, each with its text diff indented under it, then one
 * line for the digests and sizes that follow from them (--json lists those).
 */
function humanDifferences(ds: Difference[]): string[] {
  const lines: string[] = [];
  for (const d of ds.filter((x) => !x.derived)) {
    lines.push(`  ${d.message}`);
    for (const t of d.textDiff ?? []) lines.push(`    ${t}`);
  }
  const derived = ds.filter((x) => x.derived);
  if (derived.length) {
    const where = [...new Set(derived.map((x) => x.where.replace(/ \(image tar entry\)$/, '')))].sort().join(', ');
    lines.push(
      `  + ${derived.length} digest${derived.length === 1 ? '' : 's'} and sizes that follow from the above (${where}); --json lists them`,
    );
  }
  return lines;
}

export function registerDiff(program: Command): void {
  program
    .command('diff')
    .summary('show where two image tars differ')
    .description(
      'Compare two image tars and say where they differ: which blob (matched by role: image\n' +
        'manifest, config, layer N), which file in a layer, which tar header field (type, mode,\n' +
        'uid, gid, size, mtime, linkname, uname, gname, devmajor, devminor, magic, pax records),\n' +
        'content, or which JSON key (paths like config.config.Env[2]). Real differences come first, with a\n' +
        'unified diff of a small changed text file; the digests that follow from them are summed up in one line.',
    )
    .argument('<a>', 'first image tar')
    .argument('<b>', 'second image tar')
    .option('--limit <n>', 'report at most this many differences', '200')
    .option(
      '--html <file>',
      'also write a self-contained HTML report: files and packages added, removed and changed, line diffs of changed text files',
    )
    .option('--json', 'print one JSON object: identical, differences[{where, field, a, b, message, derived, textDiff}]')
    .addHelpText(
      'after',
      `
Examples:
  $ mkimg diff yesterday.tar today.tar
  $ mkimg diff a.tar b.tar --json | jq -r '.differences[].message'
  $ mkimg diff yesterday.tar today.tar --html diff.html

Exit codes: 0 identical, 9 different, 2 usage (unreadable file), 7 a tar is malformed or truncated.`,
    )
    .action(
      action(
        async (a: string, b: string, flags: DiffFlags) => {
          const { diffImages } = await import('../../verify/diff.js');
          const limit = Math.max(1, Number.parseInt(flags.limit, 10) || 200);
          const d = await diffImages(a, b, limit);
          if (flags.html) {
            const { diffReportHtml, writeReport } = await import('../../report/report.js');
            writeReport(flags.html, await diffReportHtml(a, b, d));
          }
          const wrote = flags.html ? [`html report: ${flags.html}`] : [];
          return {
            json: {
              identical: d.identical,
              differences: d.differences,
              ...(flags.html ? { htmlWritten: flags.html } : {}),
            },
            human: d.identical
              ? [`identical: ${a} and ${b} have the same bytes`, ...wrote]
              : [`${a} and ${b} differ:`, ...humanDifferences(d.differences), ...wrote],
            exitCode: d.identical ? 0 : EXIT_CODES.rebuild,
          };
        },
        (_a: string, _b: string, flags: DiffFlags) => Boolean(flags.json),
      ),
    );
}
