/**
 * lock and build read and rewrite a manifest without the YAML library where
 * the text allows (interpret.ts parseManifestQuickly, lock/normalize.ts
 * writeLockQuickly): for every manifest, the same Manifest, the same error
 * and the same written text as the library's path (load.ts, write.ts), and
 * for the shipped examples without loading the library.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parsePlain } from '../../src/manifest/interpret.js';
import { parseManifestQuickly } from '../../src/manifest/read.js';
import { parseManifest } from '../../src/manifest/load.js';
import { writeLockQuickly } from '../../src/lock/write-quick.js';
import { writeLockIntoManifest } from '../../src/lock/write.js';
import type { Lock } from '../../src/manifest/types.js';
import { PROJECT_ROOT } from '../helpers/cli.js';

const examples = join(PROJECT_ROOT, 'examples');
const manifests = readdirSync(examples, { withFileTypes: true })
  .filter((e) => e.isDirectory())
  .map((e) => join(examples, e.name, 'manifest.yaml'));

const work = mkdtempSync(join(tmpdir(), 'mkimg-quick-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** What a parse gives: the manifest, or the error's message. */
async function outcome(parse: () => unknown): Promise<unknown> {
  try {
    return await parse();
  } catch (e) {
    return { error: (e as Error).message };
  }
}

describe('parseManifestQuickly', () => {
  it("gives parseManifest's manifest for every example, most without the YAML library", async () => {
    let plain = 0;
    for (const path of manifests) {
      const bytes = readFileSync(path);
      // (c-app's input is built by its script: without it, both give the same error)
      expect(await outcome(() => parseManifestQuickly(bytes, path))).toEqual(
        await outcome(() => parseManifest(bytes, path)),
      );
      if (parsePlain(bytes, path)) plain++;
    }
    expect(plain).toBeGreaterThanOrEqual(2);
  });

  it("gives parseManifest's error, placed, for a broken manifest of the plain shape, and for any other", async () => {
    const python = readFileSync(join(examples, 'python', 'manifest.yaml'), 'utf8');
    const texts = [
      python.replace('tag: "1.0"', 'tag: "1.0"\nunknownKey: 1'),
      python.replace('sourceDateEpoch: 1704067200', 'sourceDateEpoch: soon'),
      python.replace(/keyring: .*/, 'keyring: /nonexistent.asc'),
      python.replace('lock:\n', 'lock:\n  extra: 1\n'),
      `${python}\nname: again\n`,
      python.replace('  version: 1\n', '  version: 2\n'),
      'not: [a, manifest',
    ];
    for (const [i, text] of texts.entries()) {
      const path = join(work, `m${i}.yaml`);
      writeFileSync(path, text);
      const bytes = Buffer.from(text);
      const expected = await outcome(() => parseManifest(bytes, path));
      expect(expected).toHaveProperty('error');
      expect(await outcome(() => parseManifestQuickly(bytes, path))).toEqual(expected);
    }
  });
});

describe('writeLockQuickly', () => {
  it("writes writeLockIntoManifest's text, for a written lock, a lock of unusual words, and no lock at all", async () => {
    for (const path of manifests) {
      const text = readFileSync(path, 'utf8');
      const { lock } = (await import('yaml')).parse(text) as { lock: Lock };
      const odd: Lock = { ...lock, files: [...lock.files, { src: 'a file: with # odd "words"', sha256: 'x' }] };
      const bare = text.slice(0, text.indexOf('\nlock:'));
      for (const [t, l] of [
        [text, lock],
        [text, odd],
        [bare, lock],
      ] as const)
        expect(await writeLockQuickly(t, l)).toBe(writeLockIntoManifest(t, l));
    }
  });
});

describe('the built CLI', () => {
  it('lock --check of the python example loads no YAML library', () => {
    const preload = join(work, 'preload.mjs');
    const log = join(work, 'loads.log');
    writeFileSync(
      preload,
      `import { register } from 'node:module';
register('data:text/javascript,' + encodeURIComponent(\`import { appendFileSync } from 'node:fs';
export async function load(url, context, next) {
  const r = await next(url, context);
  if (r.source && /node_modules\\\\/yaml\\\\//.test(String(r.source))) appendFileSync(${JSON.stringify(log)}, url + '\\\\n');
  return r;
}\`));
`,
    );
    const manifest = join(examples, 'python', 'manifest.yaml');
    const r = spawnSync(
      process.execPath,
      ['--import', preload, join(PROJECT_ROOT, 'bin', 'mkimg.js'), 'lock', '--check', manifest],
      { encoding: 'utf8' },
    );
    expect(r.status, r.stderr).toBe(0);
    expect(readFileSync(log, { encoding: 'utf8', flag: 'a+' })).toBe('');
  });
});
