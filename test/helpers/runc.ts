/**
 * Run an image tar for real: extract the OCI layout, `umoci unpack` it into a
 * bundle, adapt config.json for this machine (no rlimits, cgroups or
 * resources: umoci's defaults ask for limits and a cgroup that a CI container
 * or a nested runtime may refuse, and no test here measures them), and
 * `runc run` it.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function unpackImage(imageTar: string, tag: string): { bundle: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'mkimg-runc-'));
  const layout = join(dir, 'layout');
  mkdirSync(layout);
  execFileSync('tar', ['-xf', imageTar, '-C', layout]);
  const bundle = join(dir, 'bundle');
  execFileSync('umoci', ['unpack', '--image', `${layout}:${tag}`, bundle], { stdio: 'pipe' });
  return { bundle, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export function runImage(
  imageTar: string,
  tag: string,
  opts: { args?: string[]; env?: string[]; timeoutMs?: number } = {},
): RunResult {
  const { bundle, cleanup } = unpackImage(imageTar, tag);
  try {
    return runBundle(bundle, 'mkimg-test', opts.timeoutMs ?? 60_000, (cfg) => {
      if (opts.args) cfg.process.args = opts.args;
      if (opts.env) cfg.process.env = [...cfg.process.env, ...opts.env];
    });
  } finally {
    cleanup();
  }
}

/**
 * `runc run` the bundle once its config.json is adapted for this machine (no
 * rlimits, cgroups or resources; no terminal) and by `adapt`; the container
 * is deleted afterwards.
 */
export function runBundle(bundle: string, idPrefix: string, timeoutMs: number, adapt: (cfg: any) => void): RunResult {
  const cfgPath = join(bundle, 'config.json');
  const cfg = JSON.parse(readFileSync(cfgPath, 'utf8'));
  delete cfg.process.rlimits;
  delete cfg.linux.resources;
  delete cfg.linux.cgroupsPath;
  cfg.process.terminal = false;
  adapt(cfg);
  writeFileSync(cfgPath, JSON.stringify(cfg));
  const id = `${idPrefix}-${process.pid}-${Date.now().toString(36)}`;
  const r = spawnSync('runc', ['run', '--bundle', bundle, id], {
    encoding: 'utf8',
    timeout: timeoutMs,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  spawnSync('runc', ['delete', '--force', id], { stdio: 'ignore' });
  return { code: r.status ?? 128, stdout: r.stdout, stderr: r.stderr };
}
