/** `podman load` takes the image tar as it is, and reports our image ID (the config digest). */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { mkimgJson } from '../helpers/cli.js';
import { writeSampleProject } from '../helpers/sample-project.js';

const work = mkdtempSync(join(tmpdir(), 'mkimg-podman-'));
afterAll(() => {
  // podman's storage may hold read-only overlay dirs; let podman clean what it made.
  try {
    execFileSync(
      'podman',
      ['--root', join(work, 'root'), '--runroot', join(work, 'run'), 'system', 'reset', '--force'],
      { stdio: 'ignore' },
    );
  } catch {
    /* best effort */
  }
  rmSync(work, { recursive: true, force: true });
});

describe('podman load', () => {
  it('loads the image tar under its name with the config digest as image ID', () => {
    const manifest = writeSampleProject(join(work, 'proj'));
    const out = join(work, 'image.tar');
    const built = mkimgJson<{ imageId: string }>(['build', manifest, '-o', out]);
    expect(built.code).toBe(0);
    const podman = (...args: string[]) =>
      execFileSync(
        'podman',
        ['--root', join(work, 'root'), '--runroot', join(work, 'run'), '--storage-driver', 'vfs', ...args],
        { encoding: 'utf8' },
      );
    // the tar names itself fully qualified (Docker's normalization), as containerd needs
    expect(podman('load', '-i', out)).toContain('Loaded image: docker.io/test/sample:1.0');
    expect(podman('inspect', '--format', '{{.Id}}', 'docker.io/test/sample:1.0').trim()).toBe(
      built.json.imageId.slice('sha256:'.length),
    );
  });
});
