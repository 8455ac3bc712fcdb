/**
 * `--user` and the image's config.User: numbers as they are, names looked up
 * in the image's own /etc/passwd and /etc/group (never the host's).
 */
import { lstatSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { MkimgError } from '../util/errors.js';

/** A regular file of the root, read only when neither it nor etc/ is a symlink (which would point at the host). */
function readEtc(root: string, name: string): string[][] {
  try {
    if (!lstatSync(join(root, 'etc')).isDirectory()) return [];
    const p = join(root, 'etc', name);
    if (!lstatSync(p).isFile()) return [];
    return readFileSync(p, 'utf8')
      .split('\n')
      .filter((l) => l && !l.startsWith('#'))
      .map((l) => l.split(':'));
  } catch {
    return [];
  }
}

export interface RunUser {
  uid: number;
  gid: number;
  home?: string;
}

/** Resolve "uid", "uid:gid", "name", "name:group" against the root. `origin` names where the spec came from, for errors. */
export function resolveUser(root: string, spec: string, origin: string): RunUser {
  const passwd = readEtc(root, 'passwd');
  const [u, g] = spec.split(':', 2) as [string, string | undefined];
  let uid: number;
  let gid: number | undefined;
  let home: string | undefined;
  const kind = origin === '--user' ? 'usage' : 'manifest';
  if (/^\d+$/.test(u)) {
    uid = Number(u);
    const e = passwd.find((f) => f[2] === u);
    if (e) {
      gid = Number(e[3]);
      home = e[5];
    }
  } else {
    const e = passwd.find((f) => f[0] === u);
    if (!e)
      throw new MkimgError(kind, `${origin} ${JSON.stringify(spec)}: the image has no user "${u}" in /etc/passwd`, {
        hint: 'give a numeric UID[:GID], or a user the image defines',
      });
    uid = Number(e[2]);
    gid = Number(e[3]);
    home = e[5];
  }
  if (g !== undefined && g !== '') {
    if (/^\d+$/.test(g)) gid = Number(g);
    else {
      const e = readEtc(root, 'group').find((f) => f[0] === g);
      if (!e)
        throw new MkimgError(kind, `${origin} ${JSON.stringify(spec)}: the image has no group "${g}" in /etc/group`, {
          hint: 'give a numeric GID, or a group the image defines',
        });
      gid = Number(e[2]);
    }
  }
  if (
    !Number.isSafeInteger(uid) ||
    uid > 0xfffffffe ||
    (gid !== undefined && (!Number.isSafeInteger(gid) || gid > 0xfffffffe))
  )
    throw new MkimgError(kind, `${origin} ${JSON.stringify(spec)}: not a valid user`);
  return { uid, gid: gid ?? 0, ...(home ? { home } : {}) };
}
