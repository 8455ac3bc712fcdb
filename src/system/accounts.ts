/**
 * /etc/passwd, /etc/group and /etc/shadow for the image, written by mkimg
 * because no maintainer script (base-passwd's, adduser's) ever runs.
 *
 * Bytes are decided by pure functions (planAccounts, render*): the same
 * manifest and the same base files give the same bytes, with no clock and no
 * host user database involved. The shadow "last change" day is
 * floor(sourceDateEpoch / 86400).
 */
import type { Manifest } from '../manifest/types.js';
import type { StagingRoot } from '../stage/types.js';
import { MkimgError } from '../util/errors.js';
import { ensureDir, isFileInRoot, readRootFile, writeRootFile } from './rootfs.js';

export interface PasswdEntry {
  name: string;
  /** Password field of /etc/passwd: always "x" in what mkimg writes (the hash lives in shadow). */
  uid: number;
  gid: number;
  gecos: string;
  home: string;
  shell: string;
  /** Shadow password field: "*" (no password) for system accounts, "!" (locked) for manifest users. */
  shadow: '*' | '!';
  /** Where the entry came from: "builtin", "base" (a package's file) or "manifest". */
  source: 'builtin' | 'base' | 'manifest';
}

export interface GroupEntry {
  name: string;
  gid: number;
  members: string[];
  source: 'builtin' | 'base' | 'manifest' | 'usergroup';
}

export interface AccountsPlan {
  users: PasswdEntry[];
  groups: GroupEntry[];
}

export const NOLOGIN = '/usr/sbin/nologin';
/** Names Debian 12's base-passwd (passwd.master, group.master) defines. */
export const BASE_PASSWD_USERS = [
  'root',
  'daemon',
  'bin',
  'sys',
  'sync',
  'games',
  'man',
  'lp',
  'mail',
  'news',
  'uucp',
  'proxy',
  'www-data',
  'backup',
  'list',
  'irc',
  '_apt',
  'nobody',
];
export const BASE_PASSWD_GROUPS = [
  'root',
  'daemon',
  'bin',
  'sys',
  'adm',
  'tty',
  'disk',
  'lp',
  'mail',
  'news',
  'uucp',
  'man',
  'proxy',
  'kmem',
  'dialout',
  'fax',
  'voice',
  'cdrom',
  'floppy',
  'tape',
  'sudo',
  'audio',
  'dip',
  'www-data',
  'backup',
  'operator',
  'list',
  'irc',
  'src',
  'shadow',
  'utmp',
  'video',
  'sasl',
  'plugdev',
  'staff',
  'games',
  'users',
  'nogroup',
];

/** The distroless convention, documented in SPEC.md §10 ("The `nonroot` convention"). */
export const NONROOT = { name: 'nonroot', uid: 65532, gid: 65532, home: '/home/nonroot' } as const;

/** Parse a passwd(5) file; malformed lines are an input error naming the line. */
export function parsePasswd(text: string, where = '/etc/passwd'): PasswdEntry[] {
  const out: PasswdEntry[] = [];
  text.split('\n').forEach((line, i) => {
    if (line.trim() === '' || line.startsWith('#')) return;
    const f = line.split(':');
    const uid = Number(f[2]);
    const gid = Number(f[3]);
    if (f.length !== 7 || !f[0] || !Number.isInteger(uid) || !Number.isInteger(gid) || f[2] === '' || f[3] === '') {
      throw new MkimgError('input', `${where} line ${i + 1} is not a passwd(5) entry: ${JSON.stringify(line)}`, {
        hint: 'fix or remove the package or files: input that ships this file',
      });
    }
    out.push({ name: f[0], uid, gid, gecos: f[4], home: f[5], shell: f[6], shadow: '*', source: 'base' });
  });
  return out;
}

export function parseGroup(text: string, where = '/etc/group'): GroupEntry[] {
  const out: GroupEntry[] = [];
  text.split('\n').forEach((line, i) => {
    if (line.trim() === '' || line.startsWith('#')) return;
    const f = line.split(':');
    const gid = Number(f[2]);
    if (f.length !== 4 || !f[0] || f[2] === '' || !Number.isInteger(gid)) {
      throw new MkimgError('input', `${where} line ${i + 1} is not a group(5) entry: ${JSON.stringify(line)}`, {
        hint: 'fix or remove the package or files: input that ships this file',
      });
    }
    out.push({ name: f[0], gid, members: f[3] === '' ? [] : f[3].split(','), source: 'base' });
  });
  return out;
}

export interface PlanInput {
  /** /etc/passwd (or base-passwd's passwd.master) text a package shipped, if any. */
  basePasswd?: string;
  baseGroup?: string;
  /** Whether /bin/sh exists in the root: decides root's shell honestly. */
  hasShell: boolean;
  /** Paths that exist in the root as files: a base root shell that is absent is replaced. */
  exists?: (path: string) => boolean;
}

function byIdThenName<T extends { name: string }>(id: (x: T) => number): (a: T, b: T) => number {
  return (a, b) => id(a) - id(b) || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
}

/**
 * Decide the account database. Order of precedence (by name): manifest >
 * package-shipped base files > built-ins (root, nobody; groups root, nogroup).
 * A manifest user whose gid has no group gets a group of its own name
 * (as useradd's USERGROUPS_ENAB does). Output is sorted by id, then name.
 */
export function planAccounts(manifest: Manifest, input: PlanInput): AccountsPlan {
  const users = new Map<string, PasswdEntry>();
  const groups = new Map<string, GroupEntry>();
  const rootShell = input.hasShell ? '/bin/sh' : NOLOGIN;

  users.set('root', {
    name: 'root',
    uid: 0,
    gid: 0,
    gecos: 'root',
    home: '/root',
    shell: rootShell,
    shadow: '*',
    source: 'builtin',
  });
  users.set('nobody', {
    name: 'nobody',
    uid: 65534,
    gid: 65534,
    gecos: 'nobody',
    home: '/nonexistent',
    shell: NOLOGIN,
    shadow: '*',
    source: 'builtin',
  });
  groups.set('root', { name: 'root', gid: 0, members: [], source: 'builtin' });
  groups.set('nogroup', { name: 'nogroup', gid: 65534, members: [], source: 'builtin' });

  if (input.basePasswd !== undefined) {
    for (const u of parsePasswd(input.basePasswd)) {
      // Be honest about shells: a shell the image does not have is not a login shell.
      if (u.shell !== NOLOGIN && u.shell !== '/bin/false' && input.exists && !input.exists(u.shell)) {
        u.shell = u.name === 'root' ? rootShell : NOLOGIN;
      }
      users.set(u.name, u);
    }
  }
  if (input.baseGroup !== undefined) for (const g of parseGroup(input.baseGroup)) groups.set(g.name, g);

  const acc = manifest.accounts ?? { groups: [], users: [] };
  acc.groups.forEach((g) => {
    groups.set(g.name, { name: g.name, gid: g.gid, members: [...(g.members ?? [])], source: 'manifest' });
  });
  acc.users.forEach((u) => {
    users.set(u.name, {
      name: u.name,
      uid: u.uid,
      gid: u.gid,
      gecos: u.gecos ?? '',
      home: u.home,
      shell: u.shell,
      shadow: '!',
      source: 'manifest',
    });
  });
  // A user's primary group must exist: create one named after the user.
  for (const u of [...users.values()].filter((x) => x.source === 'manifest')) {
    if (![...groups.values()].some((g) => g.gid === u.gid)) {
      if (groups.has(u.name)) {
        throw new MkimgError(
          'manifest',
          `accounts.users: user ${u.name} has gid ${u.gid}, which no group has, and a group named ${u.name} already exists with gid ${groups.get(u.name)!.gid}`,
          {
            hint: `add a group with gid ${u.gid} under accounts.groups, or give ${u.name} gid ${groups.get(u.name)!.gid}`,
          },
        );
      }
      groups.set(u.name, { name: u.name, gid: u.gid, members: [], source: 'usergroup' });
    }
  }
  // Members must be known users.
  acc.groups.forEach((g, i) => {
    for (const m of g.members ?? []) {
      if (!users.has(m)) {
        throw new MkimgError('manifest', `accounts.groups[${i}].members names user "${m}", which is not defined`, {
          hint: `define ${m} under accounts.users, or remove it from group ${g.name}`,
        });
      }
    }
  });
  for (const field of ['uid'] as const) {
    const seen = new Map<number, string>();
    for (const u of acc.users) {
      const prev = seen.get(u[field]);
      if (prev !== undefined) {
        throw new MkimgError('manifest', `accounts.users: ${prev} and ${u.name} share uid ${u[field]}`, {
          hint: 'give each user its own uid',
        });
      }
      seen.set(u[field], u.name);
    }
  }
  const gseen = new Map<number, string>();
  for (const g of acc.groups) {
    const prev = gseen.get(g.gid);
    if (prev !== undefined) {
      throw new MkimgError('manifest', `accounts.groups: ${prev} and ${g.name} share gid ${g.gid}`, {
        hint: 'give each group its own gid',
      });
    }
    gseen.set(g.gid, g.name);
  }

  return {
    users: [...users.values()].sort(byIdThenName<PasswdEntry>((x) => x.uid)),
    groups: [...groups.values()].sort(byIdThenName<GroupEntry>((x) => x.gid)),
  };
}

export function renderPasswd(plan: AccountsPlan): string {
  return plan.users.map((u) => [u.name, 'x', u.uid, u.gid, u.gecos, u.home, u.shell].join(':') + '\n').join('');
}

export function renderGroup(plan: AccountsPlan): string {
  return plan.groups.map((g) => [g.name, 'x', g.gid, g.members.join(',')].join(':') + '\n').join('');
}

/** shadow(5): name:password:lastchg:min:max:warn:inactive:expire:reserved */
export function renderShadow(plan: AccountsPlan, sourceDateEpoch: number): string {
  const day = Math.floor(sourceDateEpoch / 86400);
  return plan.users.map((u) => `${u.name}:${u.shadow}:${day}:0:99999:7:::\n`).join('');
}

/**
 * Check that `config.user` (and every check's `user`) names known accounts.
 * Forms: "name", "uid", "name:group", "uid:gid" (numeric parts always allowed).
 * `known` adds names from the root's base files (e.g. base-passwd's www-data).
 */
export function validateUser(manifest: Manifest, known?: { users: Iterable<string>; groups: Iterable<string> }): void {
  // Before unpacking, the names base-passwd will bring are known from the package list.
  const basePasswd = !known && (manifest.packages ?? []).some((p) => p.kind === 'name' && p.name === 'base-passwd');
  const users = new Set<string>([
    'root',
    'nobody',
    ...(basePasswd ? BASE_PASSWD_USERS : []),
    ...(manifest.accounts?.users ?? []).map((u) => u.name),
    ...(known?.users ?? []),
  ]);
  const groups = new Set<string>([
    'root',
    'nogroup',
    ...(basePasswd ? BASE_PASSWD_GROUPS : []),
    ...(manifest.accounts?.groups ?? []).map((g) => g.name),
    // user-named groups created for users whose gid has no group
    ...(manifest.accounts?.users ?? []).map((u) => u.name),
    ...(known?.groups ?? []),
  ]);
  const check = (value: string | undefined, field: string): void => {
    if (value === undefined || value === '') return;
    const [u, g, ...rest] = value.split(':');
    if (rest.length > 0)
      throw new MkimgError('manifest', `${field} "${value}" is not user, user:group, uid or uid:gid`);
    const numeric = (s: string): boolean => /^[0-9]+$/.test(s);
    if (!numeric(u) && !users.has(u)) {
      throw new MkimgError('manifest', `${field} names user "${u}", which the image does not define`, {
        hint: `define it under accounts.users (e.g. { name: ${u}, uid: 65532 }), use a numeric uid:gid, or use one of: ${[...users].sort().join(', ')}`,
      });
    }
    if (g !== undefined && !numeric(g) && !groups.has(g)) {
      throw new MkimgError('manifest', `${field} names group "${g}", which the image does not define`, {
        hint: `define it under accounts.groups, or use a numeric gid`,
      });
    }
  };
  check(manifest.config?.user, 'config.user');
  if (manifest.minimize) manifest.minimize.checks.forEach((c, i) => check(c.user, `minimize.checks[${i}].user`));
}

/**
 * Write /etc/passwd, /etc/group, /etc/shadow and home directories into the
 * staging root. Base entries come from /etc/passwd and /etc/group when a
 * package or files: input shipped them, else from base-passwd's
 * /usr/share/base-passwd/{passwd,group}.master when that package is
 * unpacked. Returns every image path written or created.
 */
export function writeAccounts(root: StagingRoot, manifest: Manifest): string[] {
  const origin = 'generated:accounts';
  const text = (p: string): string | undefined => readRootFile(root, p)?.toString('utf8');
  const basePasswd = text('/etc/passwd') ?? text('/usr/share/base-passwd/passwd.master');
  const baseGroup = text('/etc/group') ?? text('/usr/share/base-passwd/group.master');
  const plan = planAccounts(manifest, {
    basePasswd,
    baseGroup,
    hasShell: isFileInRoot(root, '/bin/sh'),
    exists: (p) => isFileInRoot(root, p),
  });
  validateUser(manifest, { users: plan.users.map((u) => u.name), groups: plan.groups.map((g) => g.name) });

  const written: string[] = [];
  const add = (r: { path: string; created: string[] }): void => {
    written.push(...r.created, r.path);
  };
  add(writeRootFile(root, '/etc/passwd', renderPasswd(plan), origin, { mode: 0o644, uid: 0, gid: 0 }));
  add(writeRootFile(root, '/etc/group', renderGroup(plan), origin, { mode: 0o644, uid: 0, gid: 0 }));
  const shadowGroup = plan.groups.find((g) => g.name === 'shadow');
  add(
    writeRootFile(
      root,
      '/etc/shadow',
      renderShadow(plan, manifest.sourceDateEpoch),
      origin,
      shadowGroup ? { mode: 0o640, uid: 0, gid: shadowGroup.gid } : { mode: 0o600, uid: 0, gid: 0 },
    ),
  );

  // Home directories: root's and the manifest users'. Existing directories
  // (shipped by a package, e.g. /var/www) are left as they are.
  for (const u of plan.users) {
    if (!(u.source === 'manifest' || u.name === 'root')) continue;
    if (u.home === '/' || u.home === '/nonexistent' || u.home === '') continue;
    const own = { mode: 0o700, uid: u.uid, gid: u.gid };
    const r = ensureDir(root, u.home, origin, own);
    written.push(...r.created);
  }
  return [...new Set(written)];
}

/**
 * config.user as the image config carries it: numeric `uid:gid`, looked up
 * in the image's own /etc/passwd and /etc/group (written by writeAccounts).
 * The kubelet refuses a non-numeric user under `runAsNonRoot` (it cannot
 * tell whether a name is root), so a name is turned into numbers here; the
 * name stays in /etc/passwd for tools that show it. A user name alone takes
 * its primary gid, as the runtime would; a bare uid stays as written (the
 * runtime looks its gid up, or uses 0 when there is no entry).
 */
export function numericUser(root: StagingRoot, user: string | undefined): string | undefined {
  if (user === undefined || user === '') return user;
  const [u, g] = user.split(':');
  const numeric = (s: string): boolean => /^[0-9]+$/.test(s);
  if (numeric(u) && (g === undefined || numeric(g))) return user;
  const rows = (p: string): string[][] =>
    (readRootFile(root, p)?.toString('utf8') ?? '')
      .split('\n')
      .filter((l) => l !== '' && !l.startsWith('#'))
      .map((l) => l.split(':'));
  const passwd = rows('/etc/passwd');
  const entry = numeric(u) ? passwd.find((r) => r[2] === u) : passwd.find((r) => r[0] === u);
  if (!numeric(u) && !entry) {
    throw new MkimgError('manifest', `config.user names user "${u}", which the image's /etc/passwd does not define`, {
      hint: `define it under accounts.users (e.g. { name: ${u}, uid: 65532 }) or use a numeric uid:gid`,
    });
  }
  const uid = numeric(u) ? u : entry![2];
  let gid: string | undefined;
  if (g === undefined) gid = entry?.[3];
  else if (numeric(g)) gid = g;
  else {
    gid = rows('/etc/group').find((r) => r[0] === g)?.[2];
    if (gid === undefined) {
      throw new MkimgError('manifest', `config.user names group "${g}", which the image's /etc/group does not define`, {
        hint: 'define it under accounts.groups, or use a numeric gid',
      });
    }
  }
  return gid === undefined ? uid : `${uid}:${gid}`;
}
