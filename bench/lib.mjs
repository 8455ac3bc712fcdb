// Small shared helpers for the benchmark scripts (not tests: they print numbers).
import { spawnSync } from 'node:child_process';

/** Run a shell command `runs` times (after one warm-up), return the median wall time in seconds. */
export function timeShell(cmd, { runs = 5, env = process.env, cwd, before } = {}) {
  const times = [];
  for (let i = 0; i <= runs; i++) {
    if (before) before();
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
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    return x;
  };
}

export function table(rows) {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => String(r[i]).length)));
  return rows.map((r) => r.map((c, i) => String(c).padEnd(widths[i])).join('  ')).join('\n');
}
