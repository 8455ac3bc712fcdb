/** The report page without a browser: the data survives as inert JSON, the CSP names the one script, the bytes are stable. */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { renderReport } from '../../src/report/html.js';
import type { ImageReportData } from '../../src/report/model.js';

const hostile = [
  '</script><script>alert(1)</script>',
  '<img src=x onerror=alert(2)>',
  '"\'&amp;\u2028\u2029',
  'bad-\ufffd\ud800',
];

function data(): ImageReportData {
  return {
    kind: 'image',
    image: {
      file: hostile[0],
      name: hostile[1],
      imageId: 'sha256:' + '1'.repeat(64),
      manifestDigest: 'sha256:' + '2'.repeat(64),
      platform: 'linux/amd64',
      config: { env: [hostile[2]], labels: { [hostile[1]]: hostile[0] }, exposedPorts: [], volumes: [] },
      layers: [],
      fileCount: hostile.length,
      fileBytes: 4,
    },
    files: hostile.map((h, i) => ({
      p: '/' + h,
      t: 'f',
      s: 1,
      m: 0o644,
      u: 0,
      g: 0,
      k: hostile[(i + 1) % hostile.length],
      l: 0,
    })),
  };
}

describe('renderReport', () => {
  const html = renderReport(data()).toString('utf8');

  it('embeds the data as JSON that no string in it can end or escape', () => {
    const m = /<script type="application\/json" id="mkimg-data">([^<]*)<\/script>/.exec(html);
    expect(m).not.toBeNull();
    expect(JSON.parse(m![1])).toEqual(JSON.parse(JSON.stringify(data())));
    expect(m![1]).not.toMatch(/[<>&\u2028\u2029]/);
    // Only the page's own markup has tags: two script elements, nothing from the data.
    expect(html.match(/<script/g)).toHaveLength(2);
    expect(html).not.toContain('<img');
    expect(html).toContain('<title>mkimg report: &lt;img src=x onerror=alert(2)&gt;</title>');
  });

  it('allows exactly its own inline script by hash, and nothing from the network', () => {
    const script = /<script>([\s\S]*)<\/script>\n<\/body>/.exec(html)![1];
    const hash = createHash('sha256').update(script, 'utf8').digest('base64');
    expect(html).toContain(`script-src 'sha256-${hash}'`);
    expect(html).toContain("default-src 'none'");
  });

  it('is the same bytes for the same data', () => {
    expect(renderReport(data()).equals(renderReport(data()))).toBe(true);
  });
});
