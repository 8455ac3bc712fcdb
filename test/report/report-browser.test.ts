/**
 * The HTML reports in a real browser (Debian's headless chromium): what a
 * person sees. The image view of a fixture with hostile file and package
 * names (HTML, quotes, "</script>", non-UTF-8 bytes), the before/after view
 * from a minimization report, the diff view of two images with a line diff,
 * and the render time of a 5,000-file image.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { mkimg } from '../helpers/cli.js';
import { writeSampleProject } from '../helpers/sample-project.js';
import { haveChromium, launchChromium } from '../helpers/browser.js';
import { patchTarName, writeOciFixture, type FixtureFile } from '../helpers/oci-fixture.js';
import type { MinimizeReport, PathReport } from '../../src/minimize/report.js';

const work = mkdtempSync(join(tmpdir(), 'mkimg-report-'));
let browser: Browser | undefined;

beforeAll(async () => {
  if (!haveChromium())
    throw new Error('chromium is not installed: run scripts/setup-debian.sh (apt-get install chromium)');
  browser = await launchChromium();
}, 60_000);
afterAll(async () => {
  await browser?.close();
  rmSync(work, { recursive: true, force: true });
});

const BINDING = 'ab'.repeat(32);
const EVIL_IMG = 'opt/evil/<img src=x onerror="window.__pwned=1">';
const EVIL_SCRIPT = 'opt/evil/q\'uo"te & </script><script>window.__pwned=2</script>';
const EVIL_PKG = '<script>window.__pwned=3</script>';
const NON_UTF8 = 'opt/evil/bad-XX.txt'; // XX becomes the bytes ff fe

/** An SPDX document like mkimg's: Debian packages (with purls) CONTAINS files. */
function sbom(owners: Record<string, { version: string; files: string[] }>): string {
  const packages: unknown[] = [];
  const files: unknown[] = [];
  const relationships: unknown[] = [];
  let n = 0;
  for (const [name, p] of Object.entries(owners)) {
    const id = `SPDXRef-Package-${n++}`;
    packages.push({
      SPDXID: id,
      name,
      versionInfo: p.version,
      licenseDeclared: 'MIT',
      externalRefs: [
        {
          referenceCategory: 'PACKAGE-MANAGER',
          referenceType: 'purl',
          referenceLocator: `pkg:deb/debian/${encodeURIComponent(name)}@${p.version}`,
        },
      ],
    });
    for (const f of p.files) {
      const fid = `SPDXRef-File-${n++}`;
      files.push({ SPDXID: fid, fileName: f });
      relationships.push({ spdxElementId: id, relationshipType: 'CONTAINS', relatedSpdxElement: fid });
    }
  }
  return JSON.stringify({ spdxVersion: 'SPDX-2.3', packages, files, relationships });
}

function fixtureFiles(
  extra: { conf?: string; appVersion?: string; added?: boolean; removed?: boolean } = {},
): FixtureFile[] {
  const files: FixtureFile[] = [
    { name: 'usr/', type: 'directory' },
    { name: 'usr/bin/', type: 'directory' },
    { name: 'usr/bin/app', content: Buffer.alloc(40_000, 1), mode: 0o755 },
    { name: 'usr/lib/', type: 'directory' },
    { name: 'usr/lib/libbig.so.1', content: Buffer.alloc(300_000, 2) },
    { name: 'etc/', type: 'directory' },
    { name: 'etc/app.conf', content: extra.conf ?? 'name=app\nport=80\nworkers=4\nlog=info\n' },
    { name: 'opt/', type: 'directory' },
    { name: 'opt/evil/', type: 'directory' },
    { name: EVIL_IMG, content: 'x' },
    { name: EVIL_SCRIPT, content: 'y' },
    { name: NON_UTF8, content: 'z' },
    { name: 'usr/share/', type: 'directory' },
    { name: 'usr/share/mkimg/', type: 'directory' },
  ];
  if (extra.added) files.push({ name: 'etc/new.conf', content: 'new\n' });
  if (!extra.removed) files.push({ name: 'etc/old.conf', content: 'old\n' });
  files.push({
    name: 'usr/share/mkimg/sbom.spdx.json',
    content: sbom({
      app: { version: extra.appVersion ?? '1.0', files: ['/usr/bin/app', '/etc/app.conf'] },
      libbig1: { version: '2.0', files: ['/usr/lib/libbig.so.1'] },
      [EVIL_PKG]: { version: '0', files: ['/' + EVIL_IMG, '/' + EVIL_SCRIPT] },
    }),
  });
  return files;
}

async function fixture(name: string, extra: Parameters<typeof fixtureFiles>[0] = {}): Promise<string> {
  const path = join(work, name);
  await writeOciFixture(path, {
    files: fixtureFiles(extra),
    labels: { 'org.mkimg.manifest.sha256': BINDING, 'org.example.note': '<b>bold?</b>' },
    patchLayer: (l) => patchTarName(l, 'bad-XX', Buffer.from([0x62, 0x61, 0x64, 0x2d, 0xff, 0xfe])),
  });
  return path;
}

/** A minimization report as `mkimg build --report` writes it, for the fixture's paths plus what was removed. */
function minimizeReport(): MinimizeReport {
  const p = (
    path: string,
    origin: string,
    size: number,
    kept: boolean,
    why?: string,
    type: PathReport['type'] = 'file',
  ): PathReport => ({ path, origin, type, size, kept, ...(why ? { why } : {}) });
  const paths = [
    p('/usr/bin/app', 'pkg:app', 40_000, true, 'traced by smoke'),
    p('/usr/lib/libbig.so.1', 'pkg:libbig1', 300_000, true, 'ELF dependency of /usr/bin/app'),
    p('/usr/lib/libbig-extra.so.1', 'pkg:libbig1', 900_000, false),
    p('/usr/share/doc/libbig1/README', 'pkg:libbig1', 5_000, false, 'excluded by /usr/share/doc/**'),
    p('/etc/app.conf', 'pkg:app', 30, true, 'keep glob /etc/**'),
  ].sort((a, b) => (a.path < b.path ? -1 : 1));
  const none = { paths: 0, bytes: 0, sample: [] };
  return {
    before: { files: 5, bytes: 1_245_030 },
    after: { files: 3, bytes: 340_030 },
    packages: [],
    checks: [{ name: 'smoke', args: ['/usr/bin/app', '--version'], exitCode: 0, tracedPaths: 12 }],
    listedDirectories: [],
    keepListed: false,
    listedAdded: none,
    staticAnalysis: none,
    keepGroups: {},
    keepGlobs: { '/etc/**': { paths: 1, bytes: 30, sample: ['/etc/app.conf'] } },
    keepPackages: {},
    excluded: { '/usr/share/doc/**': { paths: 1, bytes: 5000, sample: ['/usr/share/doc/libbig1/README'] } },
    hardlinks: none,
    rounds: 1,
    addedByProof: [],
    paths,
  };
}

async function open(file: string): Promise<{ page: Page; errors: string[] }> {
  const page = await browser!.newPage({ viewport: { width: 1280, height: 900 } });
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text());
  });
  // Anything but the file itself is a request the report must not make.
  await page.route(/^(?!file:)/, (route) => {
    errors.push(`network request: ${route.request().url()}`);
    return route.abort();
  });
  await page.goto('file://' + file);
  await page.waitForSelector('body[data-ready]', { timeout: 30_000 });
  return { page, errors };
}

describe('mkimg inspect --html', () => {
  let html = '';
  beforeAll(async () => {
    const image = await fixture('image.tar');
    const report = join(work, 'report.json');
    writeFileSync(report, JSON.stringify(minimizeReport()));
    html = join(work, 'image.html');
    const r = mkimg(['inspect', image, '--html', html, '--report', report]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`html report:     ${html}`);
  });

  it('is one self-contained file, the same bytes each time', () => {
    const again = join(work, 'again.html');
    expect(
      mkimg(['inspect', join(work, 'image.tar'), '--html', again, '--report', join(work, 'report.json')]).code,
    ).toBe(0);
    const bytes = readFileSync(html);
    expect(readFileSync(again).equals(bytes)).toBe(true);
    const text = bytes.toString('utf8');
    // No URL but the SVG namespace name (an identifier, never fetched).
    expect(text.replaceAll('http://www.w3.org/2000/svg', '')).not.toMatch(
      /<script[^>]+src=|<link[^>]+href=|https?:\/\/|url\(/,
    );
    expect(text).toContain("script-src 'sha256-");
    // The hostile names are inside the JSON, never raw markup.
    expect(text).not.toContain('<img src=x');
    expect(text).not.toContain(EVIL_PKG);
  });

  it('draws the treemaps, naming the largest package, beside the unminimized closure', async () => {
    const { page, errors } = await open(html);
    const rects = await page.locator('#treemap-final rect').count();
    expect(rects).toBeGreaterThan(3);
    const labels = await page.locator('#treemap-final text').allTextContents();
    expect(labels).toContain('libbig1');
    expect(await page.locator('#treemap-closure rect').count()).toBeGreaterThan(1);
    expect(await page.locator('.cards').textContent()).toContain(BINDING);
    await page.click('#mode-directory');
    expect(await page.locator('#treemap-final text').allTextContents()).toContain('usr');
    expect(errors).toEqual([]);
    await page.close();
  });

  it('finds a path by search, shows hostile names as text, and runs none of them', async () => {
    const { page, errors } = await open(html);
    await page.click('#tab-files');
    await page.fill('#search', 'onerror');
    await expect.poll(() => page.locator('#search-count').textContent()).toMatch(/^1 of /);
    expect(await page.locator('.vrows .c-path').allTextContents()).toEqual(['/' + EVIL_IMG]);
    expect(await page.locator('.vrows .c-pkg').allTextContents()).toEqual([EVIL_PKG]);
    await page.fill('#search', '</script>');
    expect(await page.locator('.vrows .c-path').allTextContents()).toEqual(['/' + EVIL_SCRIPT]);
    await page.fill('#search', 'bad-');
    expect(await page.locator('.vrows .c-path').allTextContents()).toEqual(['/opt/evil/bad-\ufffd\ufffd.txt']);
    await page.fill('#search', 'libbig');
    expect(await page.locator('.vrows .c-path').allTextContents()).toEqual(['/usr/lib/libbig.so.1']);
    expect(await page.evaluate(() => (window as unknown as { __pwned?: number }).__pwned)).toBeUndefined();
    expect(await page.locator('img').count()).toBe(0);
    expect(await page.locator('main script').count()).toBe(0);
    expect(errors).toEqual([]);
    await page.close();
  });

  it("opens a package's panel from a file, with why each file was kept and what was removed", async () => {
    const { page, errors } = await open(html);
    await page.click('#tab-files');
    await page.fill('#search', 'libbig.so');
    await page.locator('.vrows .pkg-link').first().click();
    const panel = page.locator('#pkg-panel');
    await expect.poll(() => panel.isVisible()).toBe(true);
    expect(await panel.locator('h3').textContent()).toBe('libbig1');
    expect(await panel.textContent()).toContain('ELF dependency of /usr/bin/app');
    await panel.locator('#pkg-removed summary').click();
    const removed = await panel.locator('#pkg-removed').textContent();
    expect(removed).toContain('2 files removed by minimization');
    expect(removed).toContain('/usr/lib/libbig-extra.so.1');
    expect(removed).toContain('excluded by /usr/share/doc/**');
    await page.click('#tab-minimize');
    expect(await page.locator('#minimize').textContent()).toContain('keep glob /etc/**');
    await page.click('#tab-layers');
    expect(await page.locator('#layers').textContent()).toMatch(/sha256:[0-9a-f]{64}/);
    await page.click('#tab-config');
    expect(await page.locator('#config').textContent()).toContain('<b>bold?</b>');
    expect(errors).toEqual([]);
    await page.close();
  });

  it('refuses --report without --html, and a file that is not a minimization report', () => {
    const image = join(work, 'image.tar');
    const r = mkimg(['inspect', image, '--report', join(work, 'report.json')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--report FILE is read only with --html/);
    const bad = join(work, 'bad.json');
    writeFileSync(bad, '{"hello": 1}');
    const b = mkimg(['inspect', image, '--html', join(work, 'bad.html'), '--report', bad]);
    expect(b.code).toBe(4);
    expect(b.stderr).toMatch(/bad\.json is not a minimization report/);
    expect(() => readFileSync(join(work, 'bad.html'))).toThrow();
  });
});

describe('mkimg build --report-html', () => {
  it('writes the report of the built image with its minimization: why busybox is kept, what was removed', async () => {
    const proj = join(work, 'sample');
    const manifest = writeSampleProject(proj, { minimize: true });
    const out = join(work, 'sample.tar');
    const html = join(work, 'sample.html');
    const json = join(work, 'sample-report.json');
    const r = mkimg([
      'build',
      manifest,
      '-o',
      out,
      '--report',
      json,
      '--report-html',
      html,
      '--cache-dir',
      join(work, 'cache'),
    ]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const rep = JSON.parse(readFileSync(json, 'utf8')) as MinimizeReport;
    const busybox = rep.paths.find((p) => p.path === '/usr/bin/busybox');
    expect(busybox).toMatchObject({
      origin: 'pkg:hello-busybox',
      kept: true,
      why: expect.stringMatching(/^traced by entrypoint$|^#! interpreter of /),
    });
    expect(rep.paths.find((p) => p.path === '/usr/share/doc/hello-busybox/copyright')).toMatchObject({ kept: false });
    expect(rep.paths.filter((p) => p.kept).length).toBe(
      rep.after.files + rep.paths.filter((p) => p.kept && p.type === 'dir').length,
    );
    // inspect --report on the same image and report draws the same page.
    const again = join(work, 'sample-again.html');
    expect(mkimg(['inspect', out, '--html', again, '--report', json]).code).toBe(0);
    expect(readFileSync(again).equals(readFileSync(html))).toBe(true);

    const { page, errors } = await open(html);
    expect(await page.locator('#treemap-final text').allTextContents()).toContain('hello-busybox');
    await page.locator('#treemap-final g.cell', { hasText: 'hello-busybox' }).first().click();
    const panel = page.locator('#pkg-panel');
    await expect.poll(() => panel.isVisible()).toBe(true);
    expect(await panel.textContent()).toContain('/usr/bin/busybox');
    await panel.locator('#pkg-removed summary').click();
    expect(await panel.locator('#pkg-removed').textContent()).toContain('/usr/share/doc/hello-busybox/copyright');
    // files: inputs line up before and after (staging origin file:… is the SBOM's "(files: input)")
    const inputs = await page
      .locator('#packages tbody tr', { hasText: '(files: input)' })
      .first()
      .locator('td')
      .allTextContents();
    expect(Number(inputs[3])).toBeGreaterThan(0);
    expect(Number(inputs[5])).toBeGreaterThanOrEqual(Number(inputs[3]));
    expect(errors).toEqual([]);
    await page.close();
  }, 300_000);
});

describe('mkimg diff --html', () => {
  it('highlights added, removed and changed files and packages, with a line diff of a changed text file', async () => {
    const a = await fixture('a.tar');
    const b = await fixture('b.tar', {
      conf: 'name=app\nport=8080\nworkers=4\nlog=info\n',
      appVersion: '1.1',
      added: true,
      removed: true,
    });
    const html = join(work, 'diff.html');
    const r = mkimg(['diff', a, b, '--html', html]);
    expect(r.code).toBe(9);
    const { page, errors } = await open(html);
    expect(await page.locator('#diff-summary').textContent()).toMatch(
      /^1 files added, 1 removed, \d+ changed; packages: 0 added, 0 removed, 1 changed/,
    );
    expect(await page.locator('#treemap-final rect').count()).toBeGreaterThan(3);
    await page.click('#tab-packages');
    expect(await page.locator('#packages tr.st-changed').textContent()).toContain('app');
    await page.click('#tab-files');
    await page.selectOption('#status-filter', 'added');
    expect(await page.locator('.vrows .c-path').allTextContents()).toEqual(['/etc/new.conf']);
    await page.selectOption('#status-filter', 'changed');
    await page.fill('#search', 'app.conf');
    await page.locator('.vrows .row').first().click();
    const panel = page.locator('#diff-panel');
    expect(await panel.locator('.del').allTextContents()).toEqual(['-port=80']);
    expect(await panel.locator('.ins').allTextContents()).toEqual(['+port=8080']);
    expect(await panel.locator('.hh').allTextContents()).toEqual(['@@ -1,4 +1,4 @@']);
    expect(await page.evaluate(() => (window as unknown as { __pwned?: number }).__pwned)).toBeUndefined();
    expect(errors).toEqual([]);
    await page.close();
  });
});

describe('scale', () => {
  it('renders a 5,000-file image with a 10,000-path closure quickly and keeps the file list virtual', async () => {
    const files: FixtureFile[] = [];
    const owners: Record<string, { version: string; files: string[] }> = {};
    const paths: PathReport[] = [];
    for (let d = 0; d < 50; d++) {
      files.push({ name: `usr/lib/d${d}/`, type: 'directory' });
      for (let i = 0; i < 100; i++) {
        const name = `usr/lib/d${d}/file-${i}.py`;
        files.push({ name, content: Buffer.alloc(100 + ((d * 100 + i) % 997) * 10, 0x61) });
        (owners[`pkg${d % 40}`] ??= { version: '1', files: [] }).files.push('/' + name);
        paths.push({
          path: '/' + name,
          origin: `pkg:pkg${d % 40}`,
          type: 'file',
          size: 100,
          kept: true,
          why: 'traced by smoke',
        });
        paths.push({
          path: `/usr/share/doc/d${d}/f${i}`,
          origin: `pkg:pkg${d % 40}`,
          type: 'file',
          size: 50,
          kept: false,
        });
      }
    }
    files.push({ name: 'usr/share/mkimg/sbom.spdx.json', content: sbom(owners) });
    const image = join(work, 'big.tar');
    await writeOciFixture(image, { files });
    const report = join(work, 'big-report.json');
    writeFileSync(
      report,
      JSON.stringify({ ...minimizeReport(), paths: paths.sort((x, y) => (x.path < y.path ? -1 : 1)) }),
    );
    const html = join(work, 'big.html');
    expect(mkimg(['inspect', image, '--html', html, '--report', report]).code).toBe(0);
    const started = Date.now();
    const { page, errors } = await open(html);
    const ms = Date.now() - started;
    console.log(`report: 5,000-file image with a 10,000-path closure ready in ${ms} ms (headless chromium)`);
    // The issue asks for < 2 s; the bound here is loose for a loaded 2-core CI machine.
    expect(ms).toBeLessThan(20_000);
    await page.click('#tab-files');
    expect(await page.locator('#search-count').textContent()).toMatch(/ of 5\d{3} entries/);
    expect(await page.locator('.vrows .row').count()).toBeLessThan(200);
    expect(errors).toEqual([]);
    await page.close();
  });
});
