/**
 * Manifest errors name the file, line and column and the field; defaults and
 * path resolution follow SPEC.md §2.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadManifest } from '../../src/manifest/load.js';
import { MkimgError } from '../../src/util/errors.js';
import { mkimg } from '../helpers/cli.js';

const work = mkdtempSync(join(tmpdir(), 'mkimg-manifest-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));
let n = 0;

function write(text: string): string {
  const dir = join(work, `m${++n}`);
  mkdirSync(join(dir, 'app'), { recursive: true });
  writeFileSync(join(dir, 'app', 'x'), 'x');
  const path = join(dir, 'manifest.yaml');
  writeFileSync(path, text);
  return path;
}

const BASE = `apiVersion: mkimg/v1
name: test/m
sourceDateEpoch: 1700000000
`;

function errorOf(path: string): MkimgError {
  try {
    loadManifest(path);
  } catch (e) {
    expect(e).toBeInstanceOf(MkimgError);
    return e as MkimgError;
  }
  throw new Error('expected an error');
}

describe('manifest loading', () => {
  it('applies defaults and resolves relative paths against the manifest folder', () => {
    const path = write(
      BASE + 'files:\n  - src: app/x\n    dest: /x\n    mode: "0700"\nconfig:\n  entrypoint: ["/x"]\n',
    );
    const m = loadManifest(path);
    expect(m).toMatchObject({ tag: 'latest', architecture: 'amd64', sources: [], packages: [] });
    expect(m.files[0]).toMatchObject({ src: join(path, '..', 'app', 'x'), dest: '/x', mode: 0o700 });
    expect(m.minimize).toMatchObject({ checks: [], keepGroups: [], keepListed: false });
    expect(m.origin.sha256).toMatch(/^[0-9a-f]{64}$/);
  });

  it('an unknown key is an error at its line and column', () => {
    const path = write(BASE + 'config:\n  entrypoint: ["/x"]\n  entrypiont: ["/y"]\n');
    expect(errorOf(path)).toMatchObject({
      kind: 'manifest',
      message: `${path}:6:3: unknown key "entrypiont" in config (see manifests/mkimg-v1.schema.json for the allowed keys)`,
    });
  });

  it('a wrong type names the field path', () => {
    const path = write(BASE + 'config:\n  entrypoint: "/x"\n');
    expect(errorOf(path).message).toBe(`${path}:5:15: config.entrypoint must be array`);
  });

  it('a malformed value says what is allowed', () => {
    const path = write(BASE + 'files:\n  - src: app/x\n    dest: relative/path\nminimize: false\n');
    expect(errorOf(path).message).toMatch(new RegExp(`^${path}:6:11: files\\[0\\]\\.dest has an invalid value`));
  });

  it('a missing required key, a missing file, a duplicate key, bad YAML', () => {
    expect(errorOf(write('apiVersion: mkimg/v1\nname: x\n')).message).toMatch(
      /:1:1: \(top level\) is missing required key "sourceDateEpoch"$/,
    );
    const missing = write(BASE + 'files:\n  - src: nope/\n    dest: /x\nminimize: false\n');
    expect(errorOf(missing).message).toMatch(new RegExp(`^${missing}:5:10: files\\[0\\]\\.src: nope/ does not exist`));
    expect(errorOf(write(BASE + 'name: twice\n')).message).toMatch(/:4:1: invalid YAML: Map keys must be unique/);
    expect(errorOf(write(BASE + 'config: [\n')).message).toMatch(/invalid YAML/);
  });

  it('minimization needs something to run', () => {
    expect(errorOf(write(BASE)).message).toMatch(/minimization needs something to run/);
    expect(loadManifest(write(BASE + 'minimize: false\n')).minimize).toBe(false);
  });

  it('the CLI exits 3 with one line and no stack trace', () => {
    const path = write(BASE + 'bogus: 1\nminimize: false\n');
    const r = mkimg(['build', path, '-o', join(work, 'never.tar')]);
    expect(r.code).toBe(3);
    expect(r.stderr).toBe(
      `mkimg: error: ${path}:4:1: unknown key "bogus" in (top level) (see manifests/mkimg-v1.schema.json for the allowed keys)\n`,
    );
    expect(r.stdout).toBe('');
  });
});
