/* SPDX-License-Identifier: MIT */
/*
 * fs_internal.h - the daemon's shared state and the contracts between the
 * files of fs/.  Not for other modules: they use fs/fs.h.
 *
 * Everything reached from struct fs_ctx is built before the FUSE session
 * starts and is immutable afterwards, except the fields marked otherwise
 * (atomics, the chunk cache's striped locks and the per-thread workers).
 */
#ifndef IMGFS_FS_INTERNAL_H
#define IMGFS_FS_INTERNAL_H

#define FUSE_USE_VERSION 34

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>

#include <fuse_lowlevel.h>
#include <zstd.h>

#include "fs/fs.h"
#include "index/image.h"
#include "index/index.h"
#include "fs/remote.h"
#include "index/tree.h"

/* The image never changes under a mount, so the kernel may keep names and
 * attributes for as long as it likes. */
#define FS_TIMEOUT 86400.0

#define FS_BLOCK_SIZE 4096

/* Lock stripes of the chunk cache; a power of two. */
#define FS_CACHE_STRIPES 256

/* A read reply names at most this many cache files; a read touching more
 * (tiny chunks) is copied into memory instead, so that one request never
 * holds an unbounded number of descriptors. */
#define FS_READ_MAX_FDS 64

/* The largest read the kernel sends (FUSE_MAX_MAX_PAGES pages). */
#define FS_READ_MAX (1u << 20)
/* A spliced read reply names at most this many cache files. */
#define FS_SPLICE_PIECES 16

/* The max_read of every mount (ops.c): FS_READ_MAX, or less when the
 * pipes this process may make cannot hold a spliced reply of that size
 * and FS_SPLICE_PIECES pieces (fs.pipe-max-size is 1 MiB without
 * CAP_SYS_RESOURCE).  The same in the mount options and at INIT. */
unsigned int fs_read_max(void);

/* The kernel's read-ahead on a mount, in KiB, when root may set it: four
 * chunks of a large file (read.c). */
#define FS_KERNEL_READAHEAD_KB 4096

/* At most this many chunks, and this many blob bytes, in one request. */
#define FS_SPAN_MAX_CHUNKS 32
#define FS_SPAN_MAX_BYTES (16u << 20)

/* A chunk whose fetch failed fails at once for this long: the kernel
 * retries a failed readahead page by page, and readers queued behind a
 * failing fetch would each wait out a whole deadline of their own. */
#define FS_FAIL_HOLD_MS 2000

static inline uint64_t fs_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- counters (the FS_STATS_XATTR text) ---- */

/* Upper bounds of the chunk fetch time histogram, in microseconds, and
 * their count (metrics.c); one more bucket counts the slower ones. */
#define FS_HIST_BOUNDS_US                                               \
	{ 100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, \
	  250000, 500000, 1000000, 2500000, 5000000, 10000000 }
#define FS_HIST_BUCKETS 16

/* A latency histogram: counts[i] holds the observations at most bound i
 * (not cumulative), counts[FS_HIST_BUCKETS] the rest.  Atomic. */
struct fs_hist {
	_Atomic uint64_t counts[FS_HIST_BUCKETS + 1];
	_Atomic uint64_t sum_us;
};

/* Counts one observation of @us microseconds in @h. */
void fs_hist_observe(struct fs_hist *h, uint64_t us);

static inline uint64_t fs_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* All atomic, updated with relaxed ordering: they are statistics and order
 * nothing. */
struct fs_stats {
	_Atomic uint64_t blob_bytes_read;
	_Atomic uint64_t blob_reads;
	_Atomic uint64_t chunks_fetched;
	_Atomic uint64_t cache_hits;
	_Atomic uint64_t cache_misses;
	_Atomic uint64_t bytes_served;
	_Atomic uint64_t read_errors;
	_Atomic uint64_t cache_evicted_bytes;
	/* Failures by kind, each also logged where it happens: */
	_Atomic uint64_t fetch_errors; /* blob or server could not be read */
	_Atomic uint64_t corrupt_errors; /* bytes that are not the chunk */
	_Atomic uint64_t cache_errors; /* a cache file could not be used */
	/* Time to read a chunk's frame (or a span of frames) from the blob
	 * on local disk or from the server. */
	struct fs_hist fetch_local;
	struct fs_hist fetch_remote;
};

#define fs_stat_add(ctx, field, n)                                      \
	atomic_fetch_add_explicit(&(ctx)->stats.field, (uint64_t)(n),   \
				  memory_order_relaxed)

/* ---- chunk cache (cache.c) ---- */

struct fs_cache {
	bool opened; /* immutable: fs_cache_open() ran, fields are valid */
	char *dir; /* immutable: absolute path of the cache directory */
	int chunks_fd; /* immutable: DIR/chunks, holding the shards */
	int tmp_fd; /* immutable: DIR/tmp, where files are written */
	/* Stripe (hash of the chunk's SHA-256) guards every check, delete
	 * and publish of the cache file of that content. */
	pthread_mutex_t stripes[FS_CACHE_STRIPES];
	uint32_t n_layers; /* immutable */
	/* verified[layer]: atomic bitmap, one bit per chunk of the layer,
	 * set once the chunk's cache file is known good in this process. */
	_Atomic uint64_t **verified;
	/* failed[layer][chunk]: when a fetch of the chunk last failed, in ms
	 * since the cache was opened (+1; 0: never).  Written under the
	 * chunk's stripe. */
	_Atomic uint32_t **failed;
	uint64_t opened_ms; /* immutable: CLOCK_MONOTONIC at open */
};

/* ---- the cache's size cap (evict.c) ---- */

struct evict_slot;
struct fs_ctx;

struct fs_evict {
	uint64_t max; /* immutable: the cap in bytes; 0: none, all off */
	bool initialised; /* immutable: lock and cond are set up */
	bool started; /* immutable once serving: the thread runs */
	_Atomic uint64_t bytes; /* estimated size of the cache */
	/* used[layer][chunk]: last use, ms since the cache opened (+1). */
	_Atomic uint32_t **used;
	/* pins[layer][chunk]: open files whose data the chunk holds. */
	_Atomic uint32_t **pins;
	struct evict_slot *slots; /* immutable: chunks by SHA-256 prefix */
	size_t n_slots; /* immutable */
	pthread_t thread;
	pthread_mutex_t lock; /* guards wanted and stop */
	pthread_cond_t cond; /* signalled when wanted or stop is set */
	bool wanted; /* a round is due */
	bool stop; /* the thread is to end */
};

/* Sets up the cap of @max bytes (0: no cap, nothing else happens) after
 * the cache opened.  -ENOMEM. */
int fs_evict_open(struct fs_ctx *ctx, uint64_t max);
/* Starts the evictor thread; call in the process that serves (after the
 * daemon forked).  Its first round measures the cache.  -errno. */
int fs_evict_start(struct fs_ctx *ctx);
/* Stops the thread and frees what fs_evict_open() made; safe on a
 * context whose cap was never set up. */
void fs_evict_close(struct fs_ctx *ctx);
/* Records a use of a chunk (its cache file was read or written). */
void fs_evict_used(struct fs_ctx *ctx, uint32_t layer, uint32_t chunk_no);
/* Counts @size new bytes published in the cache; wakes the evictor when
 * the cache is over its cap. */
void fs_evict_stored(struct fs_ctx *ctx, uint64_t size);
/* Pins (@pin) or unpins @count chunks from @first of @layer: the data of
 * a file being opened or released.  XXX: files opened before a supervised
 * restart were pinned by the previous daemon only, so the cap may evict
 * their chunks (a later read fetches them again); unpins never go below
 * zero for them. */
void fs_evict_pin(struct fs_ctx *ctx, uint32_t layer, uint32_t first,
		  uint32_t count, bool pin);

/* ---- prefetch, background fill and recording (prefetch.c) ---- */

/* Chunks [first, last] of a layer to fetch for a program's read-ahead. */
struct fs_urgent {
	uint32_t layer, first, last;
};

#define URGENT_MAX 4096

struct fs_prefetch {
	bool initialised; /* the locks are set up */
	/* The urgent queue: a ring of URGENT_MAX; NULL without read-ahead. */
	pthread_mutex_t urgent_lock; /* guards urgent, its head and n */
	pthread_cond_t urgent_cond; /* signalled on new urgent work, stop */
	struct fs_urgent *urgent;
	size_t urgent_head, urgent_n;
	_Atomic uint64_t **queued; /* per layer, a bit per chunk: queued */
	_Atomic uint64_t readahead_chunks; /* chunks asked for by it */
	_Atomic bool plan_logged;
	/* The plan: profile chunks first, then the fill; immutable once
	 * the threads run. */
	struct index_profile_entry *plan;
	size_t n, cap;
	size_t n_profile; /* plan[0..n_profile) come from the profile */
	uint64_t **in_profile; /* per layer, a bit per chunk; immutable */
	pthread_mutex_t take_lock; /* guards cursor */
	size_t cursor; /* next position to take */
	_Atomic size_t cursor_seen; /* a copy of cursor to read unlocked */
	/* Fill positions: plan index of chunk 0 of each layer; immutable.
	 * NULL when there is no fill. */
	size_t *layer_base;
	_Atomic uint64_t last_read_ms; /* a program's last read */
	_Atomic uint64_t follow_until_ms; /* the program reads the fill's way */
	_Atomic unsigned int ids; /* numbers the threads */
	_Atomic uint64_t profile_done; /* positions handled, by part */
	_Atomic uint64_t fill_done;
	_Atomic uint64_t failed; /* positions whose chunk could not be had */
	_Atomic bool stop;
	pthread_t *threads;
	unsigned int n_threads;
	pthread_mutex_t pace_lock; /* guards pace_us */
	uint64_t pace_us; /* when the fill may next fetch (fill_rate) */
};

struct fs_record {
	bool on; /* -o record=FILE */
	int fd; /* the file, open from the start; -1 once written */
	pthread_mutex_t lock; /* guards entries, n, cap */
	_Atomic uint64_t **seen; /* per layer, a bit per chunk: recorded */
	struct index_profile_entry *entries;
	size_t n, cap;
};

/* Plans and starts the prefetch threads (call after the daemon forked).
 * Nothing to do is not an error.  -ENOMEM or -errno of pthread_create. */
int fs_prefetch_start(struct fs_ctx *ctx);
/* Stops and joins them; safe when they never started. */
void fs_prefetch_stop(struct fs_ctx *ctx);
/* Before serving a program's read of @len bytes at @off of @entry (in
 * @layer): when it misses the cache, queues the read-ahead. */
void fs_prefetch_read_ahead(struct fs_ctx *ctx, uint32_t layer,
			    const struct index_entry *entry, uint64_t off,
			    size_t len);
/* A program's read missed the cache at this chunk: steers the fill. */
void fs_prefetch_note_miss(struct fs_ctx *ctx, uint32_t layer,
			   uint32_t chunk);
/* Sets up recording when opts->record_file is set.  -ENOMEM. */
int fs_record_open(struct fs_ctx *ctx);
/* Notes a program's read of a chunk: the first one is recorded. */
void fs_record_touch(struct fs_ctx *ctx, uint32_t layer, uint32_t chunk);
/* Writes the recorded profile and frees the recorder (errors logged). */
int fs_record_close(struct fs_ctx *ctx);

/* ---- the daemon ---- */

struct fs_layer {
	const struct index_image_layer *desc; /* immutable, in ctx->image */
	struct index_layer_map *map; /* immutable; owned */
	const struct index_reader *reader; /* immutable; map->reader */
	int blob_fd; /* immutable; positioned reads only; -1 when remote */
	/* immutable: chunks of the layers before this one, so that
	 * chunk_base + chunk numbers every chunk of the image once */
	size_t chunk_base;
	_Atomic uint64_t bytes_fetched; /* blob bytes read for chunks */
	_Atomic uint64_t reads; /* blob reads (requests, when remote) */
};

/* ---- the Prometheus text file (metrics.c) ---- */

struct fs_metrics;

/* Starts the thread that rewrites opts->metrics_file every interval with
 * the counters of the @n mounts in @ctxs (borrowed; they outlive the
 * writer); *ret_m stays NULL when no file is asked for.  -errno
 * (logged). */
int fs_metrics_start(struct fs_ctx *const *ctxs, unsigned int n,
		     const struct fs_options *opts, struct fs_metrics **ret_m);
/* Stops the thread after a last rewrite and frees @m; NULL is accepted. */
void fs_metrics_stop(struct fs_metrics *m);

/* ---- open cache files (fdcache.c) ---- */

struct fd_slot;

struct fs_fdcache {
	size_t cap; /* immutable: slots; 0: the table is off */
	pthread_mutex_t lock; /* guards everything below */
	uint32_t *slot_of; /* [chunk key]: slot + 1; 0: not open */
	struct fd_slot *slots;
	size_t hand; /* the clock hand */
	/* slots holding a descriptor; atomic for the status reader */
	_Atomic size_t open;
};

/* Sets up the table after the layers are open: at most 8192 slots, and
 * half of RLIMIT_NOFILE (the soft limit raised to the hard one) shared
 * by the tables of all mounts.  Call before threads serve.  -ENOMEM, or
 * -EMFILE (logged) when the limit is under 64. */
int fs_fdcache_open(struct fs_ctx *ctx);
/* Closes every descriptor; no reader may hold one. */
void fs_fdcache_close(struct fs_ctx *ctx);
/* Gives each of the @n mounts of the daemon an equal part of the budget,
 * before any serves (one mount could take it all otherwise). */
void fs_fdcache_share(struct fs_ctx *const *ctxs, unsigned int n);
/* A held descriptor of the chunk's verified cache file, or -1. */
int fs_fdcache_get(struct fs_ctx *ctx, uint32_t layer, uint32_t chunk_no);
/* Offers @fd (of the chunk's verified cache file; the call takes it) to
 * the table and returns the descriptor to use, held: @fd or one the table
 * already had. */
int fs_fdcache_add(struct fs_ctx *ctx, uint32_t layer, uint32_t chunk_no,
		   int fd);
/* Gives back a descriptor from fs_cache_chunk_fd(): releases the hold,
 * or closes it when the table does not own it. */
void fs_fdcache_put(struct fs_ctx *ctx, uint32_t layer, uint32_t chunk_no,
		    int fd);
/* Closes every idle descriptor and the busy ones at their last put. */
void fs_fdcache_flush(struct fs_ctx *ctx);

/* Where the last read of an inode ended, for spotting sequential reads
 * (read.c); slot ino % FS_READ_STREAMS. */
struct fs_read_stream {
	_Atomic uint64_t ino;
	_Atomic uint64_t next;
};
#define FS_READ_STREAMS 64
/* A read this close to where the last one ended continues it. */
#define FS_READ_STREAM_SLACK (4u << 20)

struct fs_ctx {
	const struct fs_options *opts; /* immutable; borrowed from caller */
	struct index_image *image; /* immutable; owned */
	struct fs_remote *remote; /* owned; NULL for a local layout */
	uint32_t n_layers; /* immutable */
	struct fs_layer *layers; /* immutable; owned, n_layers */
	const struct index_reader **readers; /* immutable; owned array */
	struct index_tree *tree; /* immutable; owned */
	uint64_t n_inodes; /* immutable */
	uint64_t file_bytes; /* immutable: sizes of regular files */
	uint64_t blobs_size; /* immutable: sum of layer blob sizes */
	uint64_t index_bytes; /* immutable: sum of index sizes */
	size_t n_chunks; /* immutable: chunks of all layers */
	struct fs_cache cache; /* see struct fs_cache */
	struct fs_fdcache fdcache; /* see struct fs_fdcache */
	struct fs_evict evict; /* see struct fs_evict */
	struct fs_prefetch prefetch; /* see struct fs_prefetch */
	struct fs_record record; /* see struct fs_record */
	const char *mountpoint; /* immutable once mounted; borrowed */
	/* The FUSE_INIT handler ran: the session is set up (supervise.c). */
	_Atomic bool init_done;
	/* Set at INIT: OPEN / OPENDIR are answered ENOSYS (see ops_init). */
	_Atomic bool no_open;
	_Atomic bool no_opendir;
	/* Set at INIT: the largest pipe a spliced reply may use; 0: no
	 * splicing (see read_splice_fits). */
	_Atomic size_t splice_max;
	struct fs_read_stream streams[FS_READ_STREAMS];
	/* The first read raised the kernel's read-ahead (read.c). */
	_Atomic bool readahead_tuned;
	struct fs_stats stats; /* atomic counters */
};

/* Numbers chunk @chunk_no of @layer among all chunks of the image. */
static inline size_t fs_ctx_chunk_key(const struct fs_ctx *ctx,
				      uint32_t layer, uint32_t chunk_no)
{
	return ctx->layers[layer].chunk_base + chunk_no;
}

/*
 * context.c: opens the image named by @opts, maps every layer's index,
 * opens the blobs, builds the merged tree and opens the cache directory.
 * Failures are printed to stderr (which layer, what failed) and returned
 * as a negative errno.  @opts is borrowed and must outlive the context.
 */
int fs_ctx_open(const struct fs_options *opts, struct fs_ctx **ret_ctx);
/* Frees everything fs_ctx_open() made; NULL is accepted. */
void fs_ctx_free(struct fs_ctx *ctx);

/* ---- running as a service (mountpoint.c, detach.c, pidfile.c) ---- */

/* Checks that @path can be mounted on: it exists, is a directory, is not
 * a mount already nor a dead FUSE mount, and (unless @nonempty) holds
 * nothing that the mount would hide.  Logs the reason and returns
 * -ENOENT, -ENOTDIR, -EBUSY, -ENOTCONN, -ENOTEMPTY or another -errno;
 * else 0 with the absolute path in *ret_path (the caller frees it). */
int fs_mountpoint_check(const char *path, bool nonempty, char **ret_path);

/* The device number of the FUSE mount on top at absolute @path, from
 * /proc/self/mountinfo.  -ENOENT when there is none. */
int fs_mountpoint_dev(const char *path, unsigned int *ret_major,
		      unsigned int *ret_minor);

/* A pipe (both ends close-on-exec) and a fork: *ret_pid is 0 in the
 * child, the child's pid in the parent; both hold both ends.  -errno,
 * with nothing left open, when either fails. */
int fs_fork_pipe(int ret_fds[2], pid_t *ret_pid);

/* Forks; the parent stays inside and exits with the status the child
 * sends through fs_detach_done() (1 if it dies first).  Returns in the
 * child only, in a new session, with the pipe's end in *ret_ready_fd;
 * -errno when the fork failed (nothing forked). */
int fs_detach_begin(int *ret_ready_fd);
/* Sends @status (0: serving) to the waiting parent and closes @ready_fd
 * (nothing when it is -1). */
void fs_detach_done(int ready_fd, int status);
/* Points stdio at /dev/null and changes to "/", once the daemon logs to
 * syslog: the terminal may go away. */
void fs_detach_quiet(void);

/* Writes our pid to @path (via a temporary name and a rename) and hands
 * back the absolute path for fs_pidfile_remove().  Logged, -errno. */
int fs_pidfile_write(const char *path, char **ret_path);
/* Removes the file while it still names this process; frees @path.
 * NULL is accepted. */
void fs_pidfile_remove(char *path);

/* ---- the FUSE session (daemon.c) and its handover (supervise.c) ---- */

/* A new low-level session with the mount options for @opts, serving
 * fs_ops with @userdata (NULL: one that is only mounted, never run).
 * Logged; -EINVAL or -ENOMEM. */
int fs_session_create(const struct fs_options *opts, void *userdata,
		      struct fuse_session **ret_se);

/* Runs the loops of the @n mounted sessions @ses, each in a thread, with
 * @cfg; returns when all are unmounted (0) or on SIGTERM, SIGINT or
 * SIGHUP (the signal's number, after ending every loop).  Blocks those
 * signals in the calling thread.  -errno when a loop failed. */
int fs_serve_sessions(struct fuse_session *const *ses, unsigned int n,
		      struct fuse_loop_config *cfg);

/* Keeps the mount of @opts across restarts of the daemon: mounts it,
 * then starts `imgtool mount` on the mounted descriptor and starts it
 * again when it dies.  Returns like fs_run(). */
int fs_supervise_run(const struct fs_options *opts);

/* In a daemon started by the supervisor, after fuse_session_mount() on
 * "/dev/fd/N": replays the FUSE_INIT request the kernel sent the first
 * daemon, so that libfuse takes the connection as set up, then asks the
 * kernel to send again the requests a dead daemon had taken but not
 * answered.  Logged; -errno. */
int fs_supervise_attach(struct fs_ctx *ctx, struct fuse_session *se);

/* ---- per-thread worker state (worker.c) ---- */

/* A growable byte buffer, reused across requests. */
struct fs_buf {
	uint8_t *data;
	size_t size;
};

/*
 * State owned by one FUSE worker thread, so the read path neither locks
 * nor allocates per request.  While fs_uring_read()/fs_uring_write() run,
 * the buffer they were given belongs to the ring; both return only after
 * reaping every completion, so no buffer outlives its I/O.
 */
struct fs_uring_io;

struct fs_worker {
	struct fs_uring *ring; /* NULL: not yet made, or io_uring refused */
	int ring_tried; /* ring creation was attempted */
	ZSTD_DCtx *dctx;
	struct fs_buf zframe; /* a compressed chunk frame */
	struct fs_buf span; /* frames of several chunks, one request */
	struct fs_buf chunk; /* a decompressed or verified chunk */
	struct fs_buf reply; /* replies served from memory, readdir */
	struct fuse_bufvec *bufv; /* fd-backed read replies */
	/* A read's pieces: descriptors, offsets, where they go in reply */
	struct fs_uring_io *pieces;
	uint32_t *piece_chunks; /* the chunk of each piece */
	size_t bufv_cap; /* slots in bufv and in pieces */
	char err[512]; /* the last remote fetch's message */
	bool prefetch; /* a prefetch thread's: its misses are not a program's */
	bool read_seq; /* the read being served continues a sequential one */
};

/* Creates the thread-specific key; call once before serving. */
int fs_worker_setup(void);
/* Frees the calling thread's worker and deletes the key; call after every
 * worker thread has ended. */
void fs_worker_teardown(void);

/* The calling thread's worker, made on first use.  -ENOMEM. */
int fs_worker_get(struct fs_worker **ret_worker);

/* The worker's ring, made on first use; NULL means use pread/pwrite (the
 * first refusal is logged once per process). */
struct fs_uring *fs_worker_ring(struct fs_worker *worker);

/* Grows @buf to hold at least @size bytes; contents are not kept. */
int fs_buf_reserve(struct fs_buf *buf, size_t size);

/* Makes room for @n pieces in the worker's bufvec and pieces.  -ENOMEM. */
int fs_worker_reserve_bufv(struct fs_worker *worker, size_t n);

/* Grows worker->reply to @size bytes, registered with the worker's ring
 * (io_uring fixed buffer) when the ring takes it.  -ENOMEM. */
int fs_worker_reserve_reply(struct fs_worker *worker, size_t size);

/* ---- io_uring with a plain fallback (uring.c) ---- */

struct fs_uring;

/* A ring of @entries entries.  Returns -errno from io_uring_queue_init. */
int fs_uring_new(unsigned int entries, struct fs_uring **ret_ring);
void fs_uring_free(struct fs_uring *ring);

/*
 * Reads @len bytes at @off of @fd into @buf, resubmitting short reads.
 * @ring may be NULL (pread).  Returns the bytes read, fewer than @len only
 * at end of file, or a negative errno.
 */
ssize_t fs_uring_read(struct fs_uring *ring, int fd, void *buf, size_t len,
		      uint64_t off);

/* One read of fs_uring_read_all(); @len is at most 1 GiB. */
struct fs_uring_io {
	int fd;
	void *buf;
	uint32_t len;
	uint64_t off;
};

/*
 * Reads every @ios[i] in full, submitting up to the ring's size at once.
 * Returns 0, -EIO when a file is shorter than its read, or -errno.
 */
int fs_uring_read_all(struct fs_uring *ring, const struct fs_uring_io *ios,
		      size_t n);

/* Registers @buf as the ring's fixed buffer (NULL: none), replacing the
 * one before; reads that fall inside it use it.  -errno when refused
 * (RLIMIT_MEMLOCK), and then none is registered. */
int fs_uring_register(struct fs_uring *ring, void *buf, size_t len);

/* Writes all @len bytes of @buf at @off of @fd.  Returns 0 or -errno. */
int fs_uring_write(struct fs_uring *ring, int fd, const void *buf,
		   size_t len, uint64_t off);

/* ---- fetching a chunk from its blob (fetch.c) ---- */

/*
 * Reads chunk @chunk_no of layer @layer from the blob, decompresses it
 * into worker->chunk and checks its SHA-256 against the index.  On success
 * worker->chunk.data holds exactly chunk->tar_len verified bytes.  Every
 * failure is logged (layer digest, chunk, blob offset, cause) and returned
 * as -EIO (cannot read), -EBADMSG (read, but wrong bytes) or -ENOMEM.
 */
int fs_fetch_chunk(struct fs_ctx *ctx, struct fs_worker *worker,
		   uint32_t layer, uint32_t chunk_no,
		   const struct index_chunk *chunk);

/* Reads the frames of @n chunks that lie back to back in the blob of
 * @layer (chunks[0] first) into worker->span with one request.  Returns 0,
 * -EIO (logged) or -ENOMEM. */
int fs_fetch_span(struct fs_ctx *ctx, struct fs_worker *worker,
		  uint32_t layer, uint32_t first_no,
		  const struct index_chunk *chunks, uint32_t n);

/* Decompresses and verifies the frame at @frame (chunk->blob_len bytes)
 * into worker->chunk, as fs_fetch_chunk() does after reading it.  Bytes
 * that do not decode to the chunk the index names give -EBADMSG (logged);
 * fs_fetch_chunk() returns the same for them. */
int fs_fetch_decode(struct fs_ctx *ctx, struct fs_worker *worker,
		    uint32_t layer, uint32_t chunk_no,
		    const struct index_chunk *chunk, const uint8_t *frame);

/* ---- chunk cache (cache.c) ---- */

/* Opens (creating as needed) DIR/chunks and DIR/tmp, and removes temp
 * files left by daemons that died.  Errors are printed to stderr. */
int fs_cache_open(struct fs_cache *cache, const char *dir,
		  const struct fs_layer *layers, uint32_t n_layers);
/* Closes what fs_cache_open() opened; safe on a zeroed struct. */
void fs_cache_close(struct fs_cache *cache);

/* Whether the chunk is known good in the cache (no lock, no I/O). */
bool fs_cache_has(const struct fs_ctx *ctx, uint32_t layer, uint32_t chunk_no);

/* The lock stripe of the cache file of content @sha256 (invariant 4 in
 * cache.c): held for every check, publish and removal of that file. */
pthread_mutex_t *fs_cache_stripe(struct fs_cache *cache,
				 const uint8_t *sha256);

/*
 * Returns in *ret_fd a held read-only descriptor holding exactly the
 * chunk's tar_len verified bytes from offset 0, fetching the chunk first
 * when it is not cached.  @last_wanted (>= @chunk_no) is the last chunk
 * the caller is about to read: from a server, missing chunks up to it
 * that follow in the blob are fetched in the same request.  The caller
 * gives the descriptor back with fs_fdcache_put(), never close().  May
 * block while another thread fetches the same content.  Returns 0, -EIO (logged) or -ENOMEM.
 */
int fs_cache_chunk_fd(struct fs_ctx *ctx, struct fs_worker *worker,
		      uint32_t layer, uint32_t chunk_no, uint32_t last_wanted,
		      int *ret_fd);

/*
 * Starts reading chunk @chunk_no's cache file into the page cache in the
 * background (POSIX_FADV_WILLNEED), from @fd when it is >= 0 (borrowed),
 * else from a descriptor of its own, and only when this process has
 * already verified that file; a missing, unverified or out-of-range chunk
 * is left alone.  Fetches nothing and never fails.
 *
 * Why: descriptors are shared by concurrent requests and chunk files are
 * read in FUSE-request pieces, so the kernel's readahead on a cache file
 * does not see one sequential stream, and a cold sequential read would
 * wait for the disk once per request.
 */
void fs_cache_hint(struct fs_ctx *ctx, uint32_t layer, uint32_t chunk_no,
		   int fd);

/* ---- decoding threads (pool.c) ---- */

/* Starts one thread per core (at most 16), in the process that serves;
 * fewer when the system refuses some (logged).  Returns 0. */
int fs_pool_start(void);
/* Ends the threads; no fs_pool_run() may be running. */
void fs_pool_stop(void);
/* Runs fn(arg, i) for every i < @n on the pool threads and the calling
 * thread, and returns when all have returned.  Without threads, or for
 * one item, the caller runs them all.  @fn must not call fs_pool_run(). */
void fs_pool_run(void (*fn)(void *arg, uint32_t i), void *arg, uint32_t n);

/* ---- the read path (read.c) ---- */

/* Answers a FUSE read of inode @ino (exactly one reply). */
void fs_read_reply(struct fs_ctx *ctx, fuse_req_t req, fuse_ino_t ino,
		   size_t size, off_t off);

/* ---- request handlers (ops.c, xattr.c) ---- */

extern const struct fuse_lowlevel_ops fs_ops;

/* Fills @st for inode @ino from @attr.  Returns 0 or -EIO for a kind a
 * tree never yields. */
int fs_attr_to_stat(fuse_ino_t ino, const struct index_tree_attr *attr,
		    struct stat *st);

void fs_op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
		    size_t size);
void fs_op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size);

/* Writes the FS_STATS_XATTR text into @buf; returns its length, which is
 * less than @size (it is truncated, never overflows). */
size_t fs_stats_format(const struct fs_ctx *ctx, char *buf, size_t size);

#endif
