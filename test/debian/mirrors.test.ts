import { describe, it, expect, afterEach } from 'vitest';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chooseMirror, mirrorEnvName, parseMirrorFlags, readAptSources } from '../../src/debian/mirrors.js';
import type { Source } from '../../src/manifest/types.js';
import { MkimgError } from '../../src/util/errors.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function aptRoot(files: Record<string, string>): string {
  const root = mkdtempSync(join(tmpdir(), 'mkimg-apt-'));
  dirs.push(root);
  for (const [p, text] of Object.entries(files)) {
    mkdirSync(join(root, p, '..'), { recursive: true });
    writeFileSync(join(root, p), text);
  }
  return root;
}

const src = (extra: Partial<Source> = {}): Source => ({
  suites: ['bookworm', 'bookworm-security'],
  components: ['main'],
  allowUnsigned: false,
  ...extra,
});

describe('mirror choice', () => {
  const root = () =>
    aptRoot({
      'etc/apt/sources.list':
        '# comment\ndeb-src http://127.0.0.1:1/src bookworm main\ndeb [arch=amd64 signed-by=/k.gpg] http://127.0.0.1:2/one-line/ bookworm main\n',
      'etc/apt/sources.list.d/a.sources':
        'Types: deb deb-src\nURIs: http://127.0.0.1:3/deb822\nSuites: bookworm-security trixie\nComponents: main\n\nTypes: deb\nURIs: http://127.0.0.1:4/disabled\nSuites: sid\nEnabled: no\n',
      'etc/apt/sources.list.d/b.list': 'deb http://127.0.0.1:5/list forky main\n',
      'etc/apt/sources.list.d/c.list.disabled': 'deb http://127.0.0.1:6/ignored experimental main\n',
    });

  it('reads one-line and deb822 apt sources', () => {
    const entries = readAptSources(root());
    expect(entries.map((e) => [e.uri, e.suites.join(' ')])).toEqual([
      ['http://127.0.0.1:2/one-line', 'bookworm'],
      ['http://127.0.0.1:3/deb822', 'bookworm-security trixie'],
      ['http://127.0.0.1:5/list', 'forky'],
    ]);
  });

  it('follows the precedence: --mirror, MKIMG_MIRROR_<SUITE>, MKIMG_MIRROR, url:, apt config', () => {
    const r = root();
    const env = {
      MKIMG_MIRROR_BOOKWORM_SECURITY: 'http://127.0.0.1:7/env-suite/',
      MKIMG_MIRROR: 'http://127.0.0.1:8/env-all',
    };
    expect(
      chooseMirror(src(), 'bookworm-security', {
        aptRoot: r,
        env,
        mirrors: { 'bookworm-security': 'http://127.0.0.1:9/flag' },
      }).url,
    ).toBe('http://127.0.0.1:9/flag');
    expect(
      chooseMirror(src(), 'bookworm-security', { aptRoot: r, env, mirrors: { '*': 'http://127.0.0.1:9/all' } }).url,
    ).toBe('http://127.0.0.1:9/all');
    expect(chooseMirror(src(), 'bookworm-security', { aptRoot: r, env }).url).toBe('http://127.0.0.1:7/env-suite');
    expect(chooseMirror(src(), 'bookworm', { aptRoot: r, env }).url).toBe('http://127.0.0.1:8/env-all');
    expect(chooseMirror(src({ url: 'http://127.0.0.1:10/manifest' }), 'bookworm', { aptRoot: r, env: {} }).url).toBe(
      'http://127.0.0.1:10/manifest',
    );
    expect(chooseMirror(src(), 'bookworm', { aptRoot: r, env: {} })).toMatchObject({
      url: 'http://127.0.0.1:2/one-line',
      from: expect.stringContaining('sources.list:3'),
    });
    expect(chooseMirror(src(), 'bookworm-security', { aptRoot: r, env: {} }).url).toBe('http://127.0.0.1:3/deb822');
    expect(mirrorEnvName('bookworm-security')).toBe('MKIMG_MIRROR_BOOKWORM_SECURITY');
  });

  it('says how to configure a mirror when none serves the suite', () => {
    try {
      chooseMirror(src({ suites: ['sid'] }), 'sid', { aptRoot: root(), env: {} });
      throw new Error('expected an error');
    } catch (e) {
      expect(e).toBeInstanceOf(MkimgError);
      expect((e as MkimgError).kind).toBe('repository');
      expect((e as MkimgError).message).toContain('no mirror serves suite "sid"');
      expect((e as MkimgError).hint).toContain('--mirror sid=URL');
      expect((e as MkimgError).hint).toContain('MKIMG_MIRROR_SID=URL');
    }
  });

  it('parses --mirror flags', () => {
    expect(parseMirrorFlags(['bookworm=http://127.0.0.1:1/d/', 'http://127.0.0.1:2/all'])).toEqual({
      bookworm: 'http://127.0.0.1:1/d/',
      '*': 'http://127.0.0.1:2/all',
    });
    expect(() => parseMirrorFlags(['nonsense'])).toThrow(/expected SUITE=URL/);
  });
});

describe('a misspelled suite', () => {
  it('is named with the close suites the apt sources know, as a manifest error', () => {
    const r = aptRoot({
      'etc/apt/sources.list':
        'deb http://127.0.0.1:2/d bookworm main\ndeb http://127.0.0.1:2/d bookworm-updates main\n',
      'etc/apt/sources.list.d/s.sources': 'Types: deb\nURIs: http://127.0.0.1:3/s\nSuites: bookworm-security\n',
    });
    const err = (() => {
      try {
        chooseMirror(src({ suites: ['bookwrom'] }), 'bookwrom', { aptRoot: r, env: {} });
      } catch (e) {
        return e as MkimgError;
      }
      throw new Error('expected an error');
    })();
    expect(err).toBeInstanceOf(MkimgError);
    expect(err.kind).toBe('manifest');
    expect(err.message).toBe('unknown suite "bookwrom": did you mean "bookworm"?');
    expect(err.hint).toContain('bookworm, bookworm-security, bookworm-updates');
    // --mirror keys count as known suites too; a name far from all of them still gets the mirror advice
    expect(() =>
      chooseMirror(src(), 'trixe', { aptRoot: r, env: {}, mirrors: { trixie: 'http://127.0.0.1:4/t' } }),
    ).toThrow('did you mean "trixie"?');
    expect(() => chooseMirror(src(), 'sid', { aptRoot: r, env: {} })).toThrow('no mirror serves suite "sid"');
  });

  it('edit distance counts a swap of neighbours as one edit', async () => {
    const { closeMatches, editDistance } = await import('../../src/util/suggest.js');
    expect(editDistance('bookwrom', 'bookworm')).toBe(1);
    expect(editDistance('', 'abc')).toBe(3);
    expect(closeMatches('bookwrom', ['bookworm', 'bookworm-security', 'trixie'])).toEqual(['bookworm']);
    expect(closeMatches('sid', ['bookworm', 'trixie'])).toEqual([]);
  });
});
