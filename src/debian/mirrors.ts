/**
 * Which mirror URL serves a suite. Mirrors are configuration, not content:
 * the lock pins bytes, any mirror serving them will do. Order:
 *   1. `--mirror SUITE=URL` (the `mirrors` map; key "*" = every suite)
 *   2. env MKIMG_MIRROR_<SUITE> (upper case, "-" and "." → "_"), then MKIMG_MIRROR
 *   3. `url:` on the manifest source
 *   4. the host apt config under aptRoot (default "/"): etc/apt/sources.list,
 *      etc/apt/sources.list.d/*.list (one-line) and *.sources (deb822)
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Source } from '../manifest/types.js';
import { parseDeb822 } from './control.js';
import { MkimgError } from '../util/errors.js';
import { closeMatches } from '../util/suggest.js';

export interface MirrorOptions {
  mirrors?: Record<string, string>;
  env?: NodeJS.ProcessEnv;
  /** Root of the apt configuration ("/" on the host; a temp dir in tests). */
  aptRoot?: string;
}

export interface AptEntry {
  uri: string;
  suites: string[];
  components: string[];
  /** Where it was read, "file:line" or "file". */
  origin: string;
}

export function mirrorEnvName(suite: string): string {
  return 'MKIMG_MIRROR_' + suite.toUpperCase().replace(/[-.]/g, '_');
}

function clean(url: string): string {
  return url.replace(/\/+$/, '');
}

/** Parse `--mirror` values: "SUITE=URL" or a bare "URL" (every suite). */
export function parseMirrorFlags(values: string[] | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const v of values ?? []) {
    const m = /^([A-Za-z0-9][A-Za-z0-9._-]*)=(.+)$/.exec(v);
    if (m && !m[1]!.includes(':')) out[m[1]!] = m[2]!;
    else if (/^[a-z+]+:\/\//.test(v)) out['*'] = v;
    else
      throw new MkimgError(
        'usage',
        `--mirror ${JSON.stringify(v)}: expected SUITE=URL (or a bare URL for every suite)`,
      );
  }
  return out;
}

/** Read the apt sources (type deb only) under aptRoot. Missing files are fine. */
export function readAptSources(aptRoot = '/'): AptEntry[] {
  const out: AptEntry[] = [];
  const base = join(aptRoot, 'etc', 'apt');
  const readText = (p: string): string | undefined => {
    try {
      return readFileSync(p, 'utf8');
    } catch {
      return undefined;
    }
  };
  const oneLine = (p: string) => {
    const text = readText(p);
    if (text === undefined) return;
    text.split('\n').forEach((raw, i) => {
      const line = raw.replace(/#.*$/, '').trim();
      if (!line) return;
      let rest = line;
      if (!rest.startsWith('deb ') && !rest.startsWith('deb\t')) return;
      rest = rest.slice(4).trim();
      if (rest.startsWith('[')) {
        const end = rest.indexOf(']');
        if (end < 0) return;
        rest = rest.slice(end + 1).trim();
      }
      const [uri, suite, ...components] = rest.split(/\s+/);
      if (!uri || !suite) return;
      out.push({ uri: clean(uri), suites: [suite], components, origin: `${p}:${i + 1}` });
    });
  };
  const deb822 = (p: string) => {
    const text = readText(p);
    if (text === undefined) return;
    let stanzas;
    try {
      stanzas = parseDeb822(text);
    } catch {
      return;
    }
    for (const s of stanzas) {
      const types = (s.get('Types') ?? '').split(/\s+/);
      if (!types.includes('deb')) continue;
      if ((s.get('Enabled') ?? 'yes').trim().toLowerCase() === 'no') continue;
      const suites = (s.get('Suites') ?? '').split(/\s+/).filter(Boolean);
      const components = (s.get('Components') ?? '').split(/\s+/).filter(Boolean);
      for (const uri of (s.get('URIs') ?? '').split(/\s+/).filter(Boolean)) {
        out.push({ uri: clean(uri), suites, components, origin: p });
      }
    }
  };
  oneLine(join(base, 'sources.list'));
  let names: string[] = [];
  try {
    names = readdirSync(join(base, 'sources.list.d')).sort();
  } catch {
    names = [];
  }
  for (const n of names) {
    const p = join(base, 'sources.list.d', n);
    if (n.endsWith('.list')) oneLine(p);
    else if (n.endsWith('.sources')) deb822(p);
  }
  return out.filter((e) => /^(https?|file):/.test(e.uri));
}

export interface MirrorChoice {
  url: string;
  /** How it was chosen: "--mirror", "env MKIMG_MIRROR_X", "manifest url", "apt <file>". */
  from: string;
}

export function chooseMirror(source: Source, suite: string, opts: MirrorOptions = {}): MirrorChoice {
  const env = opts.env ?? process.env;
  const flags = opts.mirrors ?? {};
  if (flags[suite]) return { url: clean(flags[suite]!), from: `--mirror ${suite}=` };
  if (flags['*']) return { url: clean(flags['*']!), from: '--mirror' };
  const en = mirrorEnvName(suite);
  if (env[en]) return { url: clean(env[en]!), from: `env ${en}` };
  if (env.MKIMG_MIRROR) return { url: clean(env.MKIMG_MIRROR), from: 'env MKIMG_MIRROR' };
  if (source.url) return { url: clean(source.url), from: 'manifest url' };
  const apt = readAptSources(opts.aptRoot ?? '/');
  const hit = apt.find((e) => e.suites.includes(suite));
  if (hit) return { url: hit.uri, from: `apt ${hit.origin}` };
  // A typo in the manifest's suites (bookwrom) is more likely than a missing mirror: name the suites configured here.
  const known = [...apt.flatMap((e) => e.suites), ...Object.keys(flags).filter((k) => k !== '*')];
  const close = closeMatches(suite, known);
  if (close.length) {
    throw new MkimgError(
      'manifest',
      `unknown suite "${suite}": did you mean ${close.map((c) => `"${c}"`).join(' or ')}?`,
      {
        hint: `the suites this machine's apt sources and --mirror flags know: ${[...new Set(known)].sort().join(', ')}; fix sources[].suites in the manifest`,
        details: { suite, suggestions: close },
      },
    );
  }
  throw new MkimgError(
    'repository',
    `no mirror serves suite "${suite}": no --mirror, no ${en} or MKIMG_MIRROR, no url: on its source, and no entry in ${join(opts.aptRoot ?? '/', 'etc/apt')} sources lists`,
    {
      hint: `pass --mirror ${suite}=URL, set ${en}=URL, add url: to the source in the manifest, or add a deb entry for ${suite} to the host's apt sources`,
      details: { suite },
    },
  );
}

export function mirrorFor(source: Source, suite: string, opts: MirrorOptions = {}): string {
  return chooseMirror(source, suite, opts).url;
}
