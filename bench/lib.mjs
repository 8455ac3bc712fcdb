// Small shared helpers for the benchmark scripts (not tests: they print numbers).
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';

/**
 * Run a shell command `runs` times (after one warm-up), return the median wall
 * time in seconds. Each run starts after `before` and a `sync`: the kernel's
 * write-back of an earlier run's output (a 100 MB image) competes for the
 * CPU, and would otherwise land on whichever command runs next.
 */
export function timeShell(cmd, { runs = 5, env = process.env, cwd, before, warmup = true } = {}) {
  const times = [];
  for (let i = warmup ? 0 : 1; i <= runs; i++) {
    if (before) before();
    spawnSync('sync');
    const t0 = process.hrtime.bigint();
    const r = spawnSync('bash', ['-c', cmd], { env, cwd, stdio: ['ignore', 'ignore', 'pipe'], maxBuffer: 1 << 26 });
    const dt = Number(process.hrtime.bigint() - t0) / 1e9;
    if (r.status !== 0) throw new Error(`benchmark command failed (${r.status}): ${cmd}\n${r.stderr}`);
    if (i > 0) times.push(dt);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)];
}

/** Deterministic pseudo-random bytes (xorshift), so every machine benchmarks the same tree. */
export function prng(seed) {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}

export function table(rows) {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => String(r[i]).length)));
  return rows.map((r) => r.map((c, i) => String(c).padEnd(widths[i])).join('  ')).join('\n');
}

/**
 * The host's apt sources, from /etc/apt/sources.list, sources.list.d/*.list
 * (one-line format) and sources.list.d/*.sources (deb822). Each entry:
 * { types, uris, suites, components, signedBy } (signedBy: a path, inline key
 * text, or undefined). Disabled deb822 stanzas are skipped.
 */
export function hostAptSources(etc = '/etc/apt') {
  const out = [];
  const words = (s) => (s ?? '').split(/\s+/).filter(Boolean);
  const oneLine = (text) => {
    for (let line of text.split('\n')) {
      line = line.replace(/#.*/, '').trim();
      const m = /^(deb|deb-src)\s+(?:\[([^\]]*)\]\s+)?(\S+)\s+(\S+)\s*(.*)$/.exec(line);
      if (!m) continue;
      const opts = Object.fromEntries(
        words(m[2])
          .map((o) => o.split('='))
          .map(([k, v]) => [k.toLowerCase(), v]),
      );
      out.push({ types: [m[1]], uris: [m[3]], suites: [m[4]], components: words(m[5]), signedBy: opts['signed-by'] });
    }
  };
  const deb822 = (text) => {
    for (const stanza of text.split(/\n\s*\n/)) {
      const f = {};
      let key;
      for (const line of stanza.split('\n')) {
        if (line.startsWith('#')) continue;
        const m = /^([A-Za-z0-9-]+):\s*(.*)$/.exec(line);
        if (m) f[(key = m[1].toLowerCase())] = m[2];
        else if (key && /^\s/.test(line)) f[key] += '\n' + (line.trim() === '.' ? '' : line.trim());
      }
      if (!f.types || !f.uris || /^no$/i.test(f.enabled ?? '')) continue;
      out.push({
        types: words(f.types),
        uris: words(f.uris),
        suites: words(f.suites),
        components: words(f.components),
        signedBy: f['signed-by']?.trim() || undefined,
      });
    }
  };
  const read = (p) => {
    try {
      return readFileSync(p, 'utf8');
    } catch {
      return undefined;
    }
  };
  const main = read(join(etc, 'sources.list'));
  if (main) oneLine(main);
  let names = [];
  try {
    names = readdirSync(join(etc, 'sources.list.d')).sort();
  } catch {
    /* none */
  }
  for (const n of names) {
    const text = read(join(etc, 'sources.list.d', n));
    if (text === undefined) continue;
    if (n.endsWith('.list')) oneLine(text);
    else if (n.endsWith('.sources')) deb822(text);
  }
  return out;
}

/**
 * A flat apt repository of exactly the locked .debs, copied from an mkimg
 * cache that holds them and indexed with dpkg-scanpackages: mmdebstrap's
 * warm, no-network equivalent of mkimg's filled cache. Returns the apt line.
 */
export function localDebRepo(pins, cacheDir, dir) {
  mkdirSync(dir, { recursive: true });
  for (const p of pins) copyFileSync(join(cacheDir, 'blobs/sha256', p.sha256), join(dir, basename(p.filename)));
  writeFileSync(
    join(dir, 'Packages'),
    execFileSync('dpkg-scanpackages', ['-m', '.', '/dev/null'], { cwd: dir, stdio: ['ignore', 'pipe', 'ignore'] }),
  );
  return `deb [trusted=yes] copy://${dir} ./`;
}

/** `mmdebstrap --variant=extract` of exactly the pinned package versions into `output` (a tar), as one shell command. */
export function mmdebstrapExtract({ pins, epoch, tmp, mode, aptLines, output }) {
  const q = (s) => `'${s.replace(/'/g, `'\\''`)}'`;
  const includes = pins.map((p) => `--include=${q(`${p.name}=${p.version}`)}`).join(' ');
  return `SOURCE_DATE_EPOCH=${epoch} TMPDIR=${tmp} mmdebstrap --quiet --variant=extract --mode=${mode} ${includes} bookworm ${output} ${aptLines.map(q).join(' ')}`;
}
