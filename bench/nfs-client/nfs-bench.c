/*
 * nfs-bench: an NFSv3 load generator on libnfs's raw async RPC API, for bench/nfs.ts.
 *
 *   nfs-bench --host H --mount-port M --nfs-port N --export PATH --mode io|files|all
 *             [--mib N] [--chunk-kib K] [--files N] [--file-bytes B] [--inflight Q] [--tag T]
 *
 * It mounts PATH with MOUNT v3 MNT, then speaks NFSv3 over one TCP connection and keeps up to Q
 * calls in flight, issuing the next call from each reply's callback, so the server's speed is
 * measured rather than the client's round trips.
 *
 *   io:    CREATE a file, WRITE N MiB in K KiB UNSTABLE calls, COMMIT (timed together as "write"),
 *          READ it back in K KiB calls checking a stamp in every chunk ("read"), REMOVE it.
 *   files: MKDIR a directory, then three timed phases over N files: CREATE (GUARDED) each followed
 *          by a WRITE of B bytes ("create"), LOOKUP each checking its size ("stat"), REMOVE each
 *          ("remove"); RMDIR the directory.
 *
 * Output on stdout, one line each, for the driver to parse:
 *   info key=value ...
 *   result tag=T phase=NAME ops=N bytes=N seconds=S start_us=U end_us=U
 * where start_us and end_us are CLOCK_MONOTONIC microseconds (to cut a server's CPU profile to the
 * phase).
 * Errors go to stderr and exit 1; bad usage exits 2. A phase that makes no progress for
 * STALL_SECONDS_MAX fails rather than hangs.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <nfsc/libnfs.h>
#include <nfsc/libnfs-raw.h>
#include <nfsc/libnfs-raw-mount.h>
#include <nfsc/libnfs-raw-nfs.h>

#define KIB 1024u
#define MIB (1024u * 1024u)
#define STALL_SECONDS_MAX 60
#define INFLIGHT_MAX 256
#define FILE_BYTES_MAX 65536u
#define FH_BYTES_MAX 64u
#define NAME_BYTES_MAX 32u
#define STAMP_BYTES 8u

struct options {
	const char *host;
	const char *export_path;
	const char *mode;
	const char *tag;
	int mount_port;
	int nfs_port;
	uint64_t mib;
	uint32_t chunk_kib;
	uint64_t files;
	uint32_t file_bytes;
	uint32_t inflight;
};

struct fh {
	uint32_t len;
	char data[FH_BYTES_MAX];
};

/* A batch of similar calls, each issued from the previous one's reply, at most inflight at once. */
struct pipeline;
typedef int (*issue_fn)(struct pipeline *p, uint64_t index);

struct slot {
	struct pipeline *p;
	uint64_t index;
};

struct pipeline {
	struct rpc_context *rpc;
	const char *name;
	issue_fn issue;
	uint64_t total;
	uint64_t issued;
	uint64_t completed;
	uint32_t inflight;
	struct slot *slots;
	struct slot **free_slots; /* a stack: replies come back in any order */
	uint32_t free_count;
	int done;
};

/* One setup call waited for on its own. */
struct single {
	int done;
	int status;
	char error[256];
	struct fh *out; /* where a returned handle goes */
};

struct bench {
	struct rpc_context *rpc;
	struct options opt;
	struct fh root;
	struct fh file;
	struct fh dir;
	struct fh *file_fhs;
	char *chunk;
	char *small;
	uint32_t chunk_bytes;
	uint64_t progress_count;
};

static struct bench B;

static void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "nfs-bench[%s]: ", B.opt.tag ? B.opt.tag : "?");
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

static double now_seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Serves the connection until *done is set; fails on a socket error or a long stall. */
static void run_until(struct rpc_context *rpc, const int *done, const char *what)
{
	uint64_t seen = B.progress_count;
	double last_progress = now_seconds();
	while (!*done) {
		struct pollfd pfd = { .fd = rpc_get_fd(rpc), .events = (short)rpc_which_events(rpc) };
		int ready = poll(&pfd, 1, 1000);
		if (ready < 0) {
			if (errno == EINTR)
				continue;
			die("%s: poll: %s", what, strerror(errno));
		}
		if (rpc_service(rpc, ready == 0 ? 0 : pfd.revents) < 0)
			die("%s: %s", what, rpc_get_error(rpc));
		if (B.progress_count != seen) {
			seen = B.progress_count;
			last_progress = now_seconds();
		} else if (now_seconds() - last_progress > STALL_SECONDS_MAX) {
			die("%s: no reply for %d s", what, STALL_SECONDS_MAX);
		}
	}
}

static void fh_copy(struct fh *to, const char *data, u_int len, const char *what)
{
	if (len == 0 || len > FH_BYTES_MAX)
		die("%s: file handle of %u bytes", what, len);
	to->len = len;
	memcpy(to->data, data, len);
}

static nfs_fh3 fh3(struct fh *fh)
{
	nfs_fh3 out;
	out.data.data_len = fh->len;
	out.data.data_val = fh->data;
	return out;
}

/* ---- setup calls, one at a time ---- */

static void single_cb(struct rpc_context *rpc, int status, void *data, void *private_data)
{
	struct single *s = private_data;
	(void)rpc;
	s->done = 1;
	s->status = status;
	if (status != RPC_STATUS_SUCCESS)
		snprintf(s->error, sizeof s->error, "%s", data ? (const char *)data : "cancelled");
	B.progress_count++;
}

static void connect_to(struct rpc_context *rpc, int port, const char *what)
{
	struct single s = { 0 };
	if (rpc_connect_async(rpc, B.opt.host, port, single_cb, &s) != 0)
		die("connect %s: %s", what, rpc_get_error(rpc));
	run_until(rpc, &s.done, what);
	if (s.status != RPC_STATUS_SUCCESS)
		die("connect %s to %s:%d: %s", what, B.opt.host, port, s.error);
}

/* The callbacks' data points into the reply buffer: copy what is kept before returning. */
static void mnt_cb(struct rpc_context *rpc, int status, void *data, void *private_data)
{
	struct single *s = private_data;
	single_cb(rpc, status, data, private_data);
	if (status != RPC_STATUS_SUCCESS)
		return;
	mountres3 *res = data;
	if (res->fhs_status != MNT3_OK)
		die("MNT %s: mount status %d", B.opt.export_path, (int)res->fhs_status);
	fhandle3 *h = &res->mountres3_u.mountinfo.fhandle;
	fh_copy(s->out, h->fhandle3_val, h->fhandle3_len, "MNT");
}

static void mount_root(void)
{
	struct rpc_context *mrpc = rpc_init_context();
	if (!mrpc)
		die("rpc_init_context failed");
	connect_to(mrpc, B.opt.mount_port, "mount");
	struct single s = { .out = &B.root };
	if (rpc_mount3_mnt_async(mrpc, mnt_cb, (char *)B.opt.export_path, &s) != 0)
		die("MNT: %s", rpc_get_error(mrpc));
	run_until(mrpc, &s.done, "MNT");
	if (s.status != RPC_STATUS_SUCCESS)
		die("MNT %s: %s", B.opt.export_path, s.error);
	rpc_destroy_context(mrpc);
}

static void fsinfo_cb(struct rpc_context *rpc, int status, void *data, void *private_data)
{
	single_cb(rpc, status, data, private_data);
	if (status != RPC_STATUS_SUCCESS)
		return;
	FSINFO3res *res = data;
	if (res->status != NFS3_OK)
		die("FSINFO: status %d", (int)res->status);
	FSINFO3resok *ok = &res->FSINFO3res_u.resok;
	uint32_t chunk = B.opt.chunk_kib * KIB;
	if (ok->wtmax < chunk)
		chunk = ok->wtmax;
	if (ok->rtmax < chunk)
		chunk = ok->rtmax;
	B.chunk_bytes = chunk;
	printf("info tag=%s rtmax=%u wtmax=%u rtpref=%u wtpref=%u chunk=%u\n", B.opt.tag, ok->rtmax,
	       ok->wtmax, ok->rtpref, ok->wtpref, chunk);
}

static void fsinfo(void)
{
	FSINFO3args args = { .fsroot = fh3(&B.root) };
	struct single s = { 0 };
	if (rpc_nfs3_fsinfo_async(B.rpc, fsinfo_cb, &args, &s) != 0)
		die("FSINFO: %s", rpc_get_error(B.rpc));
	run_until(B.rpc, &s.done, "FSINFO");
	if (s.status != RPC_STATUS_SUCCESS)
		die("FSINFO: %s", s.error);
}

static void make_cb(struct rpc_context *rpc, int status, void *data, void *private_data)
{
	single_cb(rpc, status, data, private_data);
	if (status != RPC_STATUS_SUCCESS)
		return;
	/* CREATE3res and MKDIR3res share their layout up to the handle. */
	CREATE3res *res = data;
	if (res->status != NFS3_OK)
		die("CREATE/MKDIR: status %d", (int)res->status);
	post_op_fh3 *obj = &res->CREATE3res_u.resok.obj;
	if (!obj->handle_follows)
		die("CREATE/MKDIR: the server returned no handle");
	struct single *s = private_data;
	nfs_fh3 *h = &obj->post_op_fh3_u.handle;
	fh_copy(s->out, h->data.data_val, h->data.data_len, "CREATE/MKDIR");
}

static sattr3 mode_only(uint32_t mode)
{
	sattr3 attrs;
	memset(&attrs, 0, sizeof attrs);
	attrs.mode.set_it = 1;
	attrs.mode.set_mode3_u.mode = mode;
	return attrs;
}

static void make_object(struct fh *parent, const char *name, int is_dir, struct fh *out)
{
	struct single s = { .out = out };
	int rc;
	if (is_dir) {
		MKDIR3args args = { .where = { .dir = fh3(parent), .name = (char *)name },
				    .attributes = mode_only(0755) };
		rc = rpc_nfs3_mkdir_async(B.rpc, make_cb, &args, &s);
	} else {
		CREATE3args args;
		memset(&args, 0, sizeof args);
		args.where.dir = fh3(parent);
		args.where.name = (char *)name;
		args.how.mode = UNCHECKED;
		args.how.createhow3_u.obj_attributes = mode_only(0644);
		rc = rpc_nfs3_create_async(B.rpc, make_cb, &args, &s);
	}
	if (rc != 0)
		die("%s %s: %s", is_dir ? "MKDIR" : "CREATE", name, rpc_get_error(B.rpc));
	run_until(B.rpc, &s.done, name);
	if (s.status != RPC_STATUS_SUCCESS)
		die("%s %s: %s", is_dir ? "MKDIR" : "CREATE", name, s.error);
}

static void status_cb(struct rpc_context *rpc, int status, void *data, void *private_data)
{
	single_cb(rpc, status, data, private_data);
	if (status != RPC_STATUS_SUCCESS)
		return;
	/* Every NFSv3 result starts with its nfsstat3. */
	nfsstat3 st = *(nfsstat3 *)data;
	if (st != NFS3_OK)
		die("call failed with NFS status %d", (int)st);
}

static void unlink_object(struct fh *parent, const char *name, int is_dir)
{
	struct single s = { 0 };
	int rc;
	if (is_dir) {
		RMDIR3args args = { .object = { .dir = fh3(parent), .name = (char *)name } };
		rc = rpc_nfs3_rmdir_async(B.rpc, status_cb, &args, &s);
	} else {
		REMOVE3args args = { .object = { .dir = fh3(parent), .name = (char *)name } };
		rc = rpc_nfs3_remove_async(B.rpc, status_cb, &args, &s);
	}
	if (rc != 0)
		die("remove %s: %s", name, rpc_get_error(B.rpc));
	run_until(B.rpc, &s.done, name);
	if (s.status != RPC_STATUS_SUCCESS)
		die("remove %s: %s", name, s.error);
}

static void commit(struct fh *file)
{
	COMMIT3args args = { .file = fh3(file), .offset = 0, .count = 0 };
	struct single s = { 0 };
	if (rpc_nfs3_commit_async(B.rpc, status_cb, &args, &s) != 0)
		die("COMMIT: %s", rpc_get_error(B.rpc));
	run_until(B.rpc, &s.done, "COMMIT");
	if (s.status != RPC_STATUS_SUCCESS)
		die("COMMIT: %s", s.error);
}

/* ---- pipelines ---- */

static void pipeline_fill(struct pipeline *p)
{
	while (p->issued < p->total && p->issued - p->completed < p->inflight) {
		if (p->issue(p, p->issued) != 0)
			die("%s #%" PRIu64 ": %s", p->name, p->issued, rpc_get_error(p->rpc));
		p->issued++;
	}
	if (p->completed == p->total)
		p->done = 1;
}

static struct slot *slot_for(struct pipeline *p, uint64_t index)
{
	if (p->free_count == 0)
		die("%s: no free slot (a bug)", p->name);
	struct slot *slot = p->free_slots[--p->free_count];
	slot->p = p;
	slot->index = index;
	return slot;
}

/* Checks a reply's RPC status and returns its slot; the caller checks the NFS status. */
static struct slot *reply_slot(int status, void *data, void *private_data)
{
	struct slot *slot = private_data;
	if (status != RPC_STATUS_SUCCESS)
		die("%s #%" PRIu64 ": %s", slot->p->name, slot->index,
		    status == RPC_STATUS_CANCEL ? "cancelled" : (const char *)data);
	return slot;
}

static void op_done(struct slot *slot)
{
	struct pipeline *p = slot->p;
	p->free_slots[p->free_count++] = slot;
	p->completed++;
	B.progress_count++;
	pipeline_fill(p);
}

/* Runs the pipeline to its end; returns the start time (the end is now). */
static double run_pipeline(struct pipeline *p)
{
	struct slot *slots = calloc(p->inflight, sizeof *slots);
	struct slot **free_slots = calloc(p->inflight, sizeof *free_slots);
	if (!slots || !free_slots)
		die("out of memory");
	for (uint32_t i = 0; i < p->inflight; i++)
		free_slots[i] = &slots[i];
	p->slots = slots;
	p->free_slots = free_slots;
	p->free_count = p->inflight;
	p->issued = 0;
	p->completed = 0;
	p->done = p->total == 0;
	double start = now_seconds();
	pipeline_fill(p);
	run_until(p->rpc, &p->done, p->name);
	free(slots);
	free(free_slots);
	p->slots = NULL;
	p->free_slots = NULL;
	return start;
}

/* start and end are CLOCK_MONOTONIC seconds, the clock V8 stamps its CPU profile samples with. */
static void report(const char *phase, uint64_t ops, uint64_t bytes, double start, double end)
{
	printf("result tag=%s phase=%s ops=%" PRIu64 " bytes=%" PRIu64 " seconds=%.6f start_us=%.0f "
	       "end_us=%.0f\n",
	       B.opt.tag, phase, ops, bytes, end - start, start * 1e6, end * 1e6);
	fflush(stdout);
}

/* ---- io: one big file ---- */

static void stamp(char *chunk, uint64_t offset)
{
	memcpy(chunk, &offset, STAMP_BYTES);
}

static void write_cb(struct rpc_context *rpc, int status, void *data, void *private_data)
{
	(void)rpc;
	struct slot *slot = reply_slot(status, data, private_data);
	WRITE3res *res = data;
	if (res->status != NFS3_OK)
		die("WRITE #%" PRIu64 ": status %d", slot->index, (int)res->status);
	if (res->WRITE3res_u.resok.count != B.chunk_bytes)
		die("WRITE #%" PRIu64 ": short write of %u bytes", slot->index,
		    res->WRITE3res_u.resok.count);
	op_done(slot);
}

static int issue_write(struct pipeline *p, uint64_t index)
{
	uint64_t offset = index * B.chunk_bytes;
	stamp(B.chunk, offset); /* the call is encoded (copied) before this returns */
	WRITE3args args;
	memset(&args, 0, sizeof args);
	args.file = fh3(&B.file);
	args.offset = offset;
	args.count = B.chunk_bytes;
	args.stable = UNSTABLE;
	args.data.data_len = B.chunk_bytes;
	args.data.data_val = B.chunk;
	return rpc_nfs3_write_async(p->rpc, write_cb, &args, slot_for(p, index));
}

static void read_cb(struct rpc_context *rpc, int status, void *data, void *private_data)
{
	(void)rpc;
	struct slot *slot = reply_slot(status, data, private_data);
	READ3res *res = data;
	if (res->status != NFS3_OK)
		die("READ #%" PRIu64 ": status %d", slot->index, (int)res->status);
	READ3resok *ok = &res->READ3res_u.resok;
	if (ok->count != B.chunk_bytes || ok->data.data_len != B.chunk_bytes)
		die("READ #%" PRIu64 ": short read of %u bytes", slot->index, ok->count);
	uint64_t offset = slot->index * B.chunk_bytes;
	uint64_t seen;
	memcpy(&seen, ok->data.data_val, STAMP_BYTES);
	if (seen != offset || memcmp(ok->data.data_val + STAMP_BYTES, B.chunk + STAMP_BYTES,
				     B.chunk_bytes - STAMP_BYTES) != 0)
		die("READ #%" PRIu64 ": the data differs from what was written", slot->index);
	op_done(slot);
}

static int issue_read(struct pipeline *p, uint64_t index)
{
	READ3args args = { .file = fh3(&B.file), .offset = index * B.chunk_bytes,
			   .count = B.chunk_bytes };
	return rpc_nfs3_read_async(p->rpc, read_cb, &args, slot_for(p, index));
}

static void bench_io(void)
{
	uint64_t bytes = B.opt.mib * MIB;
	if (bytes % B.chunk_bytes != 0)
		die("%" PRIu64 " MiB is not a whole number of %u-byte chunks", B.opt.mib, B.chunk_bytes);
	B.chunk = malloc(B.chunk_bytes);
	if (!B.chunk)
		die("out of memory");
	for (uint32_t i = 0; i < B.chunk_bytes; i++)
		B.chunk[i] = (char)(i * 7 + (i >> 12));
	char name[NAME_BYTES_MAX];
	snprintf(name, sizeof name, "nfs-bench-io-%d", (int)getpid());
	make_object(&B.root, name, 0, &B.file);

	struct pipeline p = { .rpc = B.rpc, .name = "WRITE", .issue = issue_write,
			      .total = bytes / B.chunk_bytes, .inflight = B.opt.inflight };
	double start = run_pipeline(&p);
	commit(&B.file);
	report("write", p.total, bytes, start, now_seconds());

	struct pipeline r = { .rpc = B.rpc, .name = "READ", .issue = issue_read,
			      .total = bytes / B.chunk_bytes, .inflight = B.opt.inflight };
	start = run_pipeline(&r);
	report("read", r.total, bytes, start, now_seconds());

	unlink_object(&B.root, name, 0);
	free(B.chunk);
	B.chunk = NULL;
}

/* ---- files: many small files in one directory ---- */

static void file_name(char *out, uint64_t index)
{
	snprintf(out, NAME_BYTES_MAX, "f%07" PRIu64, index);
}

static void small_write_cb(struct rpc_context *rpc, int status, void *data, void *private_data)
{
	(void)rpc;
	struct slot *slot = reply_slot(status, data, private_data);
	WRITE3res *res = data;
	if (res->status != NFS3_OK)
		die("WRITE of file #%" PRIu64 ": status %d", slot->index, (int)res->status);
	op_done(slot);
}

static void create_cb(struct rpc_context *rpc, int status, void *data, void *private_data)
{
	struct slot *slot = reply_slot(status, data, private_data);
	CREATE3res *res = data;
	if (res->status != NFS3_OK)
		die("CREATE of file #%" PRIu64 ": status %d", slot->index, (int)res->status);
	post_op_fh3 *obj = &res->CREATE3res_u.resok.obj;
	if (!obj->handle_follows)
		die("CREATE of file #%" PRIu64 ": no handle returned", slot->index);
	struct fh *fh = &B.file_fhs[slot->index];
	fh_copy(fh, obj->post_op_fh3_u.handle.data.data_val, obj->post_op_fh3_u.handle.data.data_len,
		"CREATE");
	if (B.opt.file_bytes == 0) {
		op_done(slot);
		return;
	}
	WRITE3args args;
	memset(&args, 0, sizeof args);
	args.file = fh3(fh);
	args.offset = 0;
	args.count = B.opt.file_bytes;
	args.stable = UNSTABLE;
	args.data.data_len = B.opt.file_bytes;
	args.data.data_val = B.small;
	if (rpc_nfs3_write_async(rpc, small_write_cb, &args, slot) != 0)
		die("WRITE of file #%" PRIu64 ": %s", slot->index, rpc_get_error(rpc));
}

static int issue_create(struct pipeline *p, uint64_t index)
{
	char name[NAME_BYTES_MAX];
	file_name(name, index);
	CREATE3args args;
	memset(&args, 0, sizeof args);
	args.where.dir = fh3(&B.dir);
	args.where.name = name;
	args.how.mode = GUARDED;
	args.how.createhow3_u.g_obj_attributes = mode_only(0644);
	return rpc_nfs3_create_async(p->rpc, create_cb, &args, slot_for(p, index));
}

static void lookup_cb(struct rpc_context *rpc, int status, void *data, void *private_data)
{
	(void)rpc;
	struct slot *slot = reply_slot(status, data, private_data);
	LOOKUP3res *res = data;
	if (res->status != NFS3_OK)
		die("LOOKUP of file #%" PRIu64 ": status %d", slot->index, (int)res->status);
	post_op_attr *attrs = &res->LOOKUP3res_u.resok.obj_attributes;
	if (!attrs->attributes_follow)
		die("LOOKUP of file #%" PRIu64 ": no attributes returned", slot->index);
	if (attrs->post_op_attr_u.attributes.size != B.opt.file_bytes)
		die("LOOKUP of file #%" PRIu64 ": size %" PRIu64 ", expected %u", slot->index,
		    (uint64_t)attrs->post_op_attr_u.attributes.size, B.opt.file_bytes);
	op_done(slot);
}

static int issue_lookup(struct pipeline *p, uint64_t index)
{
	char name[NAME_BYTES_MAX];
	file_name(name, index);
	LOOKUP3args args = { .what = { .dir = fh3(&B.dir), .name = name } };
	return rpc_nfs3_lookup_async(p->rpc, lookup_cb, &args, slot_for(p, index));
}

static void remove_cb(struct rpc_context *rpc, int status, void *data, void *private_data)
{
	(void)rpc;
	struct slot *slot = reply_slot(status, data, private_data);
	REMOVE3res *res = data;
	if (res->status != NFS3_OK)
		die("REMOVE of file #%" PRIu64 ": status %d", slot->index, (int)res->status);
	op_done(slot);
}

static int issue_remove(struct pipeline *p, uint64_t index)
{
	char name[NAME_BYTES_MAX];
	file_name(name, index);
	REMOVE3args args = { .object = { .dir = fh3(&B.dir), .name = name } };
	return rpc_nfs3_remove_async(p->rpc, remove_cb, &args, slot_for(p, index));
}

static void bench_files(void)
{
	uint64_t n = B.opt.files;
	B.file_fhs = calloc(n ? n : 1, sizeof *B.file_fhs);
	B.small = malloc(B.opt.file_bytes ? B.opt.file_bytes : 1);
	if (!B.file_fhs || !B.small)
		die("out of memory");
	memset(B.small, 'a', B.opt.file_bytes);
	char dir[NAME_BYTES_MAX];
	snprintf(dir, sizeof dir, "nfs-bench-files-%d", (int)getpid());
	make_object(&B.root, dir, 1, &B.dir);

	struct pipeline c = { .rpc = B.rpc, .name = "CREATE", .issue = issue_create, .total = n,
			      .inflight = B.opt.inflight };
	double start = run_pipeline(&c);
	report("create", n, (uint64_t)n * B.opt.file_bytes, start, now_seconds());
	struct pipeline l = { .rpc = B.rpc, .name = "LOOKUP", .issue = issue_lookup, .total = n,
			      .inflight = B.opt.inflight };
	start = run_pipeline(&l);
	report("stat", n, 0, start, now_seconds());
	struct pipeline r = { .rpc = B.rpc, .name = "REMOVE", .issue = issue_remove, .total = n,
			      .inflight = B.opt.inflight };
	start = run_pipeline(&r);
	report("remove", n, 0, start, now_seconds());

	unlink_object(&B.root, dir, 1);
	free(B.file_fhs);
	free(B.small);
}

/* ---- command line ---- */

static void usage(const char *why)
{
	fprintf(stderr,
		"nfs-bench: %s\nusage: nfs-bench --host H --mount-port M --nfs-port N --export PATH "
		"--mode io|files|all [--mib N] [--chunk-kib K] [--files N] [--file-bytes B] "
		"[--inflight Q] [--tag T]\n",
		why);
	exit(2);
}

static uint64_t number(const char *text, const char *name, uint64_t min, uint64_t max)
{
	char *end;
	errno = 0;
	unsigned long long value = strtoull(text, &end, 10);
	if (errno != 0 || *end != '\0' || end == text || value < min || value > max) {
		char why[128];
		snprintf(why, sizeof why, "--%s wants a number in [%" PRIu64 ", %" PRIu64 "], got %s",
			 name, min, max, text);
		usage(why);
	}
	return value;
}

static void parse(int argc, char **argv, struct options *o)
{
	static const struct option longs[] = {
		{ "host", required_argument, 0, 'h' },	     { "mount-port", required_argument, 0, 'm' },
		{ "nfs-port", required_argument, 0, 'n' },   { "export", required_argument, 0, 'e' },
		{ "mode", required_argument, 0, 'o' },	     { "mib", required_argument, 0, 'b' },
		{ "chunk-kib", required_argument, 0, 'c' },  { "files", required_argument, 0, 'f' },
		{ "file-bytes", required_argument, 0, 's' }, { "inflight", required_argument, 0, 'q' },
		{ "tag", required_argument, 0, 't' },	     { 0, 0, 0, 0 },
	};
	*o = (struct options){ .host = "127.0.0.1", .mode = "all", .tag = "nfs", .mib = 1024,
			       .chunk_kib = 1024, .files = 10000, .file_bytes = 100, .inflight = 32 };
	int c;
	while ((c = getopt_long(argc, argv, "", longs, NULL)) != -1) {
		switch (c) {
		case 'h': o->host = optarg; break;
		case 'm': o->mount_port = (int)number(optarg, "mount-port", 1, 65535); break;
		case 'n': o->nfs_port = (int)number(optarg, "nfs-port", 1, 65535); break;
		case 'e': o->export_path = optarg; break;
		case 'o': o->mode = optarg; break;
		case 'b': o->mib = number(optarg, "mib", 1, 1u << 20); break;
		case 'c': o->chunk_kib = (uint32_t)number(optarg, "chunk-kib", 4, 1024); break;
		case 'f': o->files = number(optarg, "files", 0, 10000000); break;
		case 's': o->file_bytes = (uint32_t)number(optarg, "file-bytes", 0, FILE_BYTES_MAX); break;
		case 'q': o->inflight = (uint32_t)number(optarg, "inflight", 1, INFLIGHT_MAX); break;
		case 't': o->tag = optarg; break;
		default: usage("unknown option");
		}
	}
	if (optind != argc)
		usage("unexpected argument");
	if (!o->export_path || !o->mount_port || !o->nfs_port)
		usage("--export, --mount-port and --nfs-port are required");
	if (strcmp(o->mode, "io") != 0 && strcmp(o->mode, "files") != 0 && strcmp(o->mode, "all") != 0)
		usage("--mode must be io, files or all");
}

int main(int argc, char **argv)
{
	parse(argc, argv, &B.opt);
	setvbuf(stdout, NULL, _IOLBF, 0);
	mount_root();
	B.rpc = rpc_init_context();
	if (!B.rpc)
		die("rpc_init_context failed");
	connect_to(B.rpc, B.opt.nfs_port, "nfs");
	fsinfo();
	int all = strcmp(B.opt.mode, "all") == 0;
	if (all || strcmp(B.opt.mode, "io") == 0)
		bench_io();
	if (all || strcmp(B.opt.mode, "files") == 0)
		bench_files();
	rpc_destroy_context(B.rpc);
	return 0;
}
