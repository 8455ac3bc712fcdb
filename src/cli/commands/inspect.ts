import type { Command } from 'commander';
import { writeFileSync } from 'node:fs';
import { MkimgError } from '../../util/errors.js';
import { action } from '../output.js';

interface InspectFlags {
  json?: boolean;
  files?: boolean;
  sbom?: string;
  html?: string;
  report?: string;
  platform?: string;
}

export function registerInspect(program: Command): void {
  program
    .command('inspect')
    .summary('show what an image tar holds: config, layers, files, packages')
    .description(
      'Read an image tar once (streaming) and print its config (entrypoint, cmd, env, user, workdir,\n' +
        'labels), its layers, its file count and size, and the packages listed in the SBOM mkimg stores\n' +
        'in the image (/usr/share/mkimg/sbom.spdx.json). With --files, every entry with its mode,\n' +
        'owner, size and owning package. Blob digests are checked while reading.',
    )
    .argument('<image>', 'image tar written by `mkimg build`')
    .option('--json', 'print one JSON object')
    .option(
      '--platform <os/arch[/variant]>',
      "of an image of several platforms, the one to describe (default: the host's); all are listed",
    )
    .option('--files', 'list every file (path, type, mode, uid, gid, size, link target, package)')
    .option('--sbom <file>', 'also write the SBOM embedded in the image to this file (exact bytes)')
    .option(
      '--html <file>',
      'also write a self-contained HTML report: treemaps by package and directory, packages, files (search), layers, config, SBOM',
    )
    .option(
      '--report <file>',
      'with --html: the minimization report `mkimg build --report` wrote, to show the unminimized closure and why each file was kept',
    )
    .addHelpText(
      'after',
      `
Examples:
  $ mkimg inspect app.tar
  $ mkimg inspect app.tar --files | grep '\\[libc6\\]'
  $ mkimg inspect app.tar --json | jq '.sbom.packages[] | "\\(.name) \\(.version)"'
  $ mkimg inspect app.tar --json --files | jq '[.files[] | select(.package == null)]'
  $ mkimg inspect app.tar --sbom app.spdx.json     # extract the SBOM for a scanner
  $ mkimg inspect multi.tar --platform linux/arm64  # one platform of an image index
  $ mkimg inspect app.tar --html app.html --report app-report.json

Exit codes: 0 ok, 2 usage (file missing, no such platform), 4 no embedded SBOM for --sbom, 7 integrity (not a whole image tar, digest mismatch).`,
    )
    .action(
      action(
        async (image: string, flags: InspectFlags) => {
          const { formatInspect, inspectImage, SBOM_IN_LAYER } = await import('../../inspect/inspect.js');
          const { sbomBytes, ...r } = await inspectImage(image, {
            files: Boolean(flags.files),
            platform: flags.platform,
          });
          if (flags.sbom) {
            if (!sbomBytes) {
              throw new MkimgError('input', `${image} has no embedded SBOM (${SBOM_IN_LAYER})`, {
                hint: 'images built by mkimg carry one; rebuild the image with mkimg build',
              });
            }
            writeFileSync(flags.sbom, sbomBytes);
          }
          if (flags.report && !flags.html)
            throw new MkimgError('usage', '--report FILE is read only with --html FILE', {
              hint: 'mkimg inspect app.tar --html app.html --report report.json',
            });
          if (flags.html) {
            const { imageReportHtml, readMinimizeReport, writeReport } = await import('../../report/report.js');
            const minimize = flags.report ? readMinimizeReport(flags.report) : undefined;
            writeReport(flags.html, await imageReportHtml(image, minimize, flags.platform));
          }
          return {
            json: {
              ...r,
              ...(flags.sbom ? { sbomWritten: flags.sbom } : {}),
              ...(flags.html ? { htmlWritten: flags.html } : {}),
            },
            human: [...formatInspect(r), ...(flags.html ? [`html report:     ${flags.html}`] : [])],
          };
        },
        (_image: string, flags: InspectFlags) => Boolean(flags.json),
      ),
    );
}
