/*
 * mkimg-trace: run a program inside a staging root, sandboxed, and record
 * every path it asks the kernel about (one JSON line per syscall entry).
 *
 *   mkimg-trace --root DIR --events FILE [--timeout SECS] [--hostname H]
 *               [--cwd DIR] [--uid N --gid N] [--env K=V]... [--stdin FILE]
 *               [--stdout FILE] [--stderr FILE] [--no-trace]
 *               [--layer DIR]... [--hide FILE] -- PROGRAM ARGS...
 *   --layer: the root is the read-only overlay of DIR above each --layer
 *   (a cached package root shared by builds, never copied); --hide: image
 *   paths that overlay leaves out (the proof round's minimized root).
 *   run options (mkimg run): [--bind HOST:IMG[:ro]]... [--network host|none]
 *               [--writable] [--stdin -] [--messages-fd N]
 *
 * Process layout:
 *   tracer (host namespaces) ── clone(NEWNS|NEWPID|NEWNET|NEWUTS|NEWIPC[|NEWUSER])
 *     └─ init (pid 1 in the sandbox): builds the mount tree, pivots, forks
 *          └─ worker: a user namespace of its own (init writes its maps: the
 *             program's root is never the host's), uid/gid, stdio,
 *             NO_NEW_PRIVS, the seccomp filter (refusals; stops), execve
 * In trace mode init does PTRACE_TRACEME, so the worker and everything it
 * starts are auto-attached (TRACEFORK/VFORK/CLONE); the worker installs a
 * seccomp filter that returns SECCOMP_RET_TRACE for path syscalls only, so
 * the tracer stops on those syscalls' entry and nowhere else.
 *
 * Exit codes: the program's exit code; 128+N if it was killed by signal N;
 * 124 on timeout; 125 when the tracer itself fails; 126/127 when the program
 * cannot be executed / is not found.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <grp.h>
#include <unistd.h>

#if !defined(__x86_64__)
#error "mkimg-trace supports x86_64 only"
#endif

#ifndef SYS_fchmodat2
#define SYS_fchmodat2 452
#endif
#ifndef AT_EMPTY_PATH
#define AT_EMPTY_PATH 0x1000
#endif
#ifndef PTRACE_EVENT_SECCOMP
#define PTRACE_EVENT_SECCOMP 7
#endif

#define EXIT_TRACER 125
#define EXIT_TIMEOUT 124

/* When the caller is root, the program runs in a user namespace of its own
 * whose ids 0..2^31-2 are host ids 2^31..2^32-2: root inside is nobody the
 * host knows, so no capability it holds reaches a host resource. */
#define HOST_ID_BASE 2147483648UL
#define HOST_ID_COUNT 2147483647UL

/* ------------------------------------------------------------------ */
/* The syscall table                                                   */
/* ------------------------------------------------------------------ */

enum { SP_NONE = 0, SP_FD, SP_SOCK, SP_OPENAT2, SP_CREAT };

struct scdef {
  long nr;
  const char *name;
  signed char d1, p1; /* dirfd arg (-1: AT_FDCWD), path arg (-1: none) */
  signed char d2, p2; /* a second path (link, rename) */
  signed char fl;     /* flags arg, -1: none */
  unsigned char special;
};

static const struct scdef SC[] = {
  {SYS_open, "open", -1, 0, -1, -1, 1, 0},
  {SYS_creat, "creat", -1, 0, -1, -1, -1, SP_CREAT},
  {SYS_stat, "stat", -1, 0, -1, -1, -1, 0},
  {SYS_lstat, "lstat", -1, 0, -1, -1, -1, 0},
  {SYS_access, "access", -1, 0, -1, -1, -1, 0},
  {SYS_readlink, "readlink", -1, 0, -1, -1, -1, 0},
  {SYS_execve, "execve", -1, 0, -1, -1, -1, 0},
  {SYS_chdir, "chdir", -1, 0, -1, -1, -1, 0},
  {SYS_chroot, "chroot", -1, 0, -1, -1, -1, 0},
  {SYS_truncate, "truncate", -1, 0, -1, -1, -1, 0},
  {SYS_mknod, "mknod", -1, 0, -1, -1, -1, 0},
  {SYS_getxattr, "getxattr", -1, 0, -1, -1, -1, 0},
  {SYS_lgetxattr, "lgetxattr", -1, 0, -1, -1, -1, 0},
  {SYS_listxattr, "listxattr", -1, 0, -1, -1, -1, 0},
  {SYS_llistxattr, "llistxattr", -1, 0, -1, -1, -1, 0},
  {SYS_setxattr, "setxattr", -1, 0, -1, -1, -1, 0},
  {SYS_lsetxattr, "lsetxattr", -1, 0, -1, -1, -1, 0},
  {SYS_removexattr, "removexattr", -1, 0, -1, -1, -1, 0},
  {SYS_lremovexattr, "lremovexattr", -1, 0, -1, -1, -1, 0},
  {SYS_utime, "utime", -1, 0, -1, -1, -1, 0},
  {SYS_utimes, "utimes", -1, 0, -1, -1, -1, 0},
  {SYS_mkdir, "mkdir", -1, 0, -1, -1, -1, 0},
  {SYS_unlink, "unlink", -1, 0, -1, -1, -1, 0},
  {SYS_rmdir, "rmdir", -1, 0, -1, -1, -1, 0},
  {SYS_chmod, "chmod", -1, 0, -1, -1, -1, 0},
  {SYS_chown, "chown", -1, 0, -1, -1, -1, 0},
  {SYS_lchown, "lchown", -1, 0, -1, -1, -1, 0},
  {SYS_statfs, "statfs", -1, 0, -1, -1, -1, 0},
  {SYS_link, "link", -1, 0, -1, 1, -1, 0},
  {SYS_rename, "rename", -1, 0, -1, 1, -1, 0},
  {SYS_symlink, "symlink", -1, 1, -1, -1, -1, 0},
  {SYS_inotify_add_watch, "inotify_add_watch", -1, 1, -1, -1, -1, 0},
  {SYS_openat, "openat", 0, 1, -1, -1, 2, 0},
  {SYS_openat2, "openat2", 0, 1, -1, -1, -1, SP_OPENAT2},
  {SYS_newfstatat, "newfstatat", 0, 1, -1, -1, 3, 0},
  {SYS_statx, "statx", 0, 1, -1, -1, 2, 0},
  {SYS_faccessat, "faccessat", 0, 1, -1, -1, -1, 0},
  {SYS_faccessat2, "faccessat2", 0, 1, -1, -1, 3, 0},
  {SYS_readlinkat, "readlinkat", 0, 1, -1, -1, -1, 0},
  {SYS_execveat, "execveat", 0, 1, -1, -1, 4, 0},
  {SYS_mkdirat, "mkdirat", 0, 1, -1, -1, -1, 0},
  {SYS_mknodat, "mknodat", 0, 1, -1, -1, -1, 0},
  {SYS_unlinkat, "unlinkat", 0, 1, -1, -1, 2, 0},
  {SYS_fchmodat, "fchmodat", 0, 1, -1, -1, -1, 0},
  {SYS_fchmodat2, "fchmodat2", 0, 1, -1, -1, 3, 0},
  {SYS_fchownat, "fchownat", 0, 1, -1, -1, 4, 0},
  {SYS_utimensat, "utimensat", 0, 1, -1, -1, 3, 0},
  {SYS_futimesat, "futimesat", 0, 1, -1, -1, -1, 0},
  {SYS_linkat, "linkat", 0, 1, 2, 3, 4, 0},
  {SYS_renameat, "renameat", 0, 1, 2, 3, -1, 0},
  {SYS_renameat2, "renameat2", 0, 1, 2, 3, 4, 0},
  {SYS_symlinkat, "symlinkat", 1, 2, -1, -1, -1, 0},
  {SYS_fchdir, "fchdir", 0, -1, -1, -1, -1, SP_FD},
  {SYS_getdents64, "getdents64", 0, -1, -1, -1, -1, SP_FD},
  {SYS_getdents, "getdents", 0, -1, -1, -1, -1, SP_FD},
  {SYS_connect, "connect", -1, -1, -1, -1, -1, SP_SOCK},
  {SYS_bind, "bind", -1, -1, -1, -1, -1, SP_SOCK},
};
#define NSC ((int)(sizeof SC / sizeof SC[0]))

/* ------------------------------------------------------------------ */
/* Small helpers                                                       */
/* ------------------------------------------------------------------ */

static const char *prog = "mkimg-trace";
static int err_fd = 2; /* where setup failures are reported */

static void die(const char *step) {
  int e = errno;
  dprintf(err_fd, "%s: %s: %s\n", prog, step, strerror(e));
  _exit(EXIT_TRACER);
}

static void dief(const char *fmt, const char *arg) {
  dprintf(err_fd, "%s: ", prog);
  dprintf(err_fd, fmt, arg);
  dprintf(err_fd, "\n");
  _exit(EXIT_TRACER);
}

static void usage(void) {
  fprintf(stderr,
          "usage: %s --root DIR --events FILE [--timeout SECS] [--hostname H] [--cwd DIR]\n"
          "       [--uid N --gid N] [--env K=V]... [--stdin FILE] [--stdout FILE] [--stderr FILE]\n"
          "       [--no-trace] [--layer DIR]... [--hide FILE] [--bind HOST:IMG[:ro]]... [--network host|none] [--writable]\n"
          "       [--stdin -] [--messages-fd N] -- PROGRAM ARGS...\n",
          prog);
  exit(EXIT_TRACER);
}

static void write_file(const char *path, const char *text) {
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) die(path);
  size_t n = strlen(text);
  if (write(fd, text, n) != (ssize_t)n) die(path);
  close(fd);
}

/* ------------------------------------------------------------------ */
/* Options                                                             */
/* ------------------------------------------------------------------ */

#define MAX_LAYERS 16

struct opts {
  const char *root, *events, *hostname, *cwd, *in, *out, *err;
  /* --layer: read-only directories under --root, the root being their
   * overlay; --hide: a file of NUL-separated image paths the overlay hides. */
  const char *layer[MAX_LAYERS], *hide;
  int nlayers;
  long timeout;
  long uid, gid;
  char **env;
  int nenv;
  int trace;
  char **argv;
};

static struct opts O;
static char scratch[4096];
static char layers_dir[4096]; /* --layer/--hide: where init mounts the overlay's parts (its own namespace) */

/* ------------------------------------------------------------------ */
/* Sandbox setup (runs in init, pid 1 of the new namespaces)           */
/* ------------------------------------------------------------------ */

static unsigned long locked_flags(const char *path) {
  struct statvfs sv;
  unsigned long f = 0;
  if (statvfs(path, &sv) != 0) return 0;
  if (sv.f_flag & ST_NOSUID) f |= MS_NOSUID;
  if (sv.f_flag & ST_NODEV) f |= MS_NODEV;
  if (sv.f_flag & ST_NOEXEC) f |= MS_NOEXEC;
  if (sv.f_flag & ST_NOATIME) f |= MS_NOATIME;
  if (sv.f_flag & ST_NODIRATIME) f |= MS_NODIRATIME;
  if (sv.f_flag & ST_RELATIME) f |= MS_RELATIME;
  return f;
}

static void bind_ro(const char *src, const char *dst) {
  char step[8300];
  if (mount(src, dst, NULL, MS_BIND | MS_REC, NULL) != 0) {
    snprintf(step, sizeof step, "mount(bind %s -> %s)", src, dst);
    die(step);
  }
  unsigned long f = locked_flags(dst);
  if (mount(NULL, dst, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | f, NULL) != 0) {
    snprintf(step, sizeof step, "mount(remount read-only %s)", dst);
    die(step);
  }
}

static int caller_is_root; /* no user namespace around init: ids are host ids */

/* Caller root: a user namespace holding the worker's id map (made by the
 * tracer before clone), for idmapped binds of DIR: its files, owned by the
 * host's root, are root's inside, as in the image, so a program running as
 * root reads a 0600 file of the image as it would in a container. -1: plain
 * binds (the kernel or the file system cannot idmap), and root's files are
 * "other" to the program. */
static int idmap_fd = -1;

#ifndef MOUNT_ATTR_IDMAP
#define MOUNT_ATTR_IDMAP 0x00100000
#endif
struct mkimg_mount_attr {
  uint64_t attr_set, attr_clr, propagation, userns_fd;
};

/* Bind src read-only on dst, idmapped through idmap_fd: 0 on success, -1 when
 * it cannot be done (the caller then binds plainly). */
static int bind_ro_idmapped(const char *src, const char *dst) {
  if (idmap_fd < 0) return -1;
  /* open_tree(OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE) */
  int t = (int)syscall(428, AT_FDCWD, src, 1 | O_CLOEXEC | 0x8000);
  if (t < 0) return -1;
  struct mkimg_mount_attr at = {.attr_set = MOUNT_ATTR_IDMAP | 0x1 /* RDONLY */, .userns_fd = (uint64_t)idmap_fd};
  /* mount_setattr(t, "", AT_EMPTY_PATH | AT_RECURSIVE), then move_mount(MOVE_MOUNT_F_EMPTY_PATH) */
  int r = (int)syscall(442, t, "", AT_EMPTY_PATH | 0x8000, &at, sizeof at);
  if (r == 0) r = (int)syscall(429, t, "", AT_FDCWD, dst, 0x4);
  close(t);
  return r == 0 ? 0 : -1;
}

static void mount_tmpfs(const char *dst, const char *mode) {
  char step[4200], data[128];
  /* Owned by the program's root (a host id of its own when the caller is root). */
  if (caller_is_root) snprintf(data, sizeof data, "%s,uid=%lu,gid=%lu", mode, HOST_ID_BASE, HOST_ID_BASE);
  else snprintf(data, sizeof data, "%s", mode);
  if (mount("tmpfs", dst, "tmpfs", MS_NOSUID | MS_NODEV, data) != 0) {
    snprintf(step, sizeof step, "mount(tmpfs %s)", dst);
    die(step);
  }
}

static void path_in(char *buf, size_t n, const char *a, const char *b) {
  if ((size_t)snprintf(buf, n, "%s/%s", a, b) >= n) {
    errno = ENAMETOOLONG;
    die(b);
  }
}

/*
 * /proc of the sandbox, as runc leaves it: the kernel's knobs read-only, the
 * files that reach host state masked. The sandbox's network namespace lets
 * its root bind ports below 1024 (the namespace's own sysctl, set first).
 */
static const char *const PROC_MASKED[] = {"sysrq-trigger", "kcore", "keys", "timer_list", "sched_debug", "latency_stats", "kallsyms", "kmsg", "config.gz"};
static const char *const PROC_MASKED_DIRS[] = {"acpi", "scsi", "driver"};
static const char *const PROC_READONLY[] = {"sys", "bus", "fs", "irq"};

static void harden_proc(const char *proc) {
  char p[4300];
  snprintf(p, sizeof p, "%s/sys/net/ipv4/ip_unprivileged_port_start", proc);
  int fd = open(p, O_WRONLY | O_CLOEXEC);
  if (fd >= 0) {
    if (write(fd, "0", 1) != 1) die("write(ip_unprivileged_port_start)");
    close(fd);
  }
  for (size_t i = 0; i < sizeof PROC_READONLY / sizeof PROC_READONLY[0]; i++) {
    path_in(p, sizeof p, proc, PROC_READONLY[i]);
    if (access(p, F_OK) != 0) continue;
    bind_ro(p, p);
  }
  for (size_t i = 0; i < sizeof PROC_MASKED / sizeof PROC_MASKED[0]; i++) {
    path_in(p, sizeof p, proc, PROC_MASKED[i]);
    if (access(p, F_OK) != 0) continue;
    if (mount("/dev/null", p, NULL, MS_BIND, NULL) != 0) die("mount(mask /proc file)");
  }
  for (size_t i = 0; i < sizeof PROC_MASKED_DIRS / sizeof PROC_MASKED_DIRS[0]; i++) {
    path_in(p, sizeof p, proc, PROC_MASKED_DIRS[i]);
    if (access(p, F_OK) != 0) continue;
    if (mount("tmpfs", p, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=0,mode=0555") != 0) die("mount(mask /proc directory)");
  }
}

/* ------------------------------------------------------------------ */
/* mkimg run: bind mounts, host network, a writable root, stdio and     */
/* signal passthrough. Kept in one block; setup_mounts/init_main/main   */
/* call into it at marked points.                                      */
/* ------------------------------------------------------------------ */

#define MAX_BINDS 64
struct bind {
  const char *host, *img;
  int ro, isdir;
};
struct run_opts {
  struct bind binds[MAX_BINDS];
  int nbinds;
  int net_host;   /* --network host: stay in the caller's network namespace */
  int writable;   /* --writable: an overlay with a tmpfs upper over --root */
  int own_terminal; /* --own-terminal: the tracer is what the caller's shell waits on (mkimg-run) */
  int tty_fg;       /* with --own-terminal: stdin is a terminal and we are its foreground */
};
static struct run_opts R;
static char newroot[4200]; /* what init pivots into: scratch, or scratch/root with --writable */
static volatile pid_t fwd_to = 0; /* tracer: init; init: the worker */

static void parse_bind(char *spec) {
  if (R.nbinds >= MAX_BINDS) dief("more than %s --bind options", "64");
  struct bind *b = &R.binds[R.nbinds++];
  char *c = strchr(spec, ':');
  if (!c || c == spec) dief("--bind wants HOST:IMG[:ro], got '%s'", spec);
  *c = 0;
  b->host = spec;
  b->img = c + 1;
  char *m = strchr(c + 1, ':');
  if (m) {
    *m = 0;
    if (strcmp(m + 1, "ro") && strcmp(m + 1, "rw")) dief("--bind mode must be ro or rw, got '%s'", m + 1);
    b->ro = !strcmp(m + 1, "ro");
  }
  if (b->img[0] != '/') dief("--bind target must be an absolute path, got '%s'", b->img);
  struct stat st;
  if (stat(b->host, &st) != 0) die(b->host);
  b->isdir = S_ISDIR(st.st_mode);
}

/* --writable: tmpfs at scratch, holding the overlay's upper and work dirs,
 * the overlay itself mounted at scratch/root. All of it lives in the
 * sandbox's mount namespace: nothing is written to --root or the host disk. */
static void setup_writable_root(void) {
  char u[4200], w[4200], opts[13000];
  path_in(u, sizeof u, scratch, "upper");
  path_in(w, sizeof w, scratch, "work");
  path_in(newroot, sizeof newroot, scratch, "root");
  if (mkdir(u, 0755) != 0 || mkdir(w, 0755) != 0 || mkdir(newroot, 0755) != 0) die("mkdir(overlay dirs)");
  if (strpbrk(O.root, ",:\\")) dief("--writable: --root %s holds ',', ':' or '\\', which overlayfs options cannot carry", O.root);
  snprintf(opts, sizeof opts, "lowerdir=%s,upperdir=%s,workdir=%s", O.root, u, w);
  if (mount("overlay", newroot, "overlay", MS_NOSUID | MS_NODEV, opts) != 0) die("mount(overlay for --writable)");
  /* The image's own /tmp, /run, /proc, /dev are covered below, as without --writable. */
  static const char *const TOP[][2] = {{"tmp", "1777"}, {"run", "0755"}, {"proc", "0555"}, {"dev", "0755"}};
  for (size_t i = 0; i < 4; i++) {
    char a[4300];
    path_in(a, sizeof a, newroot, TOP[i][0]);
    struct stat st;
    if (lstat(a, &st) == 0 && !S_ISDIR(st.st_mode) && unlink(a) != 0) die(a);
    if (mkdir(a, (mode_t)strtol(TOP[i][1], NULL, 8)) != 0 && errno != EEXIST) die(a);
  }
}

#ifndef RESOLVE_IN_ROOT
#define RESOLVE_IN_ROOT 0x10
#endif
struct mkimg_open_how {
  uint64_t flags, mode, resolve;
};

/* Open PATH (relative, image side) as if newroot were "/": symlinks and ".."
 * cannot leave it (openat2 RESOLVE_IN_ROOT). */
static int open_in_root(int rootfd, const char *rel, int flags) {
  struct mkimg_open_how how = {.flags = (uint64_t)(flags | O_CLOEXEC), .mode = 0, .resolve = RESOLVE_IN_ROOT};
  return (int)syscall(SYS_openat2, rootfd, *rel ? rel : ".", &how, sizeof how);
}

/* Before the scratch root turns read-only and before pivot_root: mount each
 * --bind. The target is resolved inside newroot only, and the mount is made
 * on /proc/self/fd/N of that resolved target, so an image symlink cannot send
 * a mount onto the host. A missing target is created where that can be done
 * without touching --root: a top-level name (the scratch root's tmpfs), under
 * /tmp or /run, or anywhere with --writable (the overlay's upper layer);
 * elsewhere it is an error. */
static void prepare_bind_points(void) {
  if (R.nbinds == 0) return;
  int rootfd = open(newroot, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (rootfd < 0) die("open(new root)");
  for (int i = 0; i < R.nbinds; i++) {
    const struct bind *b = &R.binds[i];
    const char *rel = b->img;
    while (*rel == '/') rel++;
    int t = open_in_root(rootfd, rel, O_PATH);
    if (t < 0 && errno == ENOENT) {
      /* create each missing component, resolving the prefix in root every time */
      char pre[4200];
      snprintf(pre, sizeof pre, "%s", rel);
      size_t n = strlen(pre);
      for (size_t k = 0; k <= n; k++) {
        if (pre[k] != '/' && pre[k] != 0) continue;
        char save = pre[k];
        pre[k] = 0;
        int last = save == 0;
        int e = open_in_root(rootfd, pre, O_PATH);
        if (e >= 0) close(e);
        else if (errno == ENOENT) {
          char *slash = strrchr(pre, '/');
          const char *name = slash ? slash + 1 : pre;
          int pfd = slash ? (*slash = 0, open_in_root(rootfd, pre, O_PATH | O_DIRECTORY)) : dup(rootfd);
          if (slash) *slash = '/';
          if (pfd < 0) die(b->img);
          int r;
          if (!last || b->isdir) r = mkdirat(pfd, name, 0755);
          else {
            r = openat(pfd, name, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
            if (r >= 0) r = close(r);
          }
          if (r != 0 && errno == EROFS)
            dief("--bind target %s does not exist in the image and cannot be made there (read-only; use --writable)", b->img);
          if (r != 0) die(b->img);
          close(pfd);
        } else die(b->img);
        pre[k] = save;
      }
      t = open_in_root(rootfd, rel, O_PATH);
    }
    if (t < 0) die(b->img);
    char fdp[64], step[4300];
    snprintf(fdp, sizeof fdp, "/proc/self/fd/%d", t);
    if (mount(b->host, fdp, NULL, MS_BIND | MS_REC, NULL) != 0) {
      snprintf(step, sizeof step, "mount(bind %s -> %s)", b->host, b->img);
      die(step);
    }
    close(t);
    if (b->ro) {
      t = open_in_root(rootfd, rel, O_PATH); /* now the top of the new mount */
      if (t < 0) die(b->img);
      snprintf(fdp, sizeof fdp, "/proc/self/fd/%d", t);
      unsigned long f = locked_flags(fdp);
      if (mount(NULL, fdp, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | f, NULL) != 0) {
        snprintf(step, sizeof step, "mount(remount read-only %s)", b->img);
        die(step);
      }
      close(t);
    }
  }
  close(rootfd);
}

/* Signals sent to the tracer (by mkimg run, which forwards its own) go to
 * init, and init's to the worker: the program sees what its caller was sent. */
static const int FORWARDED[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};
static void on_forward(int sig) {
  int e = errno;
  if (fwd_to > 0) kill(fwd_to, sig);
  errno = e;
}
static void forward_signals(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_forward; /* no SA_RESTART: waitpid returns EINTR */
  for (size_t i = 0; i < sizeof FORWARDED / sizeof FORWARDED[0]; i++) sigaction(FORWARDED[i], &sa, NULL);
}
static void default_signals(void) {
  for (size_t i = 0; i < sizeof FORWARDED / sizeof FORWARDED[0]; i++) signal(FORWARDED[i], SIG_DFL);
}

/* --own-terminal (mkimg-run execs the tracer, so it sits in the shell's
 * foreground process group): init and the worker leave that group, so a
 * terminal's ^C reaches the tracer only, which forwards it once. When stdin
 * is that terminal, the worker's group becomes its foreground instead (the
 * program reads it and gets ^C itself, as in a shell) and the tracer takes
 * the foreground back at the end. */
static void init_terminal(void) {
  if (R.own_terminal) setpgid(0, 0);
}
static void worker_terminal(void) {
  if (!R.own_terminal) return;
  setpgid(0, 0);
  if (R.tty_fg) {
    sigset_t m, old;
    sigemptyset(&m);
    sigaddset(&m, SIGTTOU);
    sigprocmask(SIG_BLOCK, &m, &old);
    tcsetpgrp(0, getpgrp());
    sigprocmask(SIG_SETMASK, &old, NULL);
  }
}
static void tracer_terminal_back(void) {
  if (!R.tty_fg) return;
  signal(SIGTTOU, SIG_IGN);
  tcsetpgrp(0, getpgrp());
}

static const char *const DEVS[] = {"null", "zero", "full", "random", "urandom", "tty"};

/* --layer/--hide. A tmpfs at layers_dir holds: each layer attached
 * idmapped at lN (as the plain binds are: the host root's files are the
 * program's root's), or used as it is when that cannot be done; a "hide"
 * layer of whiteouts (character devices 0/0) for the --hide paths, its
 * directories made with the owner and mode of the same directory in the
 * layers below; and the read-only overlay of them all at "merged", whose
 * top level setup_mounts mirrors. Nothing is written to a layer. */
static const char *layer_paths[MAX_LAYERS + 1];
static int nlayer_paths;

/* Owner and mode of an image path in the topmost layer that has it. */
static int stat_in_layers(const char *img, struct stat *st) {
  char a[8400];
  for (int l = 0; l < nlayer_paths; l++) {
    if ((size_t)snprintf(a, sizeof a, "%s%s", layer_paths[l], img) >= sizeof a) continue;
    if (lstat(a, st) == 0) return 0;
  }
  return -1;
}

static void copy_dir_attrs(const char *dst, const char *img) {
  struct stat st;
  if (stat_in_layers(*img ? img : "/", &st) != 0 || !S_ISDIR(st.st_mode)) return;
  if (lchown(dst, st.st_uid, st.st_gid) != 0) { /* ids this namespace cannot name: left as made */ }
  if (chmod(dst, st.st_mode & 07777) != 0) die(dst);
}

/* Access and modification times of an image path's directory in the layers
 * below, set on its copy in the hide layer once nothing more is made in it
 * (the overlay shows the topmost layer's times: the full root's, then). */
static void copy_dir_times(const char *dst, const char *img) {
  struct stat st;
  if (stat_in_layers(*img ? img : "/", &st) != 0 || !S_ISDIR(st.st_mode)) return;
  struct timespec ts[2] = {st.st_atim, st.st_mtim};
  if (utimensat(AT_FDCWD, dst, ts, AT_SYMLINK_NOFOLLOW) != 0) die(dst);
}

static void make_whiteouts(const char *hide_root) {
  int fd = open(O.hide, O_RDONLY | O_CLOEXEC);
  if (fd < 0) die(O.hide);
  struct stat st;
  if (fstat(fd, &st) != 0) die(O.hide);
  size_t n = (size_t)st.st_size;
  char *buf = malloc(n + 1);
  if (!buf) die("malloc");
  size_t got = 0;
  while (got < n) {
    ssize_t r = read(fd, buf + got, n - got);
    if (r <= 0) die(O.hide);
    got += (size_t)r;
  }
  close(fd);
  buf[n] = 0;
  copy_dir_attrs(hide_root, "");
  char a[8400];
  /* The directories made here (image paths), for their times at the end. */
  size_t nmade = 0, cap = 64;
  char **made = malloc(cap * sizeof *made);
  if (!made) die("malloc");
  for (size_t i = 0; i < n;) {
    char *img = buf + i;
    size_t len = strlen(img);
    i += len + 1;
    if (len == 0) continue;
    if (img[0] != '/' || strstr(img, "//") || strstr(img, "/./") || strstr(img, "/../") ||
        (len >= 2 && !strcmp(img + len - 2, "/.")) || (len >= 3 && !strcmp(img + len - 3, "/..")) ||
        img[len - 1] == '/')
      dief("--hide: '%s' is not a normalized absolute image path", img);
    /* Each missing parent directory, from the top, as in the layers. */
    for (char *sl = strchr(img + 1, '/'); sl; sl = strchr(sl + 1, '/')) {
      *sl = 0;
      if ((size_t)snprintf(a, sizeof a, "%s%s", hide_root, img) >= sizeof a) dief("--hide: path too long: %s", img);
      if (mkdir(a, 0700) == 0) {
        copy_dir_attrs(a, img);
        if (nmade == cap && !(made = realloc(made, (cap *= 2) * sizeof *made))) die("realloc");
        if (!(made[nmade++] = strdup(img))) die("strdup");
      } else if (errno != EEXIST) die(a);
      *sl = '/';
    }
    if ((size_t)snprintf(a, sizeof a, "%s%s", hide_root, img) >= sizeof a) dief("--hide: path too long: %s", img);
    if (mknod(a, S_IFCHR | 0, makedev(0, 0)) != 0 && errno != EEXIST) die(a);
  }
  for (size_t m = 0; m < nmade; m++) {
    if ((size_t)snprintf(a, sizeof a, "%s%s", hide_root, made[m]) >= sizeof a) dief("--hide: path too long: %s", made[m]);
    copy_dir_times(a, made[m]);
    free(made[m]);
  }
  free(made);
  copy_dir_times(hide_root, "");
  free(buf);
}

static const char *setup_layered_root(void) {
  static char merged[4200], opts[4096];
  char a[4200];
  if (mount("tmpfs", layers_dir, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0700") != 0) die("mount(tmpfs for the overlay)");
  const char *all[MAX_LAYERS + 1];
  int nall = 0;
  all[nall++] = O.root;
  for (int l = 0; l < O.nlayers; l++) all[nall++] = O.layer[l];
  static char attached[MAX_LAYERS + 1][4200];
  for (int l = 0; l < nall; l++) {
    layer_paths[l] = all[l];
    if (idmap_fd < 0) continue;
    snprintf(attached[l], sizeof attached[l], "%s/l%d", layers_dir, l);
    if (mkdir(attached[l], 0755) != 0) die(attached[l]);
    if (bind_ro_idmapped(all[l], attached[l]) == 0) layer_paths[l] = attached[l];
  }
  nlayer_paths = nall;
  size_t off = (size_t)snprintf(opts, sizeof opts, "lowerdir=");
  if (O.hide) {
    path_in(a, sizeof a, layers_dir, "hide");
    if (mkdir(a, 0755) != 0) die(a);
    make_whiteouts(a);
    off += (size_t)snprintf(opts + off, sizeof opts - off, "%s:", a);
  }
  for (int l = 0; l < nall && off < sizeof opts; l++) {
    if (strpbrk(layer_paths[l], ",:\\"))
      dief("the root layer %s holds ',', ':' or '\\', which overlayfs options cannot carry", all[l]);
    off += (size_t)snprintf(opts + off, sizeof opts - off, "%s%s", layer_paths[l], l + 1 < nall ? ":" : "");
  }
  if (off >= sizeof opts) dief("the root's layers' paths are too long for overlayfs options (%s...)", opts);
  path_in(merged, sizeof merged, layers_dir, "merged");
  if (mkdir(merged, 0755) != 0) die(merged);
  if (mount("overlay", merged, "overlay", MS_RDONLY | MS_NOSUID | MS_NODEV, opts) != 0) die("mount(overlay of the root's layers)");
  return merged;
}

static void setup_mounts(void) {
  char a[4200], b[4200];
  if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) die("mount(make / rprivate)");
  mount_tmpfs(scratch, "mode=0755");
  snprintf(newroot, sizeof newroot, "%s", scratch);
  if (R.writable) setup_writable_root(); /* mkimg run --writable */
  else {
  /* The scratch root mirrors DIR's top level (or the overlay's, with
   * --layer/--hide): directories and files are bind-mounted read-only,
   * symlinks recreated with the same target. */
  const char *src = *layers_dir ? setup_layered_root() : O.root;
  DIR *d = opendir(src);
  if (!d) die(src);
  struct dirent *de;
  while ((de = readdir(d)) != NULL) {
    const char *n = de->d_name;
    if (!strcmp(n, ".") || !strcmp(n, "..")) continue;
    if (!strcmp(n, "dev") || !strcmp(n, "proc") || !strcmp(n, "tmp") || !strcmp(n, "run")) continue;
    path_in(a, sizeof a, src, n);
    path_in(b, sizeof b, scratch, n);
    struct stat st;
    if (lstat(a, &st) != 0) die(a);
    if (S_ISLNK(st.st_mode)) {
      char t[4097];
      ssize_t l = readlink(a, t, sizeof t - 1);
      if (l < 0) die(a);
      t[l] = 0;
      if (symlink(t, b) != 0) die(b);
    } else if (S_ISDIR(st.st_mode)) {
      if (mkdir(b, st.st_mode & 07777) != 0) die(b);
      if (*layers_dir || bind_ro_idmapped(a, b) != 0) bind_ro(a, b); /* an overlay's layers are idmapped already */
    } else if (S_ISREG(st.st_mode)) {
      int fd = open(b, O_CREAT | O_WRONLY | O_CLOEXEC, st.st_mode & 07777);
      if (fd < 0) die(b);
      close(fd);
      if (*layers_dir || bind_ro_idmapped(a, b) != 0) bind_ro(a, b);
    }
  }
  closedir(d);
  /* The binds hold the overlay: its mount point and parts leave the tree. */
  if (*layers_dir && umount2(layers_dir, MNT_DETACH) != 0) die("umount2(overlay parts)");
  }

  path_in(a, sizeof a, newroot, "tmp");
  if (mkdir(a, 01777) != 0 && !(R.writable && errno == EEXIST)) die(a);
  mount_tmpfs(a, "mode=1777");
  path_in(a, sizeof a, newroot, "run");
  if (mkdir(a, 0755) != 0 && !(R.writable && errno == EEXIST)) die(a);
  mount_tmpfs(a, "mode=0755");
  path_in(a, sizeof a, newroot, "proc");
  if (mkdir(a, 0555) != 0 && !(R.writable && errno == EEXIST)) die(a);
  if (mount("proc", a, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) != 0) die("mount(proc)");
  harden_proc(a);

  path_in(a, sizeof a, newroot, "dev");
  if (mkdir(a, 0755) != 0 && !(R.writable && errno == EEXIST)) die(a);
  if (mount("tmpfs", a, "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=0755") != 0) die("mount(tmpfs /dev)");
  for (size_t i = 0; i < sizeof DEVS / sizeof DEVS[0]; i++) {
    char host[64];
    snprintf(host, sizeof host, "/dev/%s", DEVS[i]);
    path_in(b, sizeof b, a, DEVS[i]);
    int fd = open(b, O_CREAT | O_WRONLY | O_CLOEXEC, 0666);
    if (fd < 0) die(b);
    close(fd);
    if (mount(host, b, NULL, MS_BIND, NULL) != 0) {
      /* /dev/tty may be missing on a host without one: leave the file empty. */
      if (strcmp(DEVS[i], "tty") == 0) continue;
      char step[4300];
      snprintf(step, sizeof step, "mount(bind %s)", host);
      die(step);
    }
  }
  static const char *const LINKS[][2] = {
      {"/proc/self/fd", "fd"}, {"/proc/self/fd/0", "stdin"}, {"/proc/self/fd/1", "stdout"}, {"/proc/self/fd/2", "stderr"}};
  for (size_t i = 0; i < 4; i++) {
    path_in(b, sizeof b, a, LINKS[i][1]);
    if (symlink(LINKS[i][0], b) != 0) die(b);
  }
  path_in(b, sizeof b, a, "shm");
  if (mkdir(b, 01777) != 0) die(b);
  mount_tmpfs(b, "mode=1777");
  path_in(b, sizeof b, a, "pts");
  if (mkdir(b, 0755) != 0) die(b);
  if (mount(NULL, a, NULL, MS_REMOUNT | MS_NOSUID | MS_NOEXEC | MS_RDONLY, "mode=0755") != 0) die("mount(remount /dev read-only)");

  prepare_bind_points(); /* mkimg run --bind */
  if (!R.writable && mount(NULL, scratch, NULL, MS_REMOUNT | MS_NOSUID | MS_NODEV | MS_RDONLY, "mode=0755") != 0)
    die("mount(remount scratch root read-only)");
  if (chdir(newroot) != 0) die("chdir(scratch root)");
  if (syscall(SYS_pivot_root, ".", ".") != 0) die("pivot_root");
  if (umount2(".", MNT_DETACH) != 0) die("umount2(old root)");
  if (chdir("/") != 0) die("chdir(/)");
}

/* ------------------------------------------------------------------ */
/* seccomp                                                             */
/* ------------------------------------------------------------------ */

#ifndef SYS_open_tree
#define SYS_open_tree 428
#endif
#ifndef SYS_move_mount
#define SYS_move_mount 429
#endif
#ifndef SYS_fsopen
#define SYS_fsopen 430
#endif
#ifndef SYS_fsconfig
#define SYS_fsconfig 431
#endif
#ifndef SYS_fsmount
#define SYS_fsmount 432
#endif
#ifndef SYS_fspick
#define SYS_fspick 433
#endif
#ifndef SYS_pidfd_getfd
#define SYS_pidfd_getfd 438
#endif
#ifndef SYS_clone3
#define SYS_clone3 435
#endif
#ifndef SYS_mount_setattr
#define SYS_mount_setattr 442
#endif
#ifndef SYS_quotactl_fd
#define SYS_quotactl_fd 443
#endif
#ifndef SYS_io_uring_setup
#define SYS_io_uring_setup 425
#define SYS_io_uring_enter 426
#define SYS_io_uring_register 427
#endif
#ifndef CLONE_NEWCGROUP
#define CLONE_NEWCGROUP 0x02000000
#endif

/*
 * Refused in every run, traced or not (EPERM, as if the program lacked the
 * privilege): what changes mounts, namespaces, the kernel, the clock, keys,
 * or reaches another process's memory. The user namespace already keeps these
 * from touching the host; the filter is the second wall, and the one that
 * holds for a caller that is not root (whose namespace owns the mounts).
 */
static const long DENIED[] = {
    SYS_mount, SYS_umount2, SYS_pivot_root, SYS_chroot, SYS_open_tree, SYS_move_mount, SYS_fsopen, SYS_fsconfig,
    SYS_fsmount, SYS_fspick, SYS_mount_setattr, SYS_unshare, SYS_setns, SYS_init_module, SYS_finit_module,
    SYS_delete_module, SYS_kexec_load, SYS_kexec_file_load, SYS_bpf, SYS_perf_event_open, SYS_ptrace,
    SYS_process_vm_writev, SYS_pidfd_getfd, SYS_keyctl, SYS_add_key, SYS_request_key, SYS_swapon, SYS_swapoff,
    SYS_reboot, SYS_settimeofday, SYS_clock_settime, SYS_clock_adjtime, SYS_adjtimex, SYS_open_by_handle_at,
    SYS_userfaultfd, SYS_iopl, SYS_ioperm, SYS_acct, SYS_quotactl, SYS_quotactl_fd, SYS_syslog, SYS_lookup_dcookie,
    SYS_uselib, SYS__sysctl, SYS_vhangup, SYS_nfsservctl, SYS_create_module, SYS_get_kernel_syms, SYS_query_module,
};
/* io_uring performs opens and other path calls without a syscall that
 * seccomp or ptrace sees; clone3 passes its flags in memory a filter cannot
 * read. ENOSYS: programs fall back to the plain calls (glibc does for clone3). */
static const long UNAVAILABLE[] = {SYS_io_uring_setup, SYS_io_uring_enter, SYS_io_uring_register, SYS_clone3};
#define NS_FLAGS (CLONE_NEWNS | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWCGROUP)

/* The worker's seccomp filter: the refusals always, then, when tracing, a
 * SECCOMP_RET_TRACE stop at the entry of each path syscall of the table. */
static void install_filter(int trace) {
  struct sock_filter f[512];
  int n = 0;
#define ST(code, k) (f[n++] = (struct sock_filter)BPF_STMT(code, k))
#define JP(code, k, jt, jf) (f[n++] = (struct sock_filter)BPF_JUMP(code, k, jt, jf))
#define LOAD_NR() ST(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr))
#define RET_ERRNO(e) ST(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ((e) & SECCOMP_RET_DATA))
  ST(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch));
  JP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0);
  RET_ERRNO(ENOSYS);
  LOAD_NR();
  /* x32 syscalls (bit 30) are refused: the tables are for the x86_64 ABI. */
  JP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000, 0, 1);
  RET_ERRNO(ENOSYS);
  for (size_t i = 0; i < sizeof DENIED / sizeof DENIED[0]; i++) {
    JP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)DENIED[i], 0, 1);
    RET_ERRNO(EPERM);
  }
  for (size_t i = 0; i < sizeof UNAVAILABLE / sizeof UNAVAILABLE[0]; i++) {
    JP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)UNAVAILABLE[i], 0, 1);
    RET_ERRNO(ENOSYS);
  }
  /* clone() with a namespace flag (a fork or a thread has none). */
  JP(BPF_JMP | BPF_JEQ | BPF_K, SYS_clone, 0, 4);
  ST(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[0]));
  JP(BPF_JMP | BPF_JSET | BPF_K, NS_FLAGS, 0, 1);
  RET_ERRNO(EPERM);
  LOAD_NR();
  /* mknod of a character or block device; fifos and sockets are fine. */
  for (int at = 0; at < 2; at++) {
    JP(BPF_JMP | BPF_JEQ | BPF_K, at ? SYS_mknodat : SYS_mknod, 0, 6);
    ST(BPF_LD | BPF_W | BPF_ABS, at ? offsetof(struct seccomp_data, args[2]) : offsetof(struct seccomp_data, args[1]));
    ST(BPF_ALU | BPF_AND | BPF_K, S_IFMT);
    JP(BPF_JMP | BPF_JEQ | BPF_K, S_IFCHR, 1, 0);
    JP(BPF_JMP | BPF_JEQ | BPF_K, S_IFBLK, 0, 1);
    RET_ERRNO(EPERM);
    LOAD_NR();
  }
  if (trace) {
    /* fstat() is newfstatat(fd, "", AT_EMPTY_PATH) in glibc: the fd's file was
     * already recorded when it was opened, so these do not stop. */
    JP(BPF_JMP | BPF_JEQ | BPF_K, SYS_newfstatat, 0, 4);
    ST(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[3]));
    JP(BPF_JMP | BPF_JSET | BPF_K, AT_EMPTY_PATH, 0, 1);
    ST(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    LOAD_NR();
    JP(BPF_JMP | BPF_JEQ | BPF_K, SYS_statx, 0, 4);
    ST(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[2]));
    JP(BPF_JMP | BPF_JSET | BPF_K, AT_EMPTY_PATH, 0, 1);
    ST(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    LOAD_NR();
    for (int i = 0; i < NSC; i++) {
      JP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)SC[i].nr, 0, 1);
      ST(BPF_RET | BPF_K, SECCOMP_RET_TRACE | (unsigned)i);
    }
  }
  ST(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
#undef ST
#undef JP
#undef LOAD_NR
#undef RET_ERRNO
  struct sock_fprog p = {.len = (unsigned short)n, .filter = f};
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) die("prctl(PR_SET_NO_NEW_PRIVS)");
  if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &p) != 0) die("seccomp(SECCOMP_SET_MODE_FILTER)");
}

/* ------------------------------------------------------------------ */
/* init and worker                                                     */
/* ------------------------------------------------------------------ */

struct child_args {
  int sync_r;
  int userns;
  int in_fd, out_fd, err_fd;
};

static void exec_program(void) {
  const char *p = O.argv[0];
  if (strchr(p, '/')) {
    execve(p, O.argv, O.env);
  } else {
    const char *path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    for (int i = 0; i < O.nenv; i++)
      if (!strncmp(O.env[i], "PATH=", 5)) path = O.env[i] + 5;
    char buf[8192];
    const char *s = path;
    while (*s) {
      const char *e = strchr(s, ':');
      size_t l = e ? (size_t)(e - s) : strlen(s);
      if (l + strlen(p) + 2 < sizeof buf) {
        memcpy(buf, s, l);
        buf[l] = '/';
        strcpy(buf + l + 1, p);
        execve(buf, O.argv, O.env);
        if (errno != ENOENT && errno != ENOTDIR) break;
      }
      if (!e) break;
      s = e + 1;
    }
  }
  int e = errno;
  dprintf(err_fd, "%s: execve(%s): %s\n", prog, p, strerror(e));
  _exit(e == ENOENT || e == ENOTDIR ? 127 : 126);
}

/*
 * The new network namespace has only `lo`, and it starts down. Bring it up so
 * a check can talk to a server it started itself (nginx, then a request to
 * 127.0.0.1): still no route out of the sandbox.
 */
static void loopback_up(void) {
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) die("socket(AF_INET) for lo");
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
  if (ioctl(s, SIOCGIFFLAGS, &ifr) != 0) die("ioctl(SIOCGIFFLAGS, lo)");
  ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
  if (ioctl(s, SIOCSIFFLAGS, &ifr) != 0) die("ioctl(SIOCSIFFLAGS, lo up)");
  close(s);
}

static void write_proc(pid_t pid, const char *file, const char *text) {
  char p[64];
  snprintf(p, sizeof p, "/proc/%d/%s", pid, file);
  write_file(p, text);
}

/*
 * The program's ids. Caller root: ids 0..2^31-2 inside are HOST_ID_BASE.. on
 * the host, so the program's root is an unprivileged host id and files of
 * the host's root are "other" to it. Caller not root: init's namespace has
 * one id (the caller), and the program's namespace maps that id to itself.
 */
static void map_worker_ids(pid_t w, int nested) {
  char m[96];
  if (!nested) {
    snprintf(m, sizeof m, "0 %lu %lu\n", HOST_ID_BASE, HOST_ID_COUNT);
    write_proc(w, "uid_map", m);
    write_proc(w, "gid_map", m);
    return;
  }
  long uid = O.uid >= 0 ? O.uid : 0;
  long gid = O.gid >= 0 ? O.gid : uid;
  write_proc(w, "setgroups", "deny");
  snprintf(m, sizeof m, "%ld %ld 1\n", uid, uid);
  write_proc(w, "uid_map", m);
  snprintf(m, sizeof m, "%ld %ld 1\n", gid, gid);
  write_proc(w, "gid_map", m);
}

/* Whether this process sees every uid (the initial user namespace): root of
 * a container's user namespace maps itself like an unprivileged caller. */
static int full_id_map(void) {
  FILE *f = fopen("/proc/self/uid_map", "re");
  unsigned long a = 1, b = 1, c = 0;
  int n = f ? fscanf(f, "%lu %lu %lu", &a, &b, &c) : 0;
  if (f) fclose(f);
  return n == 3 && a == 0 && b == 0 && c == 4294967295UL;
}

/* For idmapped binds: a child unshares a user namespace and waits; the tracer
 * maps it as the worker's, keeps an fd to it, ends the child. -1 on failure. */
static int idmap_userns(void) {
  int up[2], down[2];
  if (pipe2(up, O_CLOEXEC) != 0) return -1;
  if (pipe2(down, O_CLOEXEC) != 0) {
    close(up[0]);
    close(up[1]);
    return -1;
  }
  pid_t c = fork();
  if (c < 0) die("fork(idmap helper)");
  if (c == 0) {
    close(up[0]);
    close(down[1]);
    char x = unshare(CLONE_NEWUSER) == 0 ? 'u' : 'e';
    if (write(up[1], &x, 1) != 1) _exit(1);
    if (read(down[0], &x, 1) < 0) _exit(1); /* until the tracer holds the fd */
    _exit(0);
  }
  close(up[1]);
  close(down[0]);
  char x = 0, p[64];
  int fd = -1;
  if (read(up[0], &x, 1) == 1 && x == 'u') {
    map_worker_ids(c, 0);
    snprintf(p, sizeof p, "/proc/%d/ns/user", c);
    fd = open(p, O_RDONLY | O_CLOEXEC);
  }
  close(up[0]);
  close(down[1]);
  while (waitpid(c, NULL, 0) < 0 && errno == EINTR) {
  }
  return fd;
}

static int init_main(void *arg) {
  struct child_args *ca = arg;
  if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0) die("prctl(PR_SET_PDEATHSIG)");
  init_terminal(); /* mkimg-run */
  char c;
  if (read(ca->sync_r, &c, 1) != 1) _exit(EXIT_TRACER); /* the tracer reported why */
  close(ca->sync_r);

  setup_mounts();
  if (sethostname(O.hostname, strlen(O.hostname)) != 0) die("sethostname");
  if (!R.net_host) loopback_up();

  if (O.trace) {
    if (ptrace(PTRACE_TRACEME, 0, 0, 0) != 0) die("ptrace(PTRACE_TRACEME)");
    raise(SIGSTOP);
  }
  /* The worker enters a user namespace of its own, whose ids init maps
   * (init, in the parent namespace, may write the maps; the worker may not). */
  int to_init[2], to_worker[2];
  if (pipe2(to_init, O_CLOEXEC) != 0 || pipe2(to_worker, O_CLOEXEC) != 0) die("pipe2(worker)");
  pid_t w = fork();
  if (w < 0) die("fork(worker)");
  if (w == 0) {
    close(to_init[0]);
    close(to_worker[1]);
    default_signals();
    worker_terminal(); /* mkimg-run */
    if (O.cwd && chdir(O.cwd) != 0) dief("chdir(--cwd %s) inside the root failed", O.cwd);
    if (unshare(CLONE_NEWUSER) != 0) die("unshare(CLONE_NEWUSER) for the program");
    if (write(to_init[1], "u", 1) != 1) die("write(sync)");
    if (read(to_worker[0], &c, 1) != 1) _exit(EXIT_TRACER); /* init reported why */
    close(to_init[1]);
    close(to_worker[0]);
    long uid = O.uid >= 0 ? O.uid : 0;
    long gid = O.gid >= 0 ? O.gid : (ca->userns ? uid : 0);
    /* Drop the host's supplementary groups (a caller that is not root cannot,
     * and has no others than its own). */
    if (setgroups(0, NULL) != 0 && !ca->userns) die("setgroups");
    if (setresgid(gid, gid, gid) != 0) die("setresgid(--gid)");
    if (setresuid(uid, uid, uid) != 0) die("setresuid(--uid)");
    if (dup2(ca->in_fd, 0) < 0) die("dup2(stdin)");
    if (ca->out_fd >= 0 && dup2(ca->out_fd, 1) < 0) die("dup2(stdout)");
    if (ca->err_fd >= 0 && dup2(ca->err_fd, 2) < 0) die("dup2(stderr)");
    install_filter(O.trace);
    exec_program();
  }
  close(to_init[1]);
  close(to_worker[0]);
  if (read(to_init[0], &c, 1) == 1) {
    map_worker_ids(w, ca->userns);
    if (write(to_worker[1], "m", 1) != 1) die("write(sync worker)");
  }
  close(to_init[0]);
  close(to_worker[1]);
  /* pid 1: reap everything, report the worker's status; forward signals
   * sent to it (by the tracer) to the worker (from here on: a signal must not
   * interrupt the id-map handshake above). */
  fwd_to = w;
  forward_signals();
  for (;;) {
    int st;
    pid_t r = waitpid(-1, &st, 0);
    if (r < 0) {
      if (errno == EINTR) continue;
      _exit(EXIT_TRACER);
    }
    if (r == w) {
      if (WIFEXITED(st)) _exit(WEXITSTATUS(st));
      if (WIFSIGNALED(st)) _exit(128 + WTERMSIG(st));
    }
  }
}

/* ------------------------------------------------------------------ */
/* Tracing                                                             */
/* ------------------------------------------------------------------ */

static FILE *ev;
static uint8_t *known; /* bitmap of pids already past their first stop */
static long pid_max = 4194304;

static int is_known(pid_t p) { return p < pid_max && (known[p >> 3] >> (p & 7)) & 1; }
static void set_known(pid_t p, int v) {
  if (p >= pid_max) return;
  if (v) known[p >> 3] |= (uint8_t)(1 << (p & 7));
  else known[p >> 3] &= (uint8_t) ~(1 << (p & 7));
}

/* Read a NUL-terminated string from the tracee. Returns length or -1. */
static ssize_t read_str(pid_t pid, unsigned long addr, char *buf, size_t max) {
  size_t got = 0;
  while (got < max - 1) {
    size_t chunk = 4096 - ((addr + got) & 4095);
    if (chunk > max - 1 - got) chunk = max - 1 - got;
    struct iovec l = {buf + got, chunk}, r = {(void *)(addr + got), chunk};
    ssize_t n = process_vm_readv(pid, &l, 1, &r, 1, 0);
    if (n <= 0) {
      if (got == 0) return -1;
      break;
    }
    char *z = memchr(buf + got, 0, (size_t)n);
    if (z) return z - buf;
    got += (size_t)n;
  }
  buf[got] = 0;
  return (ssize_t)got;
}

static int read_mem(pid_t pid, unsigned long addr, void *buf, size_t n) {
  struct iovec l = {buf, n}, r = {(void *)addr, n};
  return process_vm_readv(pid, &l, 1, &r, 1, 0) == (ssize_t)n ? 0 : -1;
}

/* Path of fd (or cwd when fd == AT_FDCWD) inside the sandbox. */
static int fd_path(pid_t pid, long fd, char *out, size_t n) {
  char p[64];
  if ((int)fd == AT_FDCWD) snprintf(p, sizeof p, "/proc/%d/cwd", pid);
  else snprintf(p, sizeof p, "/proc/%d/fd/%d", pid, (int)fd);
  ssize_t l = readlink(p, out, n - 1);
  if (l < 0) return -1;
  out[l] = 0;
  return 0;
}

static void json_str(const char *s) {
  if (!s) {
    fputs("null", ev);
    return;
  }
  putc('"', ev);
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    unsigned char c = *p;
    if (c == '"' || c == '\\') {
      putc('\\', ev);
      putc(c, ev);
    } else if (c < 0x20) {
      fprintf(ev, "\\u%04x", c);
    } else {
      putc(c, ev);
    }
  }
  putc('"', ev);
}

static void emit(pid_t pid, const char *sc, const char *path, const char *dir, const char *abs, long fd, unsigned long long flags) {
  fprintf(ev, "{\"pid\":%d,\"sc\":\"%s\",\"path\":", pid, sc);
  json_str(path);
  fputs(",\"dirfd\":", ev);
  json_str(dir);
  fputs(",\"abs\":", ev);
  json_str(abs);
  if (fd != -999) fprintf(ev, ",\"fd\":%ld", fd);
  fprintf(ev, ",\"flags\":%llu}\n", flags);
}

static unsigned long long argv_of(const struct user_regs_struct *r, int i) {
  switch (i) {
  case 0: return r->rdi;
  case 1: return r->rsi;
  case 2: return r->rdx;
  case 3: return r->r10;
  case 4: return r->r8;
  default: return r->r9;
  }
}

static char pathbuf[4097], dirbuf[4097], absbuf[8300];

static void one_path(pid_t pid, const struct scdef *d, const struct user_regs_struct *r, int dfarg, int parg, unsigned long long flags) {
  long dirfd = dfarg >= 0 ? (long)(int)argv_of(r, dfarg) : AT_FDCWD;
  unsigned long addr = argv_of(r, parg);
  const char *path = NULL;
  if (addr) {
    if (read_str(pid, addr, pathbuf, sizeof pathbuf) < 0) return; /* EFAULT for the process too */
    path = pathbuf;
  }
  const char *dir = NULL, *abs = NULL;
  int empty = !path || !path[0];
  if (path && path[0] == '/') {
    abs = path;
  } else if (empty && !(flags & AT_EMPTY_PATH) && path) {
    abs = NULL; /* ENOENT for the process: nothing looked up */
  } else {
    if (fd_path(pid, dirfd, dirbuf, sizeof dirbuf) == 0) {
      dir = dirbuf;
      if (dirbuf[0] == '/') {
        if (empty) abs = dirbuf;
        else {
          snprintf(absbuf, sizeof absbuf, "%s/%s", strcmp(dirbuf, "/") ? dirbuf : "", path);
          abs = absbuf;
        }
      }
    }
  }
  emit(pid, d->name, path, dir, abs, dfarg >= 0 ? dirfd : -999, flags);
}

static void on_syscall(pid_t pid, unsigned idx) {
  if (idx >= (unsigned)NSC) return;
  const struct scdef *d = &SC[idx];
  struct user_regs_struct r;
  if (ptrace(PTRACE_GETREGS, pid, 0, &r) != 0) return;
  unsigned long long flags = 0;
  if (d->fl >= 0) flags = argv_of(&r, d->fl);
  if (d->special == SP_CREAT) flags = O_CREAT | O_WRONLY | O_TRUNC;
  if (d->special == SP_OPENAT2) {
    uint64_t f = 0;
    if (read_mem(pid, argv_of(&r, 2), &f, sizeof f) == 0) flags = f;
  }
  if (d->special == SP_FD) {
    long fd = (long)(int)argv_of(&r, 0);
    const char *dir = NULL;
    if (fd_path(pid, fd, dirbuf, sizeof dirbuf) == 0) dir = dirbuf;
    emit(pid, d->name, NULL, dir, dir && dir[0] == '/' ? dir : NULL, fd, 0);
    return;
  }
  if (d->special == SP_SOCK) {
    struct sockaddr_un sa;
    unsigned long len = argv_of(&r, 2);
    if (len <= offsetof(struct sockaddr_un, sun_path) + 1) return;
    if (len > sizeof sa) len = sizeof sa;
    memset(&sa, 0, sizeof sa);
    if (read_mem(pid, argv_of(&r, 1), &sa, len) != 0) return;
    if (sa.sun_family != AF_UNIX || sa.sun_path[0] == 0) return; /* not a path, or abstract */
    char p[sizeof sa.sun_path + 1];
    memcpy(p, sa.sun_path, sizeof sa.sun_path);
    p[sizeof sa.sun_path] = 0;
    const char *dir = NULL, *abs = NULL;
    if (p[0] == '/') abs = p;
    else if (fd_path(pid, AT_FDCWD, dirbuf, sizeof dirbuf) == 0) {
      dir = dirbuf;
      snprintf(absbuf, sizeof absbuf, "%s/%s", strcmp(dirbuf, "/") ? dirbuf : "", p);
      abs = absbuf;
    }
    emit(pid, d->name, p, dir, abs, -999, 0);
    return;
  }
  one_path(pid, d, &r, d->d1, d->p1, flags);
  if (d->p2 >= 0) one_path(pid, d, &r, d->d2, d->p2, flags);
}

static volatile sig_atomic_t timed_out = 0;
static void on_alarm(int s) {
  (void)s;
  timed_out = 1;
}

/* ------------------------------------------------------------------ */
/* main                                                                */
/* ------------------------------------------------------------------ */

static long num(const char *s, const char *flag) {
  char *e;
  errno = 0;
  long v = strtol(s, &e, 10);
  if (errno || *e || v < 0) {
    fprintf(stderr, "%s: %s wants a non-negative integer, got '%s'\n", prog, flag, s);
    exit(EXIT_TRACER);
  }
  return v;
}

int main(int argc, char **argv) {
  O.hostname = "mkimg";
  O.timeout = 0;
  O.uid = O.gid = -1;
  O.trace = 1;
  O.env = calloc((size_t)argc + 1, sizeof(char *));
  if (!O.env) die("calloc");
  int i;
  for (i = 1; i < argc; i++) {
    const char *a = argv[i];
#define NEXT() (i + 1 < argc ? argv[++i] : (usage(), (char *)NULL))
    if (!strcmp(a, "--")) {
      i++;
      break;
    } else if (!strcmp(a, "--root")) O.root = NEXT();
    else if (!strcmp(a, "--events")) O.events = NEXT();
    else if (!strcmp(a, "--timeout")) O.timeout = num(NEXT(), a);
    else if (!strcmp(a, "--hostname")) O.hostname = NEXT();
    else if (!strcmp(a, "--cwd")) O.cwd = NEXT();
    else if (!strcmp(a, "--uid")) O.uid = num(NEXT(), a);
    else if (!strcmp(a, "--gid")) O.gid = num(NEXT(), a);
    else if (!strcmp(a, "--env")) {
      char *kv = NEXT();
      if (!strchr(kv, '=')) {
        fprintf(stderr, "%s: --env wants K=V, got '%s'\n", prog, kv);
        exit(EXIT_TRACER);
      }
      O.env[O.nenv++] = kv;
    } else if (!strcmp(a, "--stdin")) O.in = NEXT();
    else if (!strcmp(a, "--stdout")) O.out = NEXT();
    else if (!strcmp(a, "--stderr")) O.err = NEXT();
    else if (!strcmp(a, "--no-trace")) O.trace = 0;
    else if (!strcmp(a, "--layer")) {
      if (O.nlayers == MAX_LAYERS) dief("at most 16 --layer options, one more: %s", argv[i + 1 < argc ? i + 1 : i]);
      O.layer[O.nlayers++] = NEXT();
    } else if (!strcmp(a, "--hide")) O.hide = NEXT();
    /* mkimg run options */
    else if (!strcmp(a, "--bind")) parse_bind(NEXT());
    else if (!strcmp(a, "--writable")) R.writable = 1;
    else if (!strcmp(a, "--own-terminal")) R.own_terminal = 1;
    else if (!strcmp(a, "--network")) {
      const char *n = NEXT();
      if (!strcmp(n, "host")) R.net_host = 1;
      else if (!strcmp(n, "none")) R.net_host = 0;
      else dief("--network wants host or none, got '%s'", n);
    } else if (!strcmp(a, "--messages-fd")) {
      long fd = num(NEXT(), a);
      if (fcntl((int)fd, F_GETFD) < 0) die("--messages-fd");
      err_fd = (int)fd;
      fcntl(err_fd, F_SETFD, FD_CLOEXEC);
    }
    else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      usage();
    } else {
      fprintf(stderr, "%s: unknown option '%s'\n", prog, a);
      usage();
    }
#undef NEXT
  }
  if (!O.root || (!O.events && O.trace) || i >= argc) usage();
  if ((O.nlayers > 0 || O.hide) && R.writable) dief("%s do not go with --writable", "--layer and --hide");
  O.argv = argv + i;

  char rootbuf[4096];
  if (!realpath(O.root, rootbuf)) die("realpath(--root)");
  O.root = rootbuf;
  struct stat st;
  if (stat(O.root, &st) != 0 || !S_ISDIR(st.st_mode)) dief("--root %s is not a directory", O.root);
  static char layerbuf[MAX_LAYERS][4096];
  for (int l = 0; l < O.nlayers; l++) {
    if (!realpath(O.layer[l], layerbuf[l])) die(O.layer[l]);
    O.layer[l] = layerbuf[l];
    if (stat(O.layer[l], &st) != 0 || !S_ISDIR(st.st_mode)) dief("--layer %s is not a directory", O.layer[l]);
  }

  if (err_fd == 2) {
    err_fd = fcntl(2, F_DUPFD_CLOEXEC, 3);
    if (err_fd < 0) err_fd = 2;
  }
  /* Whoever started the tracer owns the sandbox: if it dies, so does the
   * tracer, and with it (PDEATHSIG of init) everything inside. */
  pid_t starter = getppid();
  if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0) die("prctl(PR_SET_PDEATHSIG)");
  if (getppid() != starter) _exit(EXIT_TRACER);

  struct child_args ca = {.in_fd = -1, .out_fd = -1, .err_fd = -1};
  if (O.in && !strcmp(O.in, "-")) ca.in_fd = fcntl(0, F_DUPFD_CLOEXEC, 3); /* mkimg run: the caller's stdin */
  else ca.in_fd = open(O.in ? O.in : "/dev/null", O_RDONLY | O_CLOEXEC);
  if (ca.in_fd < 0) die(O.in ? O.in : "/dev/null");
  if (O.out && (ca.out_fd = open(O.out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) < 0) die(O.out);
  if (O.err && (ca.err_fd = open(O.err, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) < 0) die(O.err);
  if (O.events) {
    ev = fopen(O.events, "we");
    if (!ev) die(O.events);
    setvbuf(ev, NULL, _IOFBF, 1 << 20);
  }

  const char *tmp = getenv("TMPDIR");
  snprintf(scratch, sizeof scratch, "%s/mkimg-trace.XXXXXX", tmp && *tmp ? tmp : "/tmp");
  if (!mkdtemp(scratch)) die("mkdtemp(scratch root)");
  if (O.nlayers > 0 || O.hide) {
    snprintf(layers_dir, sizeof layers_dir, "%s/mkimg-layers.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(layers_dir)) {
      rmdir(scratch);
      die("mkdtemp(overlay parts)");
    }
  }

  if (R.own_terminal && isatty(0) && tcgetpgrp(0) == getpgrp()) R.tty_fg = 1; /* mkimg-run */
  int sp[2];
  if (pipe2(sp, O_CLOEXEC) != 0) die("pipe2");
  ca.sync_r = sp[0];
  caller_is_root = geteuid() == 0 && full_id_map();
  ca.userns = !caller_is_root;
  if (caller_is_root && !R.writable) idmap_fd = idmap_userns();
  int flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWUTS | CLONE_NEWIPC | SIGCHLD;
  if (R.net_host) flags &= ~CLONE_NEWNET; /* mkimg run --network host */
  if (ca.userns) flags |= CLONE_NEWUSER;

  size_t stack_sz = 1 << 20;
  char *stack = malloc(stack_sz);
  if (!stack) die("malloc");
  uid_t euid = geteuid();
  gid_t egid = getegid();
  pid_t init = clone(init_main, stack + stack_sz, flags, &ca);
  if (init < 0) {
    int e = errno;
    rmdir(scratch);
    if (*layers_dir) rmdir(layers_dir);
    errno = e;
    die(ca.userns ? "clone(CLONE_NEWUSER|CLONE_NEWNS|CLONE_NEWPID|CLONE_NEWNET|CLONE_NEWUTS|CLONE_NEWIPC)"
                  : "clone(CLONE_NEWNS|CLONE_NEWPID|CLONE_NEWNET|CLONE_NEWUTS|CLONE_NEWIPC)");
  }
  close(sp[0]);
  if (ca.userns) {
    char p[64], m[64];
    snprintf(p, sizeof p, "/proc/%d/setgroups", init);
    write_file(p, "deny");
    /* The caller becomes root inside, or --uid/--gid when given: init keeps
     * its capabilities in the new namespace either way (they are dropped at
     * the program's execve when the uid is not 0). */
    snprintf(p, sizeof p, "/proc/%d/uid_map", init);
    snprintf(m, sizeof m, "%ld %u 1\n", O.uid >= 0 ? O.uid : 0, euid);
    write_file(p, m);
    snprintf(p, sizeof p, "/proc/%d/gid_map", init);
    snprintf(m, sizeof m, "%ld %u 1\n", O.gid >= 0 ? O.gid : (O.uid >= 0 ? O.uid : 0), egid);
    write_file(p, m);
  }
  fwd_to = init;
  forward_signals();
  if (write(sp[1], "x", 1) != 1) die("write(sync)");
  close(sp[1]);

  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_alarm; /* no SA_RESTART: waitpid returns EINTR */
  sigaction(SIGALRM, &sa, NULL);
  if (O.timeout > 0) alarm((unsigned)O.timeout);

  FILE *pm = fopen("/proc/sys/kernel/pid_max", "re");
  if (pm) {
    if (fscanf(pm, "%ld", &pid_max) != 1) pid_max = 4194304;
    fclose(pm);
  }
  known = calloc((size_t)pid_max / 8 + 1, 1);
  if (!known) die("calloc");

  int init_status = -1, killed = 0, init_seen = 0;
  for (;;) {
    if (timed_out && !killed) {
      kill(init, SIGKILL);
      killed = 1;
    }
    int s;
    pid_t p = waitpid(-1, &s, __WALL);
    if (p < 0) {
      if (errno == EINTR) continue;
      if (errno == ECHILD) break;
      die("waitpid");
    }
    if (WIFEXITED(s) || WIFSIGNALED(s)) {
      set_known(p, 0);
      if (p == init) init_status = s;
      continue;
    }
    if (!WIFSTOPPED(s)) continue;
    int sig = WSTOPSIG(s), event = s >> 16;
    if (p == init && !init_seen) {
      /* init stopped itself after PTRACE_TRACEME: set the options. */
      init_seen = 1;
      set_known(p, 1);
      long o = PTRACE_O_TRACEFORK | PTRACE_O_TRACEVFORK | PTRACE_O_TRACECLONE | PTRACE_O_TRACEEXEC |
               PTRACE_O_TRACESECCOMP | PTRACE_O_EXITKILL;
      if (ptrace(PTRACE_SETOPTIONS, p, 0, o) != 0) {
        kill(init, SIGKILL);
        die("ptrace(PTRACE_SETOPTIONS)");
      }
      ptrace(PTRACE_CONT, p, 0, 0);
      continue;
    }
    if (sig == SIGTRAP && event == PTRACE_EVENT_SECCOMP) {
      unsigned long msg = 0;
      ptrace(PTRACE_GETEVENTMSG, p, 0, &msg);
      on_syscall(p, (unsigned)msg);
      ptrace(PTRACE_CONT, p, 0, 0);
      continue;
    }
    if (sig == SIGTRAP && event) {
      /* fork/vfork/clone/exec events */
      if (event == PTRACE_EVENT_EXEC) {
        /* exec from a non-leader thread: its old thread id is gone for good
         * (no exit is reported for it), so forget it before it is reused. */
        unsigned long former = 0;
        if (ptrace(PTRACE_GETEVENTMSG, p, 0, &former) == 0 && (pid_t)former != p) set_known((pid_t)former, 0);
      }
      set_known(p, 1);
      ptrace(PTRACE_CONT, p, 0, 0);
      continue;
    }
    if (!is_known(p)) {
      /* a new tracee's initial stop */
      set_known(p, 1);
      ptrace(PTRACE_CONT, p, 0, (sig == SIGSTOP) ? 0 : sig);
      continue;
    }
    siginfo_t si;
    if (ptrace(PTRACE_GETSIGINFO, p, 0, &si) != 0) {
      /* group-stop: resume without a signal */
      ptrace(PTRACE_CONT, p, 0, 0);
      continue;
    }
    ptrace(PTRACE_CONT, p, 0, sig);
  }
  alarm(0);
  tracer_terminal_back(); /* mkimg-run */
  if (ev && fclose(ev) != 0) {
    rmdir(scratch);
    if (*layers_dir) rmdir(layers_dir);
    die("writing --events");
  }
  rmdir(scratch);
  if (*layers_dir) rmdir(layers_dir);
  if (timed_out) {
    dprintf(err_fd, "%s: timed out after %ld s: killed the process tree\n", prog, O.timeout);
    return EXIT_TIMEOUT;
  }
  if (init_status < 0) return EXIT_TRACER;
  if (WIFEXITED(init_status)) return WEXITSTATUS(init_status);
  return 128 + WTERMSIG(init_status);
}
