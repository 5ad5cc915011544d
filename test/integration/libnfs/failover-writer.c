/*
 * A client that keeps writing through a failover, on libnfs's async API with auto-reconnect.
 *
 *   failover-writer write  URL FILE SECONDS BLOCK_BYTES
 *   failover-writer verify URL FILE ACKED BLOCK_BYTES
 *
 * write: creates FILE (opened O_SYNC, so every WRITE is FILE_SYNC) and writes block after block of
 * deterministic content, one at a time, with a COMMIT after every COMMIT_EVERY blocks, for SECONDS.
 * A failed call is counted and the same block is sent again; a block counts as acknowledged only
 * when the server said so. It measures the gaps between consecutive replies (the stall a failover
 * costs this client) and ends with one JSON line:
 *   {"acked":N,"errors":E,"stall_ms_max":X,"stall_end_ms":T,"gaps":[[start_ms,end_ms],...]}
 * (times in ms since the first write; gaps of more than GAP_REPORT_MS, at most GAPS_MAX of them).
 * Exit 0; 2 if no reply came for NO_REPLY_MS_MAX; 3 on a setup failure.
 *
 * verify: reads blocks 0..ACKED-1 back and checks each; prints {"verified":N,"bad":[...]} and exits
 * 0 only if every block is intact.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <time.h>

#include "common.h"

#define SEED 0xF0F1u
#define COMMIT_EVERY 16
#define GAP_REPORT_MS 300.0
#define GAPS_MAX 64
#define NO_REPLY_MS_MAX 60000.0
#define RETRY_DELAY_MS 20.0
#define BLOCK_BYTES_MAX (1024 * 1024)

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000.0 + ts.tv_nsec / 1e6;
}

struct writer {
  struct nfs_context *nfs;
  struct nfsfh *fh;
  unsigned char *block;
  uint64_t block_bytes;
  uint64_t next;        /* the block being written (or committed after) */
  uint64_t acked;       /* blocks acknowledged: 0..acked-1 */
  int in_flight;        /* a call is outstanding */
  int committing;       /* the outstanding call is a COMMIT */
  double start;
  double last_reply;
  double retry_at;      /* after a failure, the next call waits until then */
  double stall_max;
  double stall_end;
  long errors;
  double gaps[GAPS_MAX][2];
  int gap_count;
};

static void replied(struct writer *w) {
  double now = now_ms();
  double gap = now - w->last_reply;
  if (gap > w->stall_max) {
    w->stall_max = gap;
    w->stall_end = now - w->start;
  }
  if (gap > GAP_REPORT_MS && w->gap_count < GAPS_MAX) {
    w->gaps[w->gap_count][0] = w->last_reply - w->start;
    w->gaps[w->gap_count][1] = now - w->start;
    w->gap_count++;
  }
  w->last_reply = now;
}

static void failed(struct writer *w, const char *what, int status, void *data) {
  w->errors++;
  if (w->errors <= 20) fprintf(stderr, "%s of block %llu failed (%d): %s\n", what, (unsigned long long)w->next, status, data == NULL ? "" : (const char *)data);
  w->retry_at = now_ms() + RETRY_DELAY_MS;
}

static void commit_cb(int status, struct nfs_context *nfs, void *data, void *private_data) {
  (void)nfs;
  struct writer *w = private_data;
  w->in_flight = 0;
  if (status < 0) {
    failed(w, "COMMIT", status, data);
    return;
  }
  replied(w);
  w->committing = 0;
}

static void write_cb(int status, struct nfs_context *nfs, void *data, void *private_data) {
  (void)nfs;
  struct writer *w = private_data;
  w->in_flight = 0;
  if (status < 0 || (uint64_t)status != w->block_bytes) {
    failed(w, "WRITE", status, status < 0 ? data : "short write");
    return;
  }
  replied(w);
  w->acked = w->next + 1;
  w->next++;
  if (w->next % COMMIT_EVERY == 0) w->committing = 1;
  if (w->acked % 200 == 0) printf("ack %llu %.0f\n", (unsigned long long)w->acked, now_ms() - w->start);
}

static int issue(struct writer *w) {
  int rc;
  if (w->committing) {
    rc = nfs_fsync_async(w->nfs, w->fh, commit_cb, w);
  } else {
    fill_pattern(w->block, w->block_bytes, w->next * w->block_bytes, SEED);
    rc = nfs_pwrite_async(w->nfs, w->fh, w->next * w->block_bytes, w->block_bytes, w->block, write_cb, w);
  }
  if (rc < 0) {
    failed(w, w->committing ? "queueing COMMIT" : "queueing WRITE", rc, (void *)nfs_get_error(w->nfs));
    return -1;
  }
  w->in_flight = 1;
  return 0;
}

static int write_mode(const char *url, const char *file, double seconds, uint64_t block_bytes) {
  struct writer w;
  memset(&w, 0, sizeof w);
  w.block_bytes = block_bytes;
  w.block = malloc(block_bytes);
  w.nfs = mount_as(url, 0, 0);
  if (w.block == NULL || w.nfs == NULL) return 3;
  if (nfs_open2(w.nfs, file, O_WRONLY | O_CREAT | O_TRUNC | O_SYNC, 0644, &w.fh) < 0) {
    fprintf(stderr, "open %s failed: %s\n", file, nfs_get_error(w.nfs));
    return 3;
  }
  /* From here on a lost connection is made again, and the calls in flight are sent again. */
  nfs_set_autoreconnect(w.nfs, -1);
  w.start = w.last_reply = now_ms();
  double end = w.start + seconds * 1000.0;
  int exit_code = 0;
  for (;;) {
    double now = now_ms();
    if (!w.in_flight) {
      if (now >= end && !w.committing) break;
      if (now >= w.retry_at) issue(&w);
    }
    if (now - w.last_reply > NO_REPLY_MS_MAX) {
      fprintf(stderr, "no reply for %.0f ms: giving up\n", now - w.last_reply);
      exit_code = 2;
      break;
    }
    struct pollfd pfd = {.fd = nfs_get_fd(w.nfs), .events = (short)nfs_which_events(w.nfs)};
    int ready = poll(&pfd, 1, 5);
    if (ready < 0 && errno != EINTR) {
      perror("poll");
      return 3;
    }
    /* Also with no event: libnfs runs its timers (timeouts, reconnects) from here. */
    if (nfs_service(w.nfs, ready > 0 ? pfd.revents : 0) < 0) {
      fprintf(stderr, "the connection failed for good: %s\n", nfs_get_error(w.nfs));
      exit_code = 2;
      break;
    }
  }
  /* A run that ends still waiting has stalled until now, too. */
  replied(&w);
  printf("{\"acked\":%llu,\"errors\":%ld,\"stall_ms_max\":%.1f,\"stall_end_ms\":%.1f,\"gaps\":[",
         (unsigned long long)w.acked, w.errors, w.stall_max, w.stall_end);
  for (int i = 0; i < w.gap_count; i++) printf("%s[%.1f,%.1f]", i == 0 ? "" : ",", w.gaps[i][0], w.gaps[i][1]);
  printf("]}\n");
  fflush(stdout);
  if (exit_code == 0) nfs_close(w.nfs, w.fh);
  nfs_destroy_context(w.nfs);
  free(w.block);
  return exit_code;
}

static int verify_mode(const char *url, const char *file, uint64_t acked, uint64_t block_bytes) {
  struct nfs_context *nfs = mount_as(url, 0, 0);
  if (nfs == NULL) return 3;
  struct nfsfh *fh;
  if (nfs_open(nfs, file, O_RDONLY, &fh) < 0) {
    fprintf(stderr, "open %s failed: %s\n", file, nfs_get_error(nfs));
    return 3;
  }
  unsigned char *want = malloc(block_bytes);
  unsigned char *got = malloc(block_bytes);
  if (want == NULL || got == NULL) return 3;
  uint64_t bad[8];
  int bad_count = 0;
  uint64_t bad_total = 0;
  for (uint64_t i = 0; i < acked; i++) {
    fill_pattern(want, block_bytes, i * block_bytes, SEED);
    int n = nfs_pread(nfs, fh, i * block_bytes, block_bytes, got);
    if (n != (int)block_bytes || memcmp(want, got, block_bytes) != 0) {
      if (bad_count < 8) bad[bad_count++] = i;
      bad_total++;
    }
  }
  printf("{\"verified\":%llu,\"bad_total\":%llu,\"bad\":[", (unsigned long long)(acked - bad_total), (unsigned long long)bad_total);
  for (int i = 0; i < bad_count; i++) printf("%s%llu", i == 0 ? "" : ",", (unsigned long long)bad[i]);
  printf("]}\n");
  nfs_close(nfs, fh);
  nfs_destroy_context(nfs);
  free(want);
  free(got);
  return bad_total == 0 ? 0 : 1;
}

int main(int argc, char **argv) {
  if (argc != 6) {
    fprintf(stderr, "usage: %s write URL FILE SECONDS BLOCK_BYTES | verify URL FILE ACKED BLOCK_BYTES\n", argv[0]);
    return 3;
  }
  uint64_t block_bytes = strtoull(argv[5], NULL, 10);
  if (block_bytes == 0 || block_bytes > BLOCK_BYTES_MAX) {
    fprintf(stderr, "BLOCK_BYTES must be 1 to %d\n", BLOCK_BYTES_MAX);
    return 3;
  }
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (strcmp(argv[1], "write") == 0) return write_mode(argv[2], argv[3], strtod(argv[4], NULL), block_bytes);
  if (strcmp(argv[1], "verify") == 0) return verify_mode(argv[2], argv[3], strtoull(argv[4], NULL, 10), block_bytes);
  fprintf(stderr, "unknown mode %s\n", argv[1]);
  return 3;
}
