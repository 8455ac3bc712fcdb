/**
 * The self-contained HTML report: one file holding the data (JSON), the CSS
 * and the script. No network: a Content-Security-Policy allows only the one
 * inline script (by its sha256) and inline styles, so nothing in the data can
 * load or run anything even if it were ever parsed as markup. The output is a
 * pure function of the data: the same image gives the same bytes.
 */
import { createHash } from 'node:crypto';
import { CLIENT_JS } from './client.js';
import type { ReportData } from './model.js';

const CSS = `
:root { font: 14px/1.4 system-ui, sans-serif; color: #1d2733; background: #f6f8fa; }
body { margin: 0; }
header { background: #1d2733; color: #fff; padding: 12px 20px; }
header h1 { margin: 0; font-size: 20px; word-break: break-all; }
header p { margin: 2px 0 0; color: #b9c4cf; font-size: 12px; word-break: break-all; }
nav { background: #fff; border-bottom: 1px solid #d0d7de; padding: 0 16px; position: sticky; top: 0; z-index: 2; }
.tabbtn { border: 0; background: none; padding: 10px 12px; font: inherit; cursor: pointer; border-bottom: 3px solid transparent; }
.tabbtn.active { border-bottom-color: #0969da; font-weight: 600; }
main { padding: 16px 20px; }
h2 { margin: 0 0 12px; font-size: 18px; } h3 { font-size: 15px; margin: 16px 0 8px; } h4 { margin: 12px 0 6px; }
.mono { font-family: ui-monospace, 'DejaVu Sans Mono', monospace; font-size: 12px; }
.muted { color: #6e7781; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(260px, 1fr)); gap: 8px; margin-bottom: 12px; }
.card { background: #fff; border: 1px solid #d0d7de; border-radius: 6px; padding: 8px 10px; }
.card .k { color: #6e7781; font-size: 12px; } .card .v { word-break: break-all; }
.modes { margin: 8px 0; } .mode, .crumb, .close { font: inherit; border: 1px solid #d0d7de; background: #fff; border-radius: 4px; padding: 2px 8px; cursor: pointer; }
.mode.active { background: #0969da; color: #fff; border-color: #0969da; }
.crumb { border: 0; padding: 0; color: #0969da; background: none; }
.pair { display: flex; gap: 16px; flex-wrap: wrap; } .pane { flex: 1 1 540px; min-width: 0; }
svg.treemap { background: #fff; border: 1px solid #d0d7de; max-width: 100%; height: auto; }
svg.treemap g.cell { cursor: pointer; }
svg.treemap text { font: 11px system-ui, sans-serif; fill: #111; pointer-events: none; }
svg.treemap text.sub { font-size: 10px; fill: #333; }
table { border-collapse: collapse; background: #fff; width: 100%; margin-bottom: 8px; }
th, td { text-align: left; padding: 3px 8px; border-bottom: 1px solid #eaeef2; vertical-align: top; word-break: break-all; }
th { background: #f0f3f6; position: sticky; top: 40px; }
tr.clickable { cursor: pointer; } tr.clickable:hover { background: #f0f6ff; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 2px 12px; margin: 0 0 8px; } dt { color: #6e7781; } dd { margin: 0; word-break: break-all; }
.link { border: 0; background: none; padding: 0; color: #0969da; cursor: pointer; font: inherit; text-align: left; }
.panel { background: #fff; border: 2px solid #0969da; border-radius: 6px; padding: 8px 12px; margin: 8px 0 16px; }
.close { float: right; }
.searchbar { display: flex; gap: 8px; align-items: center; margin-bottom: 6px; }
.search { flex: 1; font: inherit; padding: 5px 8px; border: 1px solid #d0d7de; border-radius: 4px; }
.vlist { height: 65vh; overflow-y: auto; background: #fff; border: 1px solid #d0d7de; position: relative; }
.vpad { position: relative; } .vrows { position: absolute; left: 0; right: 0; top: 0; }
.row { height: 22px; display: flex; gap: 10px; align-items: center; white-space: nowrap; border-bottom: 1px solid #f0f3f6; padding: 0 6px; overflow: hidden; }
.c-mode { width: 78px; flex: none; } .c-layer { width: 56px; flex: none; font-size: 12px; } .c-size { width: 72px; flex: none; text-align: right; }
.c-path { flex: 1 1 auto; overflow: hidden; text-overflow: ellipsis; } .c-pkg { width: 160px; flex: none; overflow: hidden; text-overflow: ellipsis; }
.c-why { width: 300px; flex: none; overflow: hidden; text-overflow: ellipsis; font-size: 12px; }
.added, .st-added { color: #116329; } .removed, .st-removed { color: #a40e26; } .changed, .st-changed { color: #7d4e00; }
tr.st-added { background: #e6ffec; } tr.st-removed { background: #ffebe9; } tr.st-changed { background: #fff8c5; }
.row.st-added { background: #f0fff3; } .row.st-removed { background: #fff5f4; } .row.st-changed { background: #fffbe0; }
tr.flash { outline: 2px solid #0969da; }
.udiff { background: #fff; border: 1px solid #d0d7de; overflow-x: auto; white-space: pre; }
.udiff .ins { background: #e6ffec; } .udiff .del { background: #ffebe9; } .udiff .hh { background: #ddf4ff; color: #57606a; }
.note { background: #fff; border-left: 3px solid #0969da; padding: 6px 10px; }
.summary span { font-weight: 600; }
noscript p { padding: 20px; }
`;

/** JSON that is inert inside a <script> element: no "<", ">", "&" or line separators survive unescaped. */
export function scriptSafeJson(value: unknown): string {
  return JSON.stringify(value).replace(
    /[<>&\u2028\u2029]/g,
    (c) => '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0'),
  );
}

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

/** The report page for `data`, as UTF-8 bytes. */
export function renderReport(data: ReportData): Buffer {
  const scriptHash = createHash('sha256').update(CLIENT_JS, 'utf8').digest('base64');
  const csp = `default-src 'none'; style-src 'unsafe-inline'; img-src data:; script-src 'sha256-${scriptHash}'; base-uri 'none'; form-action 'none'`;
  const title =
    data.kind === 'diff'
      ? `mkimg diff: ${data.a.file} vs ${data.b.file}`
      : `mkimg report: ${data.image.name ?? data.image.file}`;
  const html =
    '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n' +
    `<meta http-equiv="Content-Security-Policy" content="${csp}">\n` +
    '<meta name="viewport" content="width=device-width, initial-scale=1">\n' +
    `<meta name="generator" content="mkimg">\n<title>${escapeHtml(title)}</title>\n<style>${CSS}</style>\n</head>\n<body>\n` +
    '<header><h1 id="title">mkimg report</h1><p id="subtitle"></p></header>\n<nav id="tabs"></nav>\n<main id="main">' +
    '<noscript><p>This report needs JavaScript to draw its views. The data is in the mkimg-data script element of this file (JSON).</p></noscript></main>\n' +
    `<script type="application/json" id="mkimg-data">${scriptSafeJson(data)}</script>\n` +
    `<script>${CLIENT_JS}</script>\n</body>\n</html>\n`;
  return Buffer.from(html, 'utf8');
}
