/*
 * nfs-tool: single steps through libnfs that the integration tests script around a server.
 *
 *   nfs-tool URL UID GID mkfiles DIR COUNT     create empty files DIR/e00000 .. in creation order
 *   nfs-tool URL UID GID mkdir PATH MODE       mkdir, then chmod to MODE (octal)
 *   nfs-tool URL UID GID write PATH SIZE SEED  create/truncate, write SIZE pattern bytes, fsync (COMMIT)
 *   nfs-tool URL UID GID verify PATH SIZE SEED the file holds exactly those SIZE pattern bytes
 *   nfs-tool URL UID GID stat PATH             prints type=... mode=0... uid=N gid=N size=N nlink=N
 *   nfs-tool URL UID GID lstat PATH            the same, of a symbolic link itself
 *   nfs-tool URL UID GID create PATH           exclusive create of an empty file (CREATE), close
 *   nfs-tool URL UID GID syncwrite PATH SIZE SEED  create, write SIZE pattern bytes as FILE_SYNC, close
 *   nfs-tool URL UID GID rename FROM TO | link FROM TO | symlink TARGET PATH | chmod PATH MODE
 *   nfs-tool URL UID GID remove PATH | rmdir PATH
 *   nfs-tool URL UID GID absent PATH           succeeds only if PATH does not exist (NOENT)
 *
 * URL is a libnfs URL of the export's root. Exit status: 0 done, 1 the operation failed (the reason,
 * with libnfs's message, on stderr), 2 bad usage or no mount.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <nfsc/libnfs.h>

#include "common.h"

#define CHUNK_BYTES (1 << 20)

static struct nfs_context *nfs;

static int failed_call(const char *what, const char *path, int rc) {
  fprintf(stderr, "%s %s failed: %d (%s): %s\n", what, path, rc, strerror(-rc), nfs_get_error(nfs));
  return 1;
}

static int make_files(const char *dir, long count) {
  /* "/" names the export's root; the entries are then "/e00000", not "//e00000". */
  const char *prefix = strcmp(dir, "/") == 0 ? "" : dir;
  char name[32];
  char path[PATH_BYTES_MAX];
  for (long i = 0; i < count; i++) {
    struct nfsfh *fh = NULL;
    snprintf(name, sizeof(name), "e%05ld", i);
    join(path, prefix, name);
    int rc = nfs_create(nfs, path, O_CREAT | O_EXCL | O_WRONLY, 0644, &fh);
    if (rc < 0) return failed_call("create", path, rc);
    rc = nfs_close(nfs, fh);
    if (rc < 0) return failed_call("close", path, rc);
  }
  printf("made %ld files in %s\n", count, dir);
  return 0;
}

static int make_dir(const char *path, int mode) {
  int rc = nfs_mkdir2(nfs, path, mode);
  if (rc < 0) return failed_call("mkdir", path, rc);
  rc = nfs_chmod(nfs, path, mode);
  if (rc < 0) return failed_call("chmod", path, rc);
  return 0;
}

/* sync: every write goes out FILE_SYNC (O_SYNC), so acknowledged means on stable storage without a
 * COMMIT; otherwise UNSTABLE writes and an fsync (COMMIT) at the end. */
static int write_file(const char *path, uint64_t size, uint32_t seed, int sync) {
  struct nfsfh *fh = NULL;
  int rc = nfs_create(nfs, path, O_CREAT | O_TRUNC | O_WRONLY | (sync ? O_SYNC : 0), 0644, &fh);
  if (rc < 0) return failed_call("create", path, rc);
  unsigned char *chunk = malloc(CHUNK_BYTES);
  for (uint64_t offset = 0; offset < size; offset += CHUNK_BYTES) {
    size_t length = size - offset < CHUNK_BYTES ? (size_t)(size - offset) : CHUNK_BYTES;
    fill_pattern(chunk, length, offset, seed);
    rc = nfs_pwrite(nfs, fh, offset, length, chunk);
    if (rc != (int)length) {
      free(chunk);
      return failed_call("pwrite", path, rc < 0 ? rc : -EIO);
    }
  }
  free(chunk);
  if (!sync) {
    rc = nfs_fsync(nfs, fh);
    if (rc < 0) return failed_call("fsync", path, rc);
  }
  rc = nfs_close(nfs, fh);
  if (rc < 0) return failed_call("close", path, rc);
  printf("wrote %s %" PRIu64 " bytes to %s\n", sync ? "FILE_SYNC" : "and committed", size, path);
  return 0;
}

static int create_file(const char *path) {
  struct nfsfh *fh = NULL;
  int rc = nfs_create(nfs, path, O_CREAT | O_EXCL | O_WRONLY, 0644, &fh);
  if (rc < 0) return failed_call("create", path, rc);
  rc = nfs_close(nfs, fh);
  return rc < 0 ? failed_call("close", path, rc) : 0;
}

static int absent(const char *path) {
  struct nfs_stat_64 st;
  int rc = nfs_stat64(nfs, path, &st);
  if (rc == -ENOENT) return 0;
  if (rc < 0) return failed_call("stat", path, rc);
  fprintf(stderr, "%s exists\n", path);
  return 1;
}

static int checked(const char *what, const char *path, int rc) {
  return rc < 0 ? failed_call(what, path, rc) : 0;
}

static int verify_file(const char *path, uint64_t size, uint32_t seed) {
  struct nfs_stat_64 st;
  int rc = nfs_stat64(nfs, path, &st);
  if (rc < 0) return failed_call("stat", path, rc);
  if (st.nfs_size != size) {
    fprintf(stderr, "%s is %" PRIu64 " bytes, expected %" PRIu64 "\n", path, st.nfs_size, size);
    return 1;
  }
  struct nfsfh *fh = NULL;
  rc = nfs_open(nfs, path, O_RDONLY, &fh);
  if (rc < 0) return failed_call("open", path, rc);
  unsigned char *expected = malloc(CHUNK_BYTES);
  unsigned char *actual = malloc(CHUNK_BYTES);
  int status = 0;
  for (uint64_t offset = 0; offset < size && status == 0; offset += CHUNK_BYTES) {
    size_t length = size - offset < CHUNK_BYTES ? (size_t)(size - offset) : CHUNK_BYTES;
    fill_pattern(expected, length, offset, seed);
    rc = nfs_pread(nfs, fh, offset, length, actual);
    if (rc != (int)length) {
      status = failed_call("pread", path, rc < 0 ? rc : -EIO);
    } else if (memcmp(expected, actual, length) != 0) {
      size_t i = 0;
      while (expected[i] == actual[i]) i++;
      fprintf(stderr, "%s differs at byte %" PRIu64 ": 0x%02x, expected 0x%02x\n", path, offset + i, actual[i],
              expected[i]);
      status = 1;
    }
  }
  free(expected);
  free(actual);
  nfs_close(nfs, fh);
  if (status == 0) printf("verified %" PRIu64 " bytes of %s\n", size, path);
  return status;
}

static const char *type_name(uint64_t mode) {
  switch (mode & S_IFMT) {
    case S_IFREG: return "reg";
    case S_IFDIR: return "dir";
    case S_IFLNK: return "lnk";
    case S_IFCHR: return "chr";
    case S_IFBLK: return "blk";
    case S_IFSOCK: return "sock";
    case S_IFIFO: return "fifo";
    default: return "unknown";
  }
}

static int stat_path(const char *path, int follow) {
  struct nfs_stat_64 st;
  int rc = follow ? nfs_stat64(nfs, path, &st) : nfs_lstat64(nfs, path, &st);
  if (rc < 0) return failed_call("stat", path, rc);
  printf("type=%s mode=0%" PRIo64 " uid=%" PRIu64 " gid=%" PRIu64 " size=%" PRIu64 " nlink=%" PRIu64 "\n",
         type_name(st.nfs_mode), st.nfs_mode & 07777, st.nfs_uid, st.nfs_gid, st.nfs_size, st.nfs_nlink);
  return 0;
}

static int usage(const char *program) {
  fprintf(stderr,
          "usage: %s URL UID GID mkfiles DIR COUNT | mkdir PATH MODE | write PATH SIZE SEED |"
          " verify PATH SIZE SEED | stat PATH | lstat PATH | create PATH | syncwrite PATH SIZE SEED | rename FROM TO |"
          " link FROM TO | symlink TARGET PATH | chmod PATH MODE | remove PATH | rmdir PATH | absent PATH\n",
          program);
  return 2;
}

static int run(int argc, char **argv) {
  const char *command = argv[4];
  if (strcmp(command, "mkfiles") == 0 && argc == 7) return make_files(argv[5], strtol(argv[6], NULL, 10));
  if (strcmp(command, "mkdir") == 0 && argc == 7) return make_dir(argv[5], (int)strtol(argv[6], NULL, 8));
  if (strcmp(command, "write") == 0 && argc == 8) {
    return write_file(argv[5], strtoull(argv[6], NULL, 10), (uint32_t)strtoul(argv[7], NULL, 10), 0);
  }
  if (strcmp(command, "verify") == 0 && argc == 8) {
    return verify_file(argv[5], strtoull(argv[6], NULL, 10), (uint32_t)strtoul(argv[7], NULL, 10));
  }
  if (strcmp(command, "stat") == 0 && argc == 6) return stat_path(argv[5], 1);
  if (strcmp(command, "lstat") == 0 && argc == 6) return stat_path(argv[5], 0);
  if (strcmp(command, "create") == 0 && argc == 6) return create_file(argv[5]);
  if (strcmp(command, "syncwrite") == 0 && argc == 8) {
    return write_file(argv[5], strtoull(argv[6], NULL, 10), (uint32_t)strtoul(argv[7], NULL, 10), 1);
  }
  if (strcmp(command, "rename") == 0 && argc == 7) return checked("rename", argv[5], nfs_rename(nfs, argv[5], argv[6]));
  if (strcmp(command, "link") == 0 && argc == 7) return checked("link", argv[5], nfs_link(nfs, argv[5], argv[6]));
  if (strcmp(command, "symlink") == 0 && argc == 7) return checked("symlink", argv[6], nfs_symlink(nfs, argv[5], argv[6]));
  if (strcmp(command, "chmod") == 0 && argc == 7) {
    return checked("chmod", argv[5], nfs_chmod(nfs, argv[5], (int)strtol(argv[6], NULL, 8)));
  }
  if (strcmp(command, "remove") == 0 && argc == 6) return checked("remove", argv[5], nfs_unlink(nfs, argv[5]));
  if (strcmp(command, "rmdir") == 0 && argc == 6) return checked("rmdir", argv[5], nfs_rmdir(nfs, argv[5]));
  if (strcmp(command, "absent") == 0 && argc == 6) return absent(argv[5]);
  return usage(argv[0]);
}

int main(int argc, char **argv) {
  if (argc < 6) return usage(argv[0]);
  nfs = mount_as(argv[1], atoi(argv[2]), atoi(argv[3]));
  if (nfs == NULL) return 2;
  int status = run(argc, argv);
  nfs_umount(nfs);
  nfs_destroy_context(nfs);
  return status;
}
