/* Helpers shared by the libnfs test programs: mounting, paths, deterministic file content. */
#ifndef FLOTILLA_TEST_LIBNFS_COMMON_H
#define FLOTILLA_TEST_LIBNFS_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <nfsc/libnfs.h>

#define PATH_BYTES_MAX 1024
/* Every call is bounded: a server that stops answering fails the call instead of hanging the test. */
#define RPC_TIMEOUT_MS 30000

/* DIR/NAME into `buffer` (PATH_BYTES_MAX bytes); the paths here are short, so a longer one is a bug. */
static inline const char *join(char *buffer, const char *dir, const char *name) {
  int length = snprintf(buffer, PATH_BYTES_MAX, "%s/%s", dir, name);
  if (length < 0 || length >= PATH_BYTES_MAX) {
    fprintf(stderr, "path %s/%s is too long\n", dir, name);
    exit(2);
  }
  return buffer;
}

/* Byte `offset + i` of the deterministic stream `seed`, for i in [0, length). */
static inline void fill_pattern(unsigned char *data, size_t length, uint64_t offset, uint32_t seed) {
  for (size_t i = 0; i < length; i++) {
    uint64_t x = (offset + i) * 0x9E3779B97F4A7C15ull + seed;
    x ^= x >> 29;
    data[i] = (unsigned char)(x * 0xBF58476D1CE4E5B9ull >> 56);
  }
}

/* Mounts the export named by a libnfs directory URL with AUTH_SYS credentials; NULL (and a message) on failure. */
static inline struct nfs_context *mount_as(const char *url_text, int uid, int gid) {
  struct nfs_context *ctx = nfs_init_context();
  if (ctx == NULL) {
    fprintf(stderr, "nfs_init_context failed\n");
    return NULL;
  }
  struct nfs_url *url = nfs_parse_url_dir(ctx, url_text);
  if (url == NULL) {
    fprintf(stderr, "bad URL %s: %s\n", url_text, nfs_get_error(ctx));
    nfs_destroy_context(ctx);
    return NULL;
  }
  nfs_set_uid(ctx, uid);
  nfs_set_gid(ctx, gid);
  nfs_set_timeout(ctx, RPC_TIMEOUT_MS);
  /* No client-side caching of directories: every lookup and listing goes to the server. */
  nfs_set_dircache(ctx, 0);
  int rc = nfs_mount(ctx, url->server, url->path);
  if (rc < 0) {
    fprintf(stderr, "mount %s as %d:%d failed: %s\n", url_text, uid, gid, nfs_get_error(ctx));
    nfs_destroy_url(url);
    nfs_destroy_context(ctx);
    return NULL;
  }
  nfs_destroy_url(url);
  return ctx;
}

#endif
