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
 * a file being opened or released. */
void fs_evict_pin(struct fs_ctx *ctx, uint32_t layer, uint32_t first,
		  uint32_t count, bool pin);

/* ---- prefetch, background fill and recording (prefetch.c) ---- */

struct fs_prefetch {
	bool initialised; /* pace_lock is set up */
	/* The plan: profile chunks first, then the fill; immutable once
	 * the threads run. */
	struct index_profile_entry *plan;
	size_t n, cap;
	size_t n_profile; /* plan[0..n_profile) come from the profile */
	pthread_mutex_t take_lock; /* guards cursor */
	size_t cursor; /* next position to take */
	_Atomic uint64_t profile_done; /* positions handled, by part */
	_Atomic uint64_t fill_done;
	_Atomic uint64_t failed; /* positions whose chunk could not be had */
	_Atomic bool stop;
	_Atomic unsigned int running; /* threads not yet finished */
	pthread_t *threads;
	unsigned int n_threads;
	pthread_mutex_t pace_lock; /* guards pace_us */
	uint64_t pace_us; /* when the fill may next fetch (fill_rate) */
};

struct fs_record {
	bool on; /* -o record=FILE */
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
	_Atomic uint64_t bytes_fetched; /* blob bytes read for chunks */
};

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
	struct fs_cache cache; /* see struct fs_cache */
	struct fs_evict evict; /* see struct fs_evict */
	struct fs_prefetch prefetch; /* see struct fs_prefetch */
	struct fs_record record; /* see struct fs_record */
	/* Reads from programs in progress: prefetch waits while non-zero. */
	_Atomic unsigned int reads_active;
	struct fs_stats stats; /* atomic counters */
};

/*
 * context.c: opens the image named by @opts, maps every layer's index,
 * opens the blobs, builds the merged tree and opens the cache directory.
 * Failures are printed to stderr (which layer, what failed) and returned
 * as a negative errno.  @opts is borrowed and must outlive the context.
 */
int fs_ctx_open(const struct fs_options *opts, struct fs_ctx **ret_ctx);
/* Frees everything fs_ctx_open() made; NULL is accepted. */
void fs_ctx_free(struct fs_ctx *ctx);

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
struct fs_worker {
	struct fs_uring *ring; /* NULL: not yet made, or io_uring refused */
	int ring_tried; /* ring creation was attempted */
	ZSTD_DCtx *dctx;
	struct fs_buf zframe; /* a compressed chunk frame */
	struct fs_buf span; /* frames of several chunks, one request */
	struct fs_buf chunk; /* a decompressed or verified chunk */
	struct fs_buf reply; /* replies served from memory, readdir */
	struct fuse_bufvec *bufv; /* fd-backed read replies */
	size_t bufv_cap; /* struct fuse_buf slots in bufv */
	char err[512]; /* the last remote fetch's message */
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

/* Makes room for @n buffers in the worker's bufvec.  -ENOMEM. */
int fs_worker_reserve_bufv(struct fs_worker *worker, size_t n);

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

/* The lock stripe of the cache file of content @sha256 (invariant 4 in
 * cache.c): held for every check, publish and removal of that file. */
pthread_mutex_t *fs_cache_stripe(struct fs_cache *cache,
				 const uint8_t *sha256);

/*
 * Returns in *ret_fd a new read-only descriptor holding exactly the
 * chunk's tar_len verified bytes from offset 0, fetching the chunk first
 * when it is not cached.  @last_wanted (>= @chunk_no) is the last chunk
 * the caller is about to read: from a server, missing chunks up to it
 * that follow in the blob are fetched in the same request.  The caller closes it.  May block while another
 * thread fetches the same content.  Returns 0, -EIO (logged) or -ENOMEM.
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
 * Why: every read opens the chunk's file anew (invariant 6 in cache.c), so
 * the kernel's readahead state never survives from one 128 KiB FUSE read
 * to the next, and a cold sequential read would wait for the disk once
 * per request.
 */
void fs_cache_hint(struct fs_ctx *ctx, uint32_t layer, uint32_t chunk_no,
		   int fd);

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
