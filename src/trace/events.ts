/**
 * The tracer's event format: one JSON object per line in the --events file
 * (see SPEC.md §9, "Events"). Paths are image paths: they are what the
 * process saw inside the sandbox, whose "/" is the staging root.
 */
export interface TraceEvent {
  /** Thread id, as the tracer (outside the sandbox's PID namespace) sees it. */
  pid: number;
  /** Syscall name: "openat", "execve", "getdents64", ... */
  sc: string;
  /** The path argument as the process gave it; null for fd-only calls (getdents64, fchdir). */
  path: string | null;
  /** The directory a relative path was taken against (dirfd or cwd), or the fd's path; null for absolute paths. */
  dirfd: string | null;
  /** The absolute image path the kernel walks (not canonicalized: may hold "..", symlinks); null when unknown. */
  abs: string | null;
  /** The dirfd / fd argument when the syscall has one (-100 is AT_FDCWD). */
  fd?: number;
  /** open flags (open, openat, openat2, creat) or AT_* flags (the *at calls); 0 otherwise. */
  flags: number;
}

export function parseEvents(text: string): TraceEvent[] {
  const out: TraceEvent[] = [];
  for (const line of text.split('\n')) {
    if (line === '') continue;
    try {
      out.push(JSON.parse(line) as TraceEvent);
    } catch {
      // A truncated last line (tracer killed mid-write) carries no usable event.
    }
  }
  return out;
}

const O_NOFOLLOW = 0o400000;
const O_CREAT = 0o100;
const O_EXCL = 0o200;
const AT_SYMLINK_NOFOLLOW = 0x100;
const AT_SYMLINK_FOLLOW = 0x400;

/** Syscalls that act on the last component itself, never following a final symlink. */
const NOFOLLOW_CALLS = new Set([
  'lstat',
  'lgetxattr',
  'llistxattr',
  'lsetxattr',
  'lremovexattr',
  'lchown',
  'readlink',
  'readlinkat',
  'unlink',
  'unlinkat',
  'rmdir',
  'rename',
  'renameat',
  'renameat2',
  'link',
  'symlink',
  'symlinkat',
  'mkdir',
  'mkdirat',
  'mknod',
  'mknodat',
]);

/** Whether the kernel follows a symlink in the last component for this event. */
export function followsLast(ev: TraceEvent): boolean {
  if (NOFOLLOW_CALLS.has(ev.sc)) return false;
  switch (ev.sc) {
    case 'open':
    case 'openat':
    case 'openat2':
      if (ev.flags & O_NOFOLLOW) return false;
      if ((ev.flags & (O_CREAT | O_EXCL)) === (O_CREAT | O_EXCL)) return false;
      return true;
    case 'linkat':
      return (ev.flags & AT_SYMLINK_FOLLOW) !== 0;
    case 'newfstatat':
    case 'statx':
    case 'fchownat':
    case 'utimensat':
    case 'fchmodat2':
    case 'faccessat2':
    case 'execveat':
      return (ev.flags & AT_SYMLINK_NOFOLLOW) === 0;
    default:
      return true;
  }
}

export function isExec(ev: TraceEvent): boolean {
  return ev.sc === 'execve' || ev.sc === 'execveat';
}

export function isListing(ev: TraceEvent): boolean {
  return ev.sc === 'getdents64' || ev.sc === 'getdents';
}
