/** The sign, key and diff commands' user errors: exit codes, one message, no stack trace. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { copyFileSync, readFileSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TempDir, run } from '../helpers/pgp.js';
import { writeOciFixture } from '../helpers/oci-fixture.js';
import { cli, expectCleanFailure } from '../helpers/sign-cli.js';

let dir: TempDir;
beforeAll(() => {
  dir = new TempDir('mkimg-sign-cli-');
});
afterAll(() => dir?.cleanup());

describe('mkimg key / sign / diff from the command line', () => {
  it('key generate into a folder, never twice; sign with a passphrase file; sqv accepts', () => {
    writeFileSync(join(dir.path, 'pass'), 'hunter2\n');
    const k = cli([
      'key',
      'generate',
      '--name',
      'CLI',
      '--email',
      'cli@example.org',
      '-o',
      dir.path + '/',
      '--passphrase-file',
      join(dir.path, 'pass'),
    ]);
    expect(k.code, k.stderr).toBe(0);
    expect(k.stdout).toMatch(/^secret key: .*\/secret\.asc/m);
    expect(statSync(join(dir.path, 'secret.asc')).mode & 0o777).toBe(0o600);
    expectCleanFailure(
      cli(['key', 'generate', '--name', 'CLI', '--email', 'cli@example.org', '-o', dir.path + '/']),
      2,
      /exists; mkimg key generate never overwrites/,
      expect,
    );
    expectCleanFailure(
      cli(['key', 'generate', '--name', 'CLI', '--email', 'not-an-email', '-o', join(dir.path, 'x')]),
      2,
      /is not an email address/,
      expect,
    );

    const m = join(dir.path, 'manifest.yaml');
    writeFileSync(m, 'apiVersion: mkimg/v1\nname: cli\n');
    expectCleanFailure(cli(['sign', m, '--key', join(dir.path, 'secret.asc')]), 2, /protected by a passphrase/, expect);
    expectCleanFailure(cli(['sign', m, '--key', join(dir.path, 'nope.asc')]), 2, /cannot read secret key/, expect);
    expectCleanFailure(
      cli(['sign', join(dir.path, 'nope.yaml'), '--key', join(dir.path, 'secret.asc')]),
      2,
      /cannot read manifest .*nope\.yaml: no such file/,
      expect,
    );
    const s = cli([
      'sign',
      m,
      '--key',
      join(dir.path, 'secret.asc'),
      '--passphrase-file',
      join(dir.path, 'pass'),
      '-o',
      join(dir.path, 'm.sig'),
    ]);
    expect(s.code, s.stderr).toBe(0);
    expect(readFileSync(join(dir.path, 'm.sig'), 'utf8')).toMatch(/^-----BEGIN PGP SIGNATURE-----/);
    expect(run('sqv', ['--keyring', join(dir.path, 'public.asc'), join(dir.path, 'm.sig'), m]).status).toBe(0);
  });

  it('diff: a missing file is a usage error, a truncated tar an integrity error', async () => {
    const a = join(dir.path, 'a.tar');
    await writeOciFixture(a, { files: [{ name: 'etc/motd', content: 'hi\n' }] });
    expectCleanFailure(cli(['diff', a, join(dir.path, 'nope.tar')]), 2, /cannot read/, expect);
    const t = join(dir.path, 't.tar');
    copyFileSync(a, t);
    truncateSync(t, 1100);
    expectCleanFailure(cli(['diff', a, t]), 7, /truncated/, expect);
  });
});
