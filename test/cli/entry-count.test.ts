/**
 * `mkimg build` and `mkimg inspect` count a layer's entries the same way:
 * every tar entry of the layer (regular files, directories, symlinks, hard
 * links), minimized or not.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { mkimg, mkimgJson } from '../helpers/cli.js';
import { writeSampleProject } from '../helpers/sample-project.js';

const work = mkdtempSync(join(tmpdir(), 'mkimg-count-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('entry counts', () => {
  it.each([false, true])(
    'build --json files = inspect fileCount = the layer tar entries (minimize: %s)',
    (minimize) => {
      const dir = join(work, `m-${minimize}`);
      const manifest = writeSampleProject(dir, { minimize });
      const image = join(dir, 'image.tar');
      const built = mkimgJson<{ files: number; layers: unknown[] }>([
        'build',
        manifest,
        '-o',
        image,
        '--cache-dir',
        join(work, 'cache'),
      ]);
      expect(built.code, built.stderr).toBe(0);
      const seen = mkimgJson<{ fileCount: number; layers: { files: number }[] }>(['inspect', image]);
      expect(seen.code).toBe(0);
      // Three layers (origin); a directory repeated in several is counted once.
      expect(seen.json.layers).toHaveLength(3);
      expect(built.json.files).toBe(seen.json.fileCount);
      expect(seen.json.layers.reduce((n, l) => n + l.files, 0)).toBeGreaterThanOrEqual(built.json.files);
      // and the human lines say the same number, as entries
      const human = mkimg(['inspect', image]);
      expect(human.stdout).toContain(`files:           ${built.json.files} entries`);
    },
  );
});
