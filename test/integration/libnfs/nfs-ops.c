/*
 * nfs-ops: drives every NFSv3 operation libnfs offers against a server and checks each result.
 *
 *   nfs-ops URL UID GID [BASE]
 *
 * URL is a libnfs URL of the export's root, e.g. nfs://127.0.0.1/?version=3&nfsport=N&mountport=M.
 * UID and GID are the credentials sent (AUTH_SYS); some checks differ for root (chown, device nodes).
 * Everything happens under BASE (default /nfs-ops), which must not exist and is removed at the end.
 *
 * Prints one line per check, `ok <name>` or `FAIL <name>: <reason>`, then a `summary:` line,
 * and exits 0 only when every check passed (1 on a failed check, 2 on bad usage or no mount).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <nfsc/libnfs.h>

#include "common.h"

#define LIST_ENTRY_COUNT 50
#define OTHER_UID 4242
#define OTHER_GID 4242

static struct nfs_context *nfs;
static struct nfs_context *other; /* a second mount as a non-root user, for permission checks */
static const char *base = "/nfs-ops";
static int uid;
static int gid;
static int passed;
static int failed;

static void pass(const char *name) {
  passed++;
  printf("ok %s\n", name);
}

static void fail(const char *name, const char *format, ...) {
  va_list args;
  failed++;
  printf("FAIL %s: ", name);
  va_start(args, format);
  vprintf(format, args);
  va_end(args);
  printf("\n");
}

/* A check that `condition` holds; the reason is printed only when it does not. */
static int check(const char *name, int condition, const char *format, ...) {
  va_list args;
  if (condition) {
    pass(name);
    return 1;
  }
  failed++;
  printf("FAIL %s: ", name);
  va_start(args, format);
  vprintf(format, args);
  va_end(args);
  printf("\n");
  return 0;
}

/* A call that must succeed: rc is libnfs's return (0 or -errno). */
static int expect_ok(struct nfs_context *ctx, const char *name, int rc) {
  if (rc >= 0) {
    pass(name);
    return 1;
  }
  fail(name, "returned %d (%s): %s", rc, strerror(-rc), nfs_get_error(ctx));
  return 0;
}

/* A call that must fail with `expected` (a positive errno). */
static int expect_errno(const char *name, int rc, int expected) {
  if (rc == -expected) {
    pass(name);
    return 1;
  }
  if (rc >= 0) {
    fail(name, "succeeded, expected %s", strerror(expected));
  } else {
    fail(name, "failed with %d (%s), expected %d (%s)", rc, strerror(-rc), -expected, strerror(expected));
  }
  return 0;
}

/* BASE/NAME into `buffer`. */
static const char *at(char *buffer, const char *name) { return join(buffer, base, name); }

static int stat_of(struct nfs_context *ctx, const char *name, const char *path, struct nfs_stat_64 *st) {
  memset(st, 0, sizeof(*st));
  int rc = nfs_stat64(ctx, path, st);
  if (rc < 0) {
    fail(name, "stat %s returned %d (%s): %s", path, rc, strerror(-rc), nfs_get_error(ctx));
    return 0;
  }
  return 1;
}

/* Writes `length` pattern bytes at `offset` through an open handle and reads them back. */
static void write_and_read_back(struct nfsfh *fh, const char *name, uint64_t offset, size_t length, uint32_t seed) {
  unsigned char *data = malloc(length);
  unsigned char *back = malloc(length);
  char label[128];
  fill_pattern(data, length, offset, seed);
  snprintf(label, sizeof(label), "%s: pwrite", name);
  int rc = nfs_pwrite(nfs, fh, offset, length, data);
  check(label, rc == (int)length, "pwrite of %zu bytes at %" PRIu64 " returned %d: %s", length, offset, rc,
        nfs_get_error(nfs));
  snprintf(label, sizeof(label), "%s: pread", name);
  memset(back, 0, length);
  rc = nfs_pread(nfs, fh, offset, length, back);
  if (check(label, rc == (int)length, "pread of %zu bytes at %" PRIu64 " returned %d: %s", length, offset, rc,
            nfs_get_error(nfs))) {
    snprintf(label, sizeof(label), "%s: content", name);
    size_t i = 0;
    while (i < length && data[i] == back[i]) i++;
    check(label, i == length, "first difference at byte %" PRIu64 ": wrote 0x%02x, read 0x%02x", offset + i,
          i < length ? data[i] : 0, i < length ? back[i] : 0);
  }
  free(data);
  free(back);
}

/* Reads [offset, offset+length) and checks it is all zero. */
static void check_zeros(struct nfsfh *fh, const char *name, uint64_t offset, size_t length) {
  unsigned char *back = malloc(length);
  memset(back, 0xAA, length);
  int rc = nfs_pread(nfs, fh, offset, length, back);
  if (rc != (int)length) {
    fail(name, "pread of %zu bytes at %" PRIu64 " returned %d: %s", length, offset, rc, nfs_get_error(nfs));
  } else {
    size_t i = 0;
    while (i < length && back[i] == 0) i++;
    check(name, i == length, "byte %" PRIu64 " is 0x%02x, expected zero", offset + i, i < length ? back[i] : 0);
  }
  free(back);
}

static void check_size(const char *name, const char *path, uint64_t expected) {
  struct nfs_stat_64 st;
  if (stat_of(nfs, name, path, &st)) {
    check(name, st.nfs_size == expected, "size of %s is %" PRIu64 ", expected %" PRIu64, path, st.nfs_size,
          expected);
  }
}

static void test_files(void) {
  char path[PATH_BYTES_MAX];
  struct nfsfh *fh = NULL;
  struct nfs_stat_64 st;
  const char *file = at(path, "file");

  if (!expect_ok(nfs, "creat", nfs_creat(nfs, file, 0644, &fh))) return;
  write_and_read_back(fh, "small write", 0, 4000, 1);
  write_and_read_back(fh, "unaligned write", 4000 - 7, 10007, 2);
  /* Larger than any server's wtmax/rtmax: libnfs splits it into several WRITEs and READs. */
  write_and_read_back(fh, "3 MiB write", 1 << 20, 3 << 20, 3);
  check_zeros(fh, "hole reads as zeros", 4000 - 7 + 10007, (1 << 20) - (4000 - 7 + 10007));
  expect_ok(nfs, "fsync", nfs_fsync(nfs, fh));
  unsigned char byte;
  check(
      "pread at end of file", nfs_pread(nfs, fh, (1 << 20) + (3 << 20), 1, &byte) == 0,
      "pread past the end did not return 0 bytes: %s", nfs_get_error(nfs));
  expect_ok(nfs, "close", nfs_close(nfs, fh));

  if (stat_of(nfs, "stat file", file, &st)) {
    check("stat file: size", st.nfs_size == (1u << 20) + (3u << 20), "size %" PRIu64, st.nfs_size);
    check("stat file: type", S_ISREG(st.nfs_mode), "mode 0%" PRIo64 " is not a regular file", st.nfs_mode);
    check("stat file: mode", (st.nfs_mode & 07777) == 0644, "mode 0%" PRIo64 ", expected 0644", st.nfs_mode & 07777);
    check("stat file: nlink", st.nfs_nlink == 1, "nlink %" PRIu64, st.nfs_nlink);
    check("stat file: owner", st.nfs_uid == (uint64_t)uid && st.nfs_gid == (uint64_t)gid,
          "owner %" PRIu64 ":%" PRIu64 ", expected %d:%d", st.nfs_uid, st.nfs_gid, uid, gid);
    check("stat file: used", st.nfs_used >= (3u << 20), "used %" PRIu64 " bytes for 3 MiB of data", st.nfs_used);
  }

  /* Reopen read-only: the data is the server's, not a client cache's. */
  if (expect_ok(nfs, "open O_RDONLY", nfs_open(nfs, file, O_RDONLY, &fh))) {
    unsigned char data[4000];
    unsigned char back[4000];
    fill_pattern(data, sizeof(data), 0, 1);
    int rc = nfs_pread(nfs, fh, 0, sizeof(back), back);
    check("reopened content", rc == (int)sizeof(back) && memcmp(data, back, 4000 - 7) == 0,
          "pread returned %d or the bytes differ", rc);
    expect_ok(nfs, "close read-only", nfs_close(nfs, fh));
  }

  if (expect_ok(nfs, "open O_WRONLY|O_TRUNC", nfs_open(nfs, file, O_WRONLY | O_TRUNC, &fh))) {
    expect_ok(nfs, "close truncated", nfs_close(nfs, fh));
    check_size("O_TRUNC empties the file", file, 0);
  }
}

static void test_directories(void) {
  char path[PATH_BYTES_MAX];
  struct nfs_stat_64 st;
  struct nfs_stat_64 parent;
  const char *dir = at(path, "dir");

  if (!stat_of(nfs, "stat base", base, &parent)) return;
  if (!expect_ok(nfs, "mkdir", nfs_mkdir(nfs, dir))) return;
  if (stat_of(nfs, "stat dir", dir, &st)) {
    check("stat dir: type", S_ISDIR(st.nfs_mode), "mode 0%" PRIo64 " is not a directory", st.nfs_mode);
    check("stat dir: nlink", st.nfs_nlink == 2, "nlink %" PRIu64 ", expected 2", st.nfs_nlink);
    check("stat dir: mode", (st.nfs_mode & 0777) == 0755, "mode 0%" PRIo64 ", expected 0755", st.nfs_mode & 07777);
  }
  struct nfs_stat_64 after;
  if (stat_of(nfs, "parent nlink after mkdir", base, &after)) {
    check("parent nlink after mkdir", after.nfs_nlink == parent.nfs_nlink + 1, "nlink %" PRIu64 ", was %" PRIu64,
          after.nfs_nlink, parent.nfs_nlink);
  }
  char mode_path[PATH_BYTES_MAX];
  if (expect_ok(nfs, "mkdir2 with mode 0700", nfs_mkdir2(nfs, at(mode_path, "private"), 0700)) &&
      stat_of(nfs, "stat mkdir2", mode_path, &st)) {
    check("mkdir2 mode", (st.nfs_mode & 0777) == 0700, "mode 0%" PRIo64 ", expected 0700", st.nfs_mode & 07777);
    expect_ok(nfs, "rmdir mkdir2", nfs_rmdir(nfs, mode_path));
  }
  expect_ok(nfs, "rmdir", nfs_rmdir(nfs, dir));
  expect_errno("stat after rmdir", nfs_stat64(nfs, dir, &st), ENOENT);
  if (stat_of(nfs, "parent nlink after rmdir", base, &after)) {
    check("parent nlink after rmdir", after.nfs_nlink == parent.nfs_nlink, "nlink %" PRIu64 ", expected %" PRIu64,
          after.nfs_nlink, parent.nfs_nlink);
  }
}

/* Creates `name` with `text` as its content. */
static int make_file(const char *label, const char *path, const char *text) {
  struct nfsfh *fh = NULL;
  int rc = nfs_create(nfs, path, O_CREAT | O_TRUNC | O_RDWR, 0644, &fh);
  if (rc < 0) {
    fail(label, "create %s returned %d: %s", path, rc, nfs_get_error(nfs));
    return 0;
  }
  size_t length = strlen(text);
  rc = nfs_pwrite(nfs, fh, 0, length, text);
  nfs_close(nfs, fh);
  if (rc != (int)length) {
    fail(label, "write to %s returned %d: %s", path, rc, nfs_get_error(nfs));
    return 0;
  }
  return 1;
}

/* Checks that `path` holds exactly `text`. */
static void check_content(const char *label, const char *path, const char *text) {
  struct nfsfh *fh = NULL;
  char buffer[256];
  int rc = nfs_open(nfs, path, O_RDONLY, &fh);
  if (rc < 0) {
    fail(label, "open %s returned %d: %s", path, rc, nfs_get_error(nfs));
    return;
  }
  memset(buffer, 0, sizeof(buffer));
  rc = nfs_pread(nfs, fh, 0, sizeof(buffer) - 1, buffer);
  nfs_close(nfs, fh);
  check(label, rc == (int)strlen(text) && strcmp(buffer, text) == 0, "%s holds \"%s\" (%d bytes), expected \"%s\"",
        path, rc < 0 ? "" : buffer, rc, text);
}

static void test_rename(void) {
  char a[PATH_BYTES_MAX];
  char b[PATH_BYTES_MAX];
  char c[PATH_BYTES_MAX];
  char sub[PATH_BYTES_MAX];
  char moved[PATH_BYTES_MAX];
  struct nfs_stat_64 st;
  struct nfs_stat_64 before;

  at(a, "a");
  at(b, "b");
  at(c, "c");
  if (!make_file("rename setup", a, "alpha")) return;
  expect_ok(nfs, "rename", nfs_rename(nfs, a, b));
  expect_errno("rename: source is gone", nfs_stat64(nfs, a, &st), ENOENT);
  check_content("rename: target has the content", b, "alpha");

  if (!make_file("rename setup", c, "charlie, longer") || !stat_of(nfs, "rename setup", c, &before)) return;
  expect_ok(nfs, "rename replacing a file", nfs_rename(nfs, c, b));
  expect_errno("rename replacing: source is gone", nfs_stat64(nfs, c, &st), ENOENT);
  check_content("rename replacing: target has the new content", b, "charlie, longer");
  if (stat_of(nfs, "rename replacing: inode", b, &st)) {
    check("rename replacing: inode", st.nfs_ino == before.nfs_ino && st.nfs_nlink == 1,
          "target is inode %" PRIu64 " with nlink %" PRIu64 ", expected inode %" PRIu64 " with nlink 1", st.nfs_ino,
          st.nfs_nlink, before.nfs_ino);
  }

  at(sub, "sub");
  join(moved, sub, "b");
  if (!expect_ok(nfs, "rename setup: mkdir", nfs_mkdir(nfs, sub))) return;
  expect_ok(nfs, "rename into a subdirectory", nfs_rename(nfs, b, moved));
  check_content("rename into a subdirectory: content", moved, "charlie, longer");
  char renamed_dir[PATH_BYTES_MAX];
  at(renamed_dir, "sub2");
  expect_ok(nfs, "rename a directory", nfs_rename(nfs, sub, renamed_dir));
  join(moved, renamed_dir, "b");
  check_content("rename a directory: its entries follow", moved, "charlie, longer");
  expect_ok(nfs, "rename cleanup: unlink", nfs_unlink(nfs, moved));
  expect_ok(nfs, "rename cleanup: rmdir", nfs_rmdir(nfs, renamed_dir));
}

static void test_links(void) {
  char file[PATH_BYTES_MAX];
  char link[PATH_BYTES_MAX];
  char sym[PATH_BYTES_MAX];
  struct nfs_stat_64 st;
  struct nfs_stat_64 st2;

  at(file, "linked");
  at(link, "linked2");
  at(sym, "sym");
  if (!make_file("link setup", file, "linked content")) return;
  if (expect_ok(nfs, "link", nfs_link(nfs, file, link)) && stat_of(nfs, "link: stat", file, &st) &&
      stat_of(nfs, "link: stat", link, &st2)) {
    check("link: nlink becomes 2", st.nfs_nlink == 2, "nlink %" PRIu64, st.nfs_nlink);
    check("link: same inode", st.nfs_ino == st2.nfs_ino, "inodes %" PRIu64 " and %" PRIu64, st.nfs_ino, st2.nfs_ino);
    check_content("link: content through the new name", link, "linked content");
    expect_ok(nfs, "unlink one link", nfs_unlink(nfs, link));
    if (stat_of(nfs, "unlink one link: stat", file, &st)) {
      check("unlink one link: nlink back to 1", st.nfs_nlink == 1, "nlink %" PRIu64, st.nfs_nlink);
    }
  }

  if (expect_ok(nfs, "symlink", nfs_symlink(nfs, "linked", sym))) {
    char target[PATH_BYTES_MAX];
    memset(target, 0, sizeof(target));
    if (expect_ok(nfs, "readlink", nfs_readlink(nfs, sym, target, sizeof(target)))) {
      check("readlink: target", strcmp(target, "linked") == 0, "target \"%s\", expected \"linked\"", target);
    }
    memset(&st, 0, sizeof(st));
    if (expect_ok(nfs, "lstat symlink", nfs_lstat64(nfs, sym, &st))) {
      check("lstat symlink: type", S_ISLNK(st.nfs_mode), "mode 0%" PRIo64 " is not a symlink", st.nfs_mode);
      check("lstat symlink: size", st.nfs_size == strlen("linked"), "size %" PRIu64 ", expected 6", st.nfs_size);
    }
    if (stat_of(nfs, "stat through symlink", sym, &st) && stat_of(nfs, "stat through symlink", file, &st2)) {
      check("stat through symlink", st.nfs_ino == st2.nfs_ino && S_ISREG(st.nfs_mode),
            "stat of the symlink gave inode %" PRIu64 " mode 0%" PRIo64 ", expected inode %" PRIu64, st.nfs_ino,
            st.nfs_mode, st2.nfs_ino);
    }
    check_content("read through symlink", sym, "linked content");
    expect_errno("readlink of a regular file", nfs_readlink(nfs, file, target, sizeof(target)), EINVAL);
    expect_ok(nfs, "unlink symlink", nfs_unlink(nfs, sym));
    if (stat_of(nfs, "unlink symlink leaves the target", file, &st)) pass("unlink symlink leaves the target");
  }
  expect_ok(nfs, "links cleanup", nfs_unlink(nfs, file));
}

static void test_attributes(void) {
  char file[PATH_BYTES_MAX];
  struct nfs_stat_64 st;

  at(file, "attrs");
  if (!make_file("attributes setup", file, "attributes")) return;
  if (expect_ok(nfs, "chmod", nfs_chmod(nfs, file, 0600)) && stat_of(nfs, "chmod: stat", file, &st)) {
    check("chmod: mode", (st.nfs_mode & 07777) == 0600, "mode 0%" PRIo64 ", expected 0600", st.nfs_mode & 07777);
    check("chmod: type kept", S_ISREG(st.nfs_mode), "mode 0%" PRIo64, st.nfs_mode);
  }
  if (expect_ok(nfs, "chmod setuid", nfs_chmod(nfs, file, 04751)) && stat_of(nfs, "chmod setuid: stat", file, &st)) {
    check("chmod setuid: mode", (st.nfs_mode & 07777) == 04751, "mode 0%" PRIo64, st.nfs_mode & 07777);
  }

  if (uid == 0) {
    if (expect_ok(nfs, "chown", nfs_chown(nfs, file, 1234, 5678)) && stat_of(nfs, "chown: stat", file, &st)) {
      check("chown: owner", st.nfs_uid == 1234 && st.nfs_gid == 5678, "owner %" PRIu64 ":%" PRIu64 ", expected 1234:5678",
            st.nfs_uid, st.nfs_gid);
    }
    expect_ok(nfs, "chown back", nfs_chown(nfs, file, 0, 0));
  } else {
    expect_errno("chown to another user by non-root", nfs_chown(nfs, file, uid + 1, gid), EPERM);
  }

  struct timeval times[2];
  times[0].tv_sec = 1000000000; /* atime */
  times[0].tv_usec = 123456;
  times[1].tv_sec = 1200000000; /* mtime */
  times[1].tv_usec = 654321;
  if (expect_ok(nfs, "utimes", nfs_utimes(nfs, file, times)) && stat_of(nfs, "utimes: stat", file, &st)) {
    check("utimes: atime", st.nfs_atime == 1000000000 && st.nfs_atime_nsec == 123456000,
          "atime %" PRIu64 ".%09" PRIu64 ", expected 1000000000.123456000", st.nfs_atime, st.nfs_atime_nsec);
    check("utimes: mtime", st.nfs_mtime == 1200000000 && st.nfs_mtime_nsec == 654321000,
          "mtime %" PRIu64 ".%09" PRIu64 ", expected 1200000000.654321000", st.nfs_mtime, st.nfs_mtime_nsec);
  }
  time_t now = time(NULL);
  if (expect_ok(nfs, "utimes to server time", nfs_utimes(nfs, file, NULL)) &&
      stat_of(nfs, "utimes to server time: stat", file, &st)) {
    int64_t skew = (int64_t)st.nfs_mtime - (int64_t)now;
    check("utimes to server time: mtime is now", skew > -300 && skew < 300, "mtime %" PRIu64 " is %" PRId64 " s from now",
          st.nfs_mtime, skew);
  }
  expect_ok(nfs, "attributes cleanup", nfs_unlink(nfs, file));
}

static void test_truncate(void) {
  char file[PATH_BYTES_MAX];
  struct nfsfh *fh = NULL;

  at(file, "trunc");
  if (!expect_ok(nfs, "truncate setup: creat", nfs_creat(nfs, file, 0644, &fh))) return;
  write_and_read_back(fh, "truncate setup", 0, 10000, 7);
  expect_ok(nfs, "truncate setup: close", nfs_close(nfs, fh));

  expect_ok(nfs, "truncate shrink", nfs_truncate(nfs, file, 4000));
  check_size("truncate shrink: size", file, 4000);
  expect_ok(nfs, "truncate extend", nfs_truncate(nfs, file, 9000));
  check_size("truncate extend: size", file, 9000);
  if (!expect_ok(nfs, "ftruncate: open", nfs_open(nfs, file, O_RDWR, &fh))) return;
  {
    unsigned char data[4000];
    unsigned char back[4000];
    fill_pattern(data, sizeof(data), 0, 7);
    int rc = nfs_pread(nfs, fh, 0, sizeof(back), back);
    check("truncate keeps the head", rc == 4000 && memcmp(data, back, 4000) == 0, "pread returned %d or bytes differ", rc);
  }
  /* The bytes cut off by the shrink must not come back when the file grows again. */
  check_zeros(fh, "truncate extend reads zeros", 4000, 5000);

  expect_ok(nfs, "ftruncate shrink", nfs_ftruncate(nfs, fh, 100));
  check_size("ftruncate shrink: size", file, 100);
  expect_ok(nfs, "ftruncate extend", nfs_ftruncate(nfs, fh, 5000));
  check_size("ftruncate extend: size", file, 5000);
  check_zeros(fh, "ftruncate extend reads zeros", 100, 4900);
  expect_ok(nfs, "ftruncate: close", nfs_close(nfs, fh));
  expect_ok(nfs, "truncate cleanup", nfs_unlink(nfs, file));
}

static void test_readdir(void) {
  char dir[PATH_BYTES_MAX];
  char path[PATH_BYTES_MAX];
  int seen[LIST_ENTRY_COUNT];
  struct nfsdir *listing = NULL;
  struct nfsfh *fh = NULL;

  at(dir, "list");
  if (!expect_ok(nfs, "readdir setup: mkdir", nfs_mkdir(nfs, dir))) return;
  /* Entry i is a directory when i % 10 == 0, a symlink when i % 10 == 1, else a regular file. */
  int made = 0;
  for (int i = 0; i < LIST_ENTRY_COUNT; i++) {
    char name[32];
    snprintf(name, sizeof(name), "entry-%03d", i);
    join(path, dir, name);
    int rc;
    if (i % 10 == 0) {
      rc = nfs_mkdir(nfs, path);
    } else if (i % 10 == 1) {
      rc = nfs_symlink(nfs, "entry-002", path);
    } else {
      rc = nfs_creat(nfs, path, 0644, &fh);
      if (rc == 0) nfs_close(nfs, fh);
    }
    if (rc == 0) made++;
  }
  check("readdir setup: entries made", made == LIST_ENTRY_COUNT, "made %d of %d", made, LIST_ENTRY_COUNT);

  memset(seen, 0, sizeof(seen));
  int extra = 0;
  int wrong_type = 0;
  if (expect_ok(nfs, "opendir", nfs_opendir(nfs, dir, &listing))) {
    struct nfsdirent *entry;
    while ((entry = nfs_readdir(nfs, listing)) != NULL) {
      if (strcmp(entry->name, ".") == 0 || strcmp(entry->name, "..") == 0) continue;
      int index = -1;
      if (sscanf(entry->name, "entry-%d", &index) != 1 || index < 0 || index >= LIST_ENTRY_COUNT) {
        printf("# unexpected entry \"%s\"\n", entry->name);
        extra++;
        continue;
      }
      seen[index]++;
      uint32_t type = entry->mode & S_IFMT;
      uint32_t expected = index % 10 == 0 ? S_IFDIR : index % 10 == 1 ? S_IFLNK : S_IFREG;
      if (type != expected) wrong_type++;
    }
    nfs_closedir(nfs, listing);
    int missing = 0;
    int twice = 0;
    for (int i = 0; i < LIST_ENTRY_COUNT; i++) {
      if (seen[i] == 0) missing++;
      if (seen[i] > 1) twice++;
    }
    check("readdir: every entry", missing == 0, "%d of %d entries missing", missing, LIST_ENTRY_COUNT);
    check("readdir: no entry twice", twice == 0, "%d entries listed more than once", twice);
    check("readdir: nothing else", extra == 0, "%d entries that were never made", extra);
    check("readdir: entry types", wrong_type == 0, "%d entries with the wrong type", wrong_type);
  }

  int removed = 0;
  for (int i = 0; i < LIST_ENTRY_COUNT; i++) {
    char name[32];
    snprintf(name, sizeof(name), "entry-%03d", i);
    join(path, dir, name);
    if ((i % 10 == 0 ? nfs_rmdir(nfs, path) : nfs_unlink(nfs, path)) == 0) removed++;
  }
  check("readdir cleanup: entries removed", removed == LIST_ENTRY_COUNT, "removed %d of %d", removed, LIST_ENTRY_COUNT);
  if (expect_ok(nfs, "opendir of an emptied directory", nfs_opendir(nfs, dir, &listing))) {
    int left = 0;
    struct nfsdirent *entry;
    while ((entry = nfs_readdir(nfs, listing)) != NULL) {
      if (strcmp(entry->name, ".") != 0 && strcmp(entry->name, "..") != 0) left++;
    }
    nfs_closedir(nfs, listing);
    check("readdir of an emptied directory", left == 0, "%d entries left", left);
  }
  expect_ok(nfs, "readdir cleanup: rmdir", nfs_rmdir(nfs, dir));
}

static void test_statvfs(void) {
  struct nfs_statvfs_64 sv;
  memset(&sv, 0, sizeof(sv));
  if (!expect_ok(nfs, "statvfs", nfs_statvfs64(nfs, base, &sv))) return;
  check("statvfs: blocks", sv.f_blocks > 0, "f_blocks is 0");
  check("statvfs: free <= total", sv.f_bfree <= sv.f_blocks, "f_bfree %" PRIu64 " > f_blocks %" PRIu64, sv.f_bfree,
        sv.f_blocks);
  check("statvfs: available <= free", sv.f_bavail <= sv.f_bfree, "f_bavail %" PRIu64 " > f_bfree %" PRIu64, sv.f_bavail,
        sv.f_bfree);
  check("statvfs: some space free", sv.f_bfree > 0, "f_bfree is 0");
  check("statvfs: files", sv.f_files > 0 && sv.f_ffree <= sv.f_files && sv.f_favail <= sv.f_ffree,
        "f_files %" PRIu64 ", f_ffree %" PRIu64 ", f_favail %" PRIu64, sv.f_files, sv.f_ffree, sv.f_favail);
}

static void test_access(void) {
  char file[PATH_BYTES_MAX];
  struct nfsfh *fh = NULL;

  at(file, "access");
  if (!make_file("access setup", file, "secret")) return;
  expect_ok(nfs, "access R_OK|W_OK by the owner", nfs_access(nfs, file, R_OK | W_OK));
  expect_ok(nfs, "access on a directory R_OK|W_OK|X_OK", nfs_access(nfs, base, R_OK | W_OK | X_OK));
  if (other == NULL) {
    expect_ok(nfs, "access cleanup", nfs_unlink(nfs, file));
    return;
  }
  if (expect_ok(nfs, "chmod 0600 for access", nfs_chmod(nfs, file, 0600))) {
    expect_errno("access R_OK by another user on 0600", nfs_access(other, file, R_OK), EACCES);
    expect_errno("open O_RDONLY by another user on 0600", nfs_open(other, file, O_RDONLY, &fh), EACCES);
  }
  if (expect_ok(nfs, "chmod 0644 for access", nfs_chmod(nfs, file, 0644))) {
    expect_ok(other, "access R_OK by another user on 0644", nfs_access(other, file, R_OK));
    expect_errno("access W_OK by another user on 0644", nfs_access(other, file, W_OK), EACCES);
    expect_errno("open O_WRONLY by another user on 0644", nfs_open(other, file, O_WRONLY, &fh), EACCES);
  }
  /* base is 0755 and owned by us: another user may not create in it. */
  char theirs[PATH_BYTES_MAX];
  expect_errno("creat by another user in a 0755 directory", nfs_creat(other, at(theirs, "theirs"), 0644, &fh), EACCES);
  expect_ok(nfs, "access cleanup", nfs_unlink(nfs, file));
}

static void test_mknod(void) {
  char path[PATH_BYTES_MAX];
  struct nfs_stat_64 st;

  at(path, "fifo");
  if (expect_ok(nfs, "mknod fifo", nfs_mknod(nfs, path, S_IFIFO | 0640, 0)) && stat_of(nfs, "mknod fifo: stat", path, &st)) {
    check("mknod fifo: type", S_ISFIFO(st.nfs_mode), "mode 0%" PRIo64 " is not a fifo", st.nfs_mode);
    check("mknod fifo: mode", (st.nfs_mode & 07777) == 0640, "mode 0%" PRIo64 ", expected 0640", st.nfs_mode & 07777);
    expect_ok(nfs, "unlink fifo", nfs_unlink(nfs, path));
  }
  at(path, "chardev");
  int rc = nfs_mknod(nfs, path, S_IFCHR | 0600, (int)makedev(1, 3));
  if (uid != 0) {
    expect_errno("mknod char device by non-root", rc, EPERM);
    return;
  }
  if (expect_ok(nfs, "mknod char device", rc) && stat_of(nfs, "mknod char device: stat", path, &st)) {
    check("mknod char device: type", S_ISCHR(st.nfs_mode), "mode 0%" PRIo64 " is not a char device", st.nfs_mode);
    check("mknod char device: rdev", major(st.nfs_rdev) == 1 && minor(st.nfs_rdev) == 3, "rdev %u:%u, expected 1:3",
          major(st.nfs_rdev), minor(st.nfs_rdev));
    expect_ok(nfs, "unlink char device", nfs_unlink(nfs, path));
  }
}

static void test_errors(void) {
  char file[PATH_BYTES_MAX];
  char dir[PATH_BYTES_MAX];
  char path[PATH_BYTES_MAX];
  struct nfs_stat_64 st;
  struct nfsfh *fh = NULL;

  at(file, "plain");
  at(dir, "full");
  if (!make_file("errors setup", file, "plain") || !expect_ok(nfs, "errors setup: mkdir", nfs_mkdir(nfs, dir))) return;
  join(path, dir, "inside");
  if (!make_file("errors setup", path, "inside")) return;

  char missing[PATH_BYTES_MAX];
  char other_name[PATH_BYTES_MAX];
  at(missing, "missing");
  at(other_name, "other");
  expect_errno("ENOENT: stat of a missing file", nfs_stat64(nfs, missing, &st), ENOENT);
  expect_errno("ENOENT: open of a missing file", nfs_open(nfs, missing, O_RDONLY, &fh), ENOENT);
  expect_errno("ENOENT: unlink of a missing file", nfs_unlink(nfs, missing), ENOENT);
  expect_errno("ENOENT: rmdir of a missing directory", nfs_rmdir(nfs, missing), ENOENT);
  expect_errno("ENOENT: rename of a missing file", nfs_rename(nfs, missing, other_name), ENOENT);
  expect_errno("EEXIST: O_EXCL create of an existing file", nfs_create(nfs, file, O_CREAT | O_EXCL | O_RDWR, 0644, &fh),
               EEXIST);
  expect_errno("EEXIST: mkdir of an existing directory", nfs_mkdir(nfs, dir), EEXIST);
  expect_errno("EEXIST: mkdir over a file", nfs_mkdir(nfs, file), EEXIST);
  expect_errno("EEXIST: link to an existing name", nfs_link(nfs, file, dir), EEXIST);
  expect_errno("ENOTEMPTY: rmdir of a non-empty directory", nfs_rmdir(nfs, dir), ENOTEMPTY);
  expect_errno("EISDIR: unlink of a directory", nfs_unlink(nfs, dir), EISDIR);
  expect_errno("EISDIR: rename a file over a directory", nfs_rename(nfs, file, dir), EISDIR);
  if (expect_ok(nfs, "open a directory read-only", nfs_open(nfs, dir, O_RDONLY, &fh))) {
    char buffer[16];
    /* libnfs's sync API turns every failed READ into EFAULT and drops the NFS status (ISDIR). */
    int rc = nfs_pread(nfs, fh, 0, sizeof(buffer), buffer);
    check("read of a directory fails", rc < 0, "returned %d, expected a failure (NFS3ERR_ISDIR)", rc);
    nfs_close(nfs, fh);
  }
  join(path, file, "below");
  expect_errno("ENOTDIR: stat below a file", nfs_stat64(nfs, path, &st), ENOTDIR);
  expect_errno("ENOTDIR: mkdir below a file", nfs_mkdir(nfs, path), ENOTDIR);
  expect_errno("ENOTDIR: rmdir of a file", nfs_rmdir(nfs, file), ENOTDIR);
  expect_errno("ENOTDIR: rename a directory over a file", nfs_rename(nfs, dir, file), ENOTDIR);
  check_content("failed calls changed nothing", file, "plain");

  join(path, dir, "inside");
  expect_ok(nfs, "errors cleanup", nfs_unlink(nfs, path));
  expect_ok(nfs, "errors cleanup", nfs_rmdir(nfs, dir));
  expect_ok(nfs, "errors cleanup", nfs_unlink(nfs, file));
}

static void test_cleanup(void) {
  struct nfs_stat_64 st;
  struct nfsdir *listing = NULL;
  char path[PATH_BYTES_MAX];

  expect_ok(nfs, "unlink", nfs_unlink(nfs, at(path, "file")));
  expect_errno("unlink: gone", nfs_stat64(nfs, path, &st), ENOENT);
  if (expect_ok(nfs, "opendir base at the end", nfs_opendir(nfs, base, &listing))) {
    int left = 0;
    struct nfsdirent *entry;
    while ((entry = nfs_readdir(nfs, listing)) != NULL) {
      if (strcmp(entry->name, ".") == 0 || strcmp(entry->name, "..") == 0) continue;
      printf("# left over: %s\n", entry->name);
      left++;
    }
    nfs_closedir(nfs, listing);
    check("every check cleaned up after itself", left == 0, "%d entries left in %s", left, base);
  }
  expect_ok(nfs, "rmdir base", nfs_rmdir(nfs, base));
  expect_errno("base is gone", nfs_stat64(nfs, base, &st), ENOENT);
}

int main(int argc, char **argv) {
  if (argc < 4 || argc > 5) {
    fprintf(stderr, "usage: %s URL UID GID [BASE]\n", argv[0]);
    return 2;
  }
  uid = atoi(argv[2]);
  gid = atoi(argv[3]);
  if (argc == 5) base = argv[4];
  setvbuf(stdout, NULL, _IOLBF, 0);

  nfs = mount_as(argv[1], uid, gid);
  if (nfs == NULL) return 2;
  pass("mount");
  int other_uid = uid == OTHER_UID ? OTHER_UID + 1 : OTHER_UID;
  other = mount_as(argv[1], other_uid, OTHER_GID);
  check("mount as another user", other != NULL, "mount as %d failed", other_uid);

  if (!expect_ok(nfs, "mkdir base", nfs_mkdir(nfs, base))) {
    printf("summary: %d checks passed, %d checks failed\n", passed, failed);
    return 1;
  }
  test_files();
  test_directories();
  test_rename();
  test_links();
  test_attributes();
  test_truncate();
  test_readdir();
  test_statvfs();
  test_access();
  test_mknod();
  test_errors();
  test_cleanup();

  if (other != NULL) {
    nfs_umount(other);
    nfs_destroy_context(other);
  }
  nfs_umount(nfs);
  nfs_destroy_context(nfs);
  printf("summary: %d checks passed, %d checks failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}
