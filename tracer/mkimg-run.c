/*
 * mkimg-run: the native fast path of `mkimg run IMAGE [ARGS...]`.
 *
 *   mkimg-run [--cache-dir DIR] IMAGE [--] [ARGS...]
 *
 * A warm run needs no Node.js: when the cache holds a launch record for
 * IMAGE (written by `mkimg run` when it unpacked the image) whose size,
 * mtime, inode and device still match the file, this execs tracer/mkimg-trace
 * with the recorded sandbox arguments, the image's entrypoint, and ARGS (or
 * the image's cmd). Anything else (another option, no record, a changed
 * image) execs `node bin/mkimg.js run` with the same arguments, which does
 * the full work and writes the record. So the result is always what
 * `mkimg run` does; only the time differs.
 *
 * Record: <cache>/run/fast/<FNV-1a 64 of the absolute path, hex>, fields
 * NUL-terminated: "mkimg-run-record-1", path, size, mtime (ns), inode,
 * device, then three counted lists: tracer options, entrypoint, cmd.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char self_dir[PATH_MAX];

static void fallback(int argc, char **argv) {
  const char *node = getenv("MKIMG_NODE");
  if (!node || !*node) node = "node";
  char script[PATH_MAX + 32];
  snprintf(script, sizeof script, "%s/../bin/mkimg.js", self_dir);
  char **a = calloc((size_t)argc + 3, sizeof(char *));
  if (!a) _exit(1);
  int n = 0;
  a[n++] = (char *)node;
  a[n++] = script;
  a[n++] = "run";
  for (int i = 1; i < argc; i++) a[n++] = argv[i];
  a[n] = NULL;
  execvp(node, a);
  fprintf(stderr, "mkimg-run: cannot start %s: %s\n", node, strerror(errno));
  _exit(1);
}

/* path.resolve(): absolute, ".", ".." and "//" folded, symlinks left alone. */
static int resolve_path(const char *in, char *out, size_t n) {
  char buf[PATH_MAX * 2];
  if (in[0] == '/') snprintf(buf, sizeof buf, "%s", in);
  else {
    char cwd[PATH_MAX];
    if (!getcwd(cwd, sizeof cwd)) return -1;
    snprintf(buf, sizeof buf, "%s/%s", cwd, in);
  }
  size_t o = 0;
  out[0] = 0;
  char *save = NULL;
  for (char *c = strtok_r(buf, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
    if (!strcmp(c, ".")) continue;
    if (!strcmp(c, "..")) {
      while (o > 0 && out[o - 1] != '/') o--;
      if (o > 0) o--;
      out[o] = 0;
      continue;
    }
    size_t l = strlen(c);
    if (o + l + 2 >= n) return -1;
    out[o++] = '/';
    memcpy(out + o, c, l);
    o += l;
    out[o] = 0;
  }
  if (o == 0) snprintf(out, n, "/");
  return 0;
}

static uint64_t fnv1a(const char *s) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
  return h;
}

/* The record's fields, in order. */
static char *rec, *cur, *end;
static const char *field(void) {
  if (!cur || cur >= end) return NULL;
  char *z = memchr(cur, 0, (size_t)(end - cur));
  if (!z) return NULL;
  char *f = cur;
  cur = z + 1;
  return f;
}

int main(int argc, char **argv) {
  char exe[PATH_MAX];
  ssize_t l = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (l <= 0) fallback(argc, argv);
  exe[l] = 0;
  snprintf(self_dir, sizeof self_dir, "%s", exe);
  char *sl = strrchr(self_dir, '/');
  if (sl) *sl = 0;

  const char *cache = NULL;
  int i = 1;
  for (; i < argc && argv[i][0] == '-'; i++) {
    if (!strcmp(argv[i], "--cache-dir") && i + 1 < argc) cache = argv[++i];
    else if (!strncmp(argv[i], "--cache-dir=", 12)) cache = argv[i] + 12;
    else fallback(argc, argv); /* any other option: the full implementation */
  }
  if (i >= argc) fallback(argc, argv);
  const char *image = argv[i++];
  if (i < argc && !strcmp(argv[i], "--")) i++;
  char cachebuf[PATH_MAX];
  if (!cache) {
    const char *x = getenv("XDG_CACHE_HOME"), *h = getenv("HOME");
    if (x && *x) snprintf(cachebuf, sizeof cachebuf, "%s/mkimg", x);
    else if (h && *h) snprintf(cachebuf, sizeof cachebuf, "%s/.cache/mkimg", h);
    else fallback(argc, argv);
    cache = cachebuf;
  }
  char abs[PATH_MAX], cabs[PATH_MAX];
  if (resolve_path(image, abs, sizeof abs) != 0 || resolve_path(cache, cabs, sizeof cabs) != 0) fallback(argc, argv);
  struct stat st;
  if (stat(abs, &st) != 0) fallback(argc, argv);
  if (S_ISDIR(st.st_mode)) {
    char ix[PATH_MAX + 16];
    snprintf(ix, sizeof ix, "%s/index.json", abs);
    if (stat(ix, &st) != 0) fallback(argc, argv);
  }
  char rp[PATH_MAX + 64];
  snprintf(rp, sizeof rp, "%s/run/fast/%016llx", cabs, (unsigned long long)fnv1a(abs));
  int fd = open(rp, O_RDONLY | O_CLOEXEC);
  if (fd < 0) fallback(argc, argv);
  struct stat rs;
  if (fstat(fd, &rs) != 0 || rs.st_size <= 0 || rs.st_size > (1 << 20)) fallback(argc, argv);
  rec = malloc((size_t)rs.st_size);
  if (!rec || read(fd, rec, (size_t)rs.st_size) != rs.st_size) fallback(argc, argv);
  close(fd);
  cur = rec;
  end = rec + rs.st_size;

  char want[4][32];
  snprintf(want[0], 32, "%lld", (long long)st.st_size);
  snprintf(want[1], 32, "%llu", (unsigned long long)st.st_mtim.tv_sec * 1000000000ULL + (unsigned long long)st.st_mtim.tv_nsec);
  snprintf(want[2], 32, "%llu", (unsigned long long)st.st_ino);
  snprintf(want[3], 32, "%llu", (unsigned long long)st.st_dev);
  const char *f = field();
  if (!f || strcmp(f, "mkimg-run-record-1")) fallback(argc, argv);
  if (!(f = field()) || strcmp(f, abs)) fallback(argc, argv);
  for (int k = 0; k < 4; k++)
    if (!(f = field()) || strcmp(f, want[k])) fallback(argc, argv);

  char **a = calloc((size_t)(rs.st_size + argc + 8), sizeof(char *));
  if (!a) fallback(argc, argv);
  char tracer[PATH_MAX + 32];
  snprintf(tracer, sizeof tracer, "%s/mkimg-trace", self_dir);
  int n = 0;
  a[n++] = tracer;
  a[n++] = "--own-terminal";
  const char *root = NULL;
  int nargs = 0;
  for (int list = 0; list < 3; list++) {
    if (list == 2 && i < argc) break; /* ARGS replace the image's cmd */
    const char *c = field();
    if (!c) fallback(argc, argv);
    long cnt = strtol(c, NULL, 10);
    if (list == 1) a[n++] = "--";
    for (long k = 0; k < cnt; k++) {
      const char *v = field();
      if (!v) fallback(argc, argv);
      if (list == 0 && k > 0 && !strcmp(a[n - 1], "--root")) root = v;
      a[n++] = (char *)v;
      if (list > 0) nargs++;
    }
  }
  for (; i < argc; i++, nargs++) a[n++] = argv[i];
  a[n] = NULL;
  if (nargs == 0 || !root) fallback(argc, argv); /* nothing to run: let mkimg say so */
  struct stat rt;
  if (stat(root, &rt) != 0 || !S_ISDIR(rt.st_mode)) fallback(argc, argv);
  execv(tracer, a);
  fallback(argc, argv);
  return 1;
}
