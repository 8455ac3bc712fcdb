/**
 * `mkimg run` arguments, parsed by hand (no commander) so a warm run loads
 * as little code as possible. Options come before IMAGE, like docker run:
 * everything after IMAGE (and an optional `--`) is the program's arguments.
 */
import { MkimgError } from '../util/errors.js';

export interface RunFlags {
  image: string;
  args: string[];
  platform?: string;
  env: string[];
  volumes: string[];
  workdir?: string;
  user?: string;
  network: 'none' | 'host';
  entrypoint?: string;
  writable: boolean;
  explain: boolean;
  cacheDir?: string;
  insecure: boolean;
  help: boolean;
}

const VALUED: Record<string, keyof RunFlags> = {
  '--platform': 'platform',
  '-e': 'env',
  '--env': 'env',
  '-v': 'volumes',
  '--volume': 'volumes',
  '-w': 'workdir',
  '--workdir': 'workdir',
  '-u': 'user',
  '--user': 'user',
  '--network': 'network',
  '--entrypoint': 'entrypoint',
  '--cache-dir': 'cacheDir',
};

export const RUN_HELP = `Usage: mkimg run [options] IMAGE [--] [ARGS...]

Run an image's process in a sandbox (user, mount, PID, UTS, IPC and network
namespaces; the image read-only as "/"; a fresh /dev, /proc, tmpfs /tmp and /run).
IMAGE is an image tar (mkimg build/pull), an OCI layout directory, or a registry
reference (pulled first). Layers are unpacked once into the cache, by diff_id.
Standard streams pass through; signals are forwarded; the exit code is the
program's (128+N when it was killed by signal N).

Options:
  --platform OS/ARCH       the image to pick from a multi-platform index (default: this host's)
  -e, --env K=V            set an environment variable (K alone: take it from this environment); repeatable
  -v, --volume HOST:IMG[:ro]  bind-mount a host file or directory; :ro read-only; repeatable
  -w, --workdir DIR        working directory inside the image (default: the image's)
  -u, --user UID[:GID] | NAME[:GROUP]  run as this user (names from the image's /etc/passwd, /etc/group)
  --network none|host      none (default): only a private loopback; host: this host's network
  --entrypoint X           replace the image's entrypoint (and drop its cmd)
  --writable               a writable root (an overlay whose changes vanish at exit)
  --explain                run traced; list the paths the program missed that the image's
                           unminimized package closure had, and the manifest line that keeps them
  --cache-dir DIR          mkimg's cache (default $XDG_CACHE_HOME/mkimg or ~/.cache/mkimg)
  --insecure               registry references: plain HTTP
  -h, --help               this text

Examples:
  $ mkimg run static.tar
  $ mkimg run python.tar -- /usr/bin/python3.11 -c 'print(6*7)'
  $ mkimg run -v "$PWD/site:/srv:ro" --network host nginx.tar
  $ mkimg run --explain app.tar

Exit codes: the program's; when mkimg itself fails before the program starts:
2 usage (bad flag, missing -v path, unknown user), 7 integrity (not an image, a layer
that would escape), 12 registry, 14 sandbox (cannot set up the sandbox, other platform).
`;

/** The flags of `mkimg run IMAGE` with nothing else given. */
export function defaultRunFlags(image = ''): RunFlags {
  return {
    image,
    args: [],
    env: [],
    volumes: [],
    network: 'none',
    writable: false,
    explain: false,
    insecure: false,
    help: false,
  };
}

export function parseRunArgs(argv: string[]): RunFlags {
  const f = defaultRunFlags();
  let i = 0;
  for (; i < argv.length; i++) {
    let a = argv[i]!;
    if (a === '--') {
      i++;
      break;
    }
    if (!a.startsWith('-') || a === '-') break;
    let inline: string | undefined;
    const eq = a.indexOf('=');
    if (a.startsWith('--') && eq > 0) {
      inline = a.slice(eq + 1);
      a = a.slice(0, eq);
    }
    const key = VALUED[a];
    if (key) {
      const v = inline ?? argv[++i];
      if (v === undefined) throw new MkimgError('usage', `${a} needs a value`, { hint: 'mkimg run --help' });
      if (key === 'env' || key === 'volumes') (f[key] as string[]).push(v);
      else if (key === 'network') {
        if (v !== 'none' && v !== 'host') throw new MkimgError('usage', `--network ${v}: expected none or host`);
        f.network = v;
      } else (f as unknown as Record<string, string>)[key] = v;
      continue;
    }
    if (inline !== undefined) throw new MkimgError('usage', `${a} takes no value`, { hint: 'mkimg run --help' });
    if (a === '--writable') f.writable = true;
    else if (a === '--explain') f.explain = true;
    else if (a === '--insecure') f.insecure = true;
    else if (a === '-h' || a === '--help') f.help = true;
    else
      throw new MkimgError('usage', `unknown option ${a}`, {
        hint: "mkimg run --help (options go before IMAGE; the program's arguments after it)",
      });
  }
  if (f.help) return f;
  if (i >= argv.length)
    throw new MkimgError('usage', 'no image given', { hint: 'mkimg run [options] IMAGE [--] [ARGS...]' });
  f.image = argv[i]!;
  let rest = argv.slice(i + 1);
  if (rest[0] === '--') rest = rest.slice(1);
  f.args = rest;
  return f;
}
