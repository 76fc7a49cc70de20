/* SPDX-License-Identifier: MIT */
/*
 * cache.c - the persistent chunk cache on local disk.
 *
 * Design notes
 * ------------
 * Layout: DIR/chunks/<h0h1>/<h0..h63>, one file per chunk content, named
 * by the SHA-256 (lowercase hex) of the chunk's uncompressed bytes and
 * holding exactly those bytes.  DIR/tmp/<pid>.<tid> holds files being
 * written.  Content addressing lets layers and images that share a chunk
 * share its file.
 *
 * Invariants:
 * 1. A file appears under DIR/chunks only by rename() of a complete temp
 *    file whose bytes were verified against the index before they were
 *    written, so a torn write is never visible under a final name.
 * 2. The daemon serves a cache file only after this process has checked
 *    its SHA-256 once (a crash or power loss may have left a file with
 *    the right name and the wrong bytes: rename() is not a barrier for
 *    data).  The bit for (layer, chunk) in cache->verified records that
 *    check; it is only set, under the chunk's stripe lock, after the
 *    file was checked or published.
 * 3. A verified file is never modified in place; it is only replaced by
 *    rename() of another verified copy, so a descriptor opened on it (or
 *    an open-by-name after its bit is set) reads good bytes.
 * 4. Every check, delete and publish of the file of one content happens
 *    under stripe[hash(content)].  Keying the stripes by content rather
 *    than by (layer, chunk) is what makes invariant 3 hold when two
 *    chunks of different layers have the same bytes: one thread can never
 *    delete a file another is publishing.
 * 5. The lock is held across the fetch, so threads wanting the same
 *    chunk wait for the first and then find its file: each chunk is
 *    fetched once.  Different chunks in the same stripe also wait; with
 *    256 stripes that is rare and costs time, not correctness.
 * 6. Readers get a held descriptor per chunk per request from the table
 *    of open cache files (fdcache.c) and give it back after the reply.
 * 7. When the cache cannot be written (disk full, read-only) the chunk is
 *    served from a memfd: verified bytes, no cache entry, a warning.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/sha.h>

#include "fs/fs_internal.h"
#include "fs/log.h"

/* "ab/" + 64 hex digits + NUL */
#define CACHE_NAME_SIZE (3 + 64 + 1)

/* Disk trouble repeats on every new chunk. */
static struct fs_ratelimit cache_ratelimit = FS_RATELIMIT_INIT;

/* ---- names, stripes and the verified bits ---- */

static void cache_name(const uint8_t *sha256, char out[CACHE_NAME_SIZE])
{
	char hex[65];

	index_hex(sha256, 32, hex);
	snprintf(out, CACHE_NAME_SIZE, "%.2s/%s", hex, hex);
}

/* A SHA-256 is already uniform: its first bytes pick the stripe.  A
 * crafted index could make every chunk share a stripe; that serialises
 * its fetches but breaks nothing. */
pthread_mutex_t *fs_cache_stripe(struct fs_cache *cache,
				 const uint8_t *sha256)
{
	uint32_t h = (uint32_t)sha256[0] | (uint32_t)sha256[1] << 8;

	return &cache->stripes[h & (FS_CACHE_STRIPES - 1)];
}

static bool cache_verified(const struct fs_cache *cache, uint32_t layer,
			   uint32_t chunk_no)
{
	uint64_t w = atomic_load_explicit(&cache->verified[layer][chunk_no / 64],
					  memory_order_acquire);

	return w & (UINT64_C(1) << (chunk_no % 64));
}

bool fs_cache_has(const struct fs_ctx *ctx, uint32_t layer, uint32_t chunk_no)
{
	return cache_verified(&ctx->cache, layer, chunk_no);
}

/* Called with the chunk's stripe held (invariant 2). */
static void cache_set_verified(struct fs_cache *cache, uint32_t layer,
			       uint32_t chunk_no, bool on)
{
	_Atomic uint64_t *w = &cache->verified[layer][chunk_no / 64];
	uint64_t bit = UINT64_C(1) << (chunk_no % 64);

	if (on)
		atomic_fetch_or_explicit(w, bit, memory_order_release);
	else
		atomic_fetch_and_explicit(w, ~bit, memory_order_release);
}

/* Failure memory (FS_FAIL_HOLD_MS); both called with the stripe held. */
static void cache_set_failed(struct fs_cache *cache, uint32_t layer,
			     uint32_t chunk_no)
{
	uint32_t t = (uint32_t)(fs_now_ms() - cache->opened_ms) + 1;

	atomic_store_explicit(&cache->failed[layer][chunk_no], t ? t : 1,
			      memory_order_relaxed);
}

static bool cache_failed_recently(const struct fs_cache *cache,
				  uint32_t layer, uint32_t chunk_no)
{
	uint32_t t = atomic_load_explicit(&cache->failed[layer][chunk_no],
					  memory_order_relaxed);
	uint32_t now = (uint32_t)(fs_now_ms() - cache->opened_ms) + 1;

	/* Unsigned difference: right across the 49-day wrap too. */
	return t && now - t < FS_FAIL_HOLD_MS;
}

/* ---- a file found in the cache ---- */

/* Returns 1 when @fd holds exactly the chunk's bytes, 0 when it does not,
 * or a negative errno when it cannot be read. */
static int cache_check_file(struct fs_worker *worker, int fd,
			    const struct index_chunk *chunk)
{
	uint8_t md[SHA256_DIGEST_LENGTH];
	struct stat st;
	ssize_t n;
	int r;

	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size != chunk->tar_len)
		return 0;

	r = fs_buf_reserve(&worker->chunk, chunk->tar_len);
	if (r < 0)
		return r;
	n = fs_uring_read(fs_worker_ring(worker), fd, worker->chunk.data,
			  chunk->tar_len, 0);
	if (n < 0)
		return (int)n;
	if ((size_t)n != chunk->tar_len)
		return 0;

	SHA256(worker->chunk.data, chunk->tar_len, md);
	return memcmp(md, chunk->sha256, sizeof(md)) == 0;
}

/*
 * Opens the cached file of a chunk, checking it on first use (invariant
 * 2) and deleting it when it is bad.  Returns 1 with *ret_fd, 0 when
 * there is no good file, or a negative errno.  Stripe held.
 */
static int cache_open_existing(struct fs_cache *cache,
			       struct fs_worker *worker, uint32_t layer,
			       uint32_t chunk_no, const struct index_chunk *chunk,
			       const char *name, int *ret_fd)
{
	int fd, r;

	fd = openat(cache->chunks_fd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		r = errno == ENOENT ? 0 : -errno;
		/* Removed from outside since we checked it. */
		cache_set_verified(cache, layer, chunk_no, false);
		return r;
	}
	if (cache_verified(cache, layer, chunk_no))
		goto out;

	r = cache_check_file(worker, fd, chunk);
	if (r < 0)
		goto err_close;
	if (r == 0) {
		fs_log(LOG_WARNING, "removing corrupt cache file %s/chunks/%s",
		       cache->dir, name);
		unlinkat(cache->chunks_fd, name, 0);
		goto err_close;
	}
	cache_set_verified(cache, layer, chunk_no, true);

out:
	*ret_fd = fd;
	return 1;

err_close:
	close(fd);
	return r;
}

/* ---- storing a fetched chunk ---- */

/* Renames the temp file @tmp to @name, making the shard on first use. */
static int cache_publish(struct fs_cache *cache, const char *tmp,
			 const char *name)
{
	char shard[3] = { name[0], name[1], '\0' };

	if (renameat(cache->tmp_fd, tmp, cache->chunks_fd, name) == 0)
		return 0;
	if (errno != ENOENT)
		return -errno;
	if (mkdirat(cache->chunks_fd, shard, 0755) < 0 && errno != EEXIST)
		return -errno;
	if (renameat(cache->tmp_fd, tmp, cache->chunks_fd, name) < 0)
		return -errno;
	return 0;
}

/* Writes worker->chunk to a memfd: used when the disk refuses it. */
static int cache_memfd(struct fs_worker *worker,
		       const struct index_chunk *chunk, int *ret_fd)
{
	int fd, r;

	fd = memfd_create("imgfs-chunk", MFD_CLOEXEC);
	if (fd < 0)
		return -errno;
	r = fs_uring_write(fs_worker_ring(worker), fd, worker->chunk.data,
			   chunk->tar_len, 0);
	if (r < 0) {
		close(fd);
		return r;
	}
	*ret_fd = fd;
	return 0;
}

/*
 * Writes the verified chunk in worker->chunk to a temp file and renames
 * it into place.  Returns 1 when published, 0 when the bytes are only in
 * *ret_fd (an unlinked file or a memfd), or a negative errno.  Stripe
 * held.
 */
static int cache_store(struct fs_cache *cache, struct fs_worker *worker,
		       uint32_t layer, uint32_t chunk_no,
		       const struct index_chunk *chunk, const char *name,
		       int *ret_fd)
{
	char tmp[48];
	int fd, r;

	snprintf(tmp, sizeof(tmp), "%ld.%ld", (long)getpid(), (long)gettid());
	fd = openat(cache->tmp_fd, tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC,
		    0644);
	if (fd < 0) {
		r = -errno;
		goto err_memory;
	}
	r = fs_uring_write(fs_worker_ring(worker), fd, worker->chunk.data,
			   chunk->tar_len, 0);
	if (r < 0)
		goto err_unlink;
	r = cache_publish(cache, tmp, name);
	if (r < 0) {
		/* The descriptor still holds the verified bytes: serve them
		 * from the unlinked file. */
		unlinkat(cache->tmp_fd, tmp, 0);
		fs_log_limited(&cache_ratelimit, LOG_WARNING,
			       "cannot publish cache file %s/chunks/%s: %s",
			       cache->dir, name, fs_strerror(-r));
		*ret_fd = fd;
		return 0;
	}

	*ret_fd = fd;
	return 1;

err_unlink:
	unlinkat(cache->tmp_fd, tmp, 0);
	close(fd);
err_memory:
	fs_log_limited(&cache_ratelimit, LOG_WARNING,
		       "cannot write cache file for chunk %" PRIu32
		       " of layer %" PRIu32 " in %s: %s; serving it from memory",
		       chunk_no, layer, cache->dir, fs_strerror(-r));
	r = cache_memfd(worker, chunk, ret_fd);
	return r < 0 ? r : 0;
}

/* Stores the verified chunk in worker->chunk; returns its descriptor. */
static int cache_keep(struct fs_ctx *ctx, struct fs_worker *worker,
		      uint32_t layer, uint32_t chunk_no,
		      const struct index_chunk *chunk, int *ret_fd)
{
	char name[CACHE_NAME_SIZE];
	int r;

	cache_name(chunk->sha256, name);
	r = cache_store(&ctx->cache, worker, layer, chunk_no, chunk, name,
			ret_fd);
	if (r <= 0)
		fs_stat_add(ctx, cache_errors, 1);
	if (r < 0) {
		fs_log_limited(&cache_ratelimit, LOG_ERR,
			       "cannot keep chunk %" PRIu32 " of '%s': %s",
			       chunk_no, ctx->layers[layer].desc->digest,
			       fs_strerror(-r));
		return r == -ENOMEM ? r : -EIO;
	}
	if (r == 1) {
		cache_set_verified(&ctx->cache, layer, chunk_no, true);
		fs_evict_stored(ctx, chunk->tar_len);
	}
	return 0;
}

/* Chunks to fetch along with the first one, and the stripes they hold. */
struct cache_run {
	uint32_t n;
	struct index_chunk chunks[FS_SPAN_MAX_CHUNKS];
	pthread_mutex_t *locks[FS_SPAN_MAX_CHUNKS]; /* NULL: not ours */
};

/*
 * Extends @run (holding the first chunk, whose stripe the caller holds)
 * with the chunks after it, up to @last_wanted, that are missing from the
 * cache and follow it back to back in the blob.  Their stripes are only
 * tried, never waited for (that could deadlock against a thread growing a
 * run the other way); a stripe held elsewhere ends the run.
 */
static void cache_grow_run(struct fs_ctx *ctx, uint32_t layer,
			   uint32_t chunk_no, uint32_t last_wanted,
			   struct cache_run *run)
{
	const struct index_reader *reader = ctx->layers[layer].reader;
	uint32_t count = index_reader_chunk_count(reader);
	struct fs_cache *cache = &ctx->cache;
	pthread_mutex_t *first = fs_cache_stripe(cache, run->chunks[0].sha256);
	uint64_t bytes = run->chunks[0].blob_len;
	char name[CACHE_NAME_SIZE];

	for (uint32_t c = chunk_no + 1; c <= last_wanted && c < count &&
					run->n < FS_SPAN_MAX_CHUNKS; c++) {
		struct index_chunk *prev = &run->chunks[run->n - 1];
		struct index_chunk *next = &run->chunks[run->n];
		pthread_mutex_t *lock;
		bool held = false;

		index_reader_chunk(reader, c, next);
		if (next->blob_off != prev->blob_off + prev->blob_len ||
		    bytes + next->blob_len > FS_SPAN_MAX_BYTES ||
		    cache_verified(cache, layer, c))
			break;
		lock = fs_cache_stripe(cache, next->sha256);
		for (uint32_t i = 0; i < run->n; i++)
			held |= run->locks[i] == lock;
		held |= lock == first;
		if (!held && pthread_mutex_trylock(lock) != 0)
			break;
		cache_name(next->sha256, name);
		if (faccessat(cache->chunks_fd, name, F_OK, 0) == 0) {
			/* Cached already: served (and checked) on its own. */
			if (!held)
				pthread_mutex_unlock(lock);
			break;
		}
		run->locks[run->n] = held ? NULL : lock;
		bytes += next->blob_len;
		run->n++;
	}
}

/* Fetches one chunk and stores it.  Bytes that fail verification are
 * fetched once more from a server: they may have been damaged on the
 * way. */
static int cache_fill_one(struct fs_ctx *ctx, struct fs_worker *worker,
			  uint32_t layer, uint32_t chunk_no,
			  const struct index_chunk *chunk, int *ret_fd)
{
	int r;

	r = fs_fetch_chunk(ctx, worker, layer, chunk_no, chunk);
	if (r == -EBADMSG && ctx->remote)
		r = fs_fetch_chunk(ctx, worker, layer, chunk_no, chunk);
	if (r < 0)
		return r;
	return cache_keep(ctx, worker, layer, chunk_no, chunk, ret_fd);
}

/* The chunks of one fetched span, decoded on the pool (pool.c). */
struct cache_store_job {
	struct fs_ctx *ctx;
	uint32_t layer;
	uint32_t chunk_no; /* of run->chunks[0] */
	const struct cache_run *run;
	const uint8_t *frames[FS_SPAN_MAX_CHUNKS];
	int fds[FS_SPAN_MAX_CHUNKS];
	int results[FS_SPAN_MAX_CHUNKS];
};

/* Decodes, checks and stores chunk @i of the job, with the running
 * thread's own buffers and zstd context.  The caller holds the stripes. */
static void cache_store_one(void *arg, uint32_t i)
{
	struct cache_store_job *job = arg;
	const struct index_chunk *chunk = &job->run->chunks[i];
	struct fs_worker *worker;
	int r;

	job->fds[i] = -1;
	r = fs_worker_get(&worker);
	if (r >= 0)
		r = fs_fetch_decode(job->ctx, worker, job->layer,
				    job->chunk_no + i, chunk, job->frames[i]);
	if (r >= 0)
		r = cache_keep(job->ctx, worker, job->layer, job->chunk_no + i,
			       chunk, &job->fds[i]);
	job->results[i] = r;
}

/* Decodes and stores the chunks of @run, whose frames are in
 * worker->span, one per pool thread; *ret_fd gets the first one's
 * descriptor.  A later chunk that fails is simply fetched again when it
 * is read. */
static int cache_store_run(struct fs_ctx *ctx, struct fs_worker *worker,
			   uint32_t layer, uint32_t chunk_no,
			   const struct cache_run *run, int *ret_fd)
{
	struct cache_store_job job = { .ctx = ctx, .layer = layer,
				       .chunk_no = chunk_no, .run = run };
	const uint8_t *frame = worker->span.data;

	for (uint32_t i = 0; i < run->n; i++) {
		job.frames[i] = frame;
		frame += run->chunks[i].blob_len;
	}
	fs_pool_run(cache_store_one, &job, run->n);
	for (uint32_t i = 1; i < run->n; i++)
		if (job.fds[i] >= 0)
			close(job.fds[i]);
	*ret_fd = job.fds[0];
	return job.results[0] < 0 ? job.results[0] : 0;
}

/*
 * Fetches a chunk that has no good cache file, with the missing chunks
 * after it up to @last_wanted when they come from a server, and stores
 * them.  A chunk whose fetch fails is remembered (FS_FAIL_HOLD_MS).
 * Stripe of the first chunk held.
 */
static int cache_fill(struct fs_ctx *ctx, struct fs_worker *worker,
		      uint32_t layer, uint32_t chunk_no, uint32_t last_wanted,
		      const struct index_chunk *chunk, int *ret_fd)
{
	struct cache_run run = { .n = 1, .chunks[0] = *chunk };
	int r;

	if (!ctx->remote || last_wanted <= chunk_no) {
		r = cache_fill_one(ctx, worker, layer, chunk_no, chunk, ret_fd);
		goto out;
	}

	cache_grow_run(ctx, layer, chunk_no, last_wanted, &run);
	r = fs_fetch_span(ctx, worker, layer, chunk_no, run.chunks, run.n);
	if (r >= 0)
		r = cache_store_run(ctx, worker, layer, chunk_no, &run, ret_fd);
	if (r == -EBADMSG)
		r = cache_fill_one(ctx, worker, layer, chunk_no, chunk, ret_fd);
	for (uint32_t i = 1; i < run.n; i++)
		if (run.locks[i])
			pthread_mutex_unlock(run.locks[i]);

out:
	/* Only a program's failed read holds the chunk: a prefetch that
	 * failed says less, and must not fail the program's own try. */
	if (r < 0 && r != -ENOMEM && !worker->prefetch)
		cache_set_failed(&ctx->cache, layer, chunk_no);
	return r == -EBADMSG ? -EIO : r;
}

int fs_cache_chunk_fd(struct fs_ctx *ctx, struct fs_worker *worker,
		      uint32_t layer, uint32_t chunk_no, uint32_t last_wanted,
		      int *ret_fd)
{
	struct fs_cache *cache = &ctx->cache;
	char name[CACHE_NAME_SIZE];
	struct index_chunk chunk;
	pthread_mutex_t *lock;
	int fd, r;

	fd = fs_fdcache_get(ctx, layer, chunk_no);
	if (fd >= 0)
		goto hit;

	index_reader_chunk(ctx->layers[layer].reader, chunk_no, &chunk);
	cache_name(chunk.sha256, name);

	/* Known good in this process: no lock needed (invariant 3). */
	if (cache_verified(cache, layer, chunk_no)) {
		fd = openat(cache->chunks_fd, name, O_RDONLY | O_CLOEXEC);
		if (fd >= 0) {
			fd = fs_fdcache_add(ctx, layer, chunk_no, fd);
			goto hit;
		}
	}

	lock = fs_cache_stripe(cache, chunk.sha256);
	pthread_mutex_lock(lock);
	r = cache_open_existing(cache, worker, layer, chunk_no, &chunk, name,
				ret_fd);
	if (r > 0) {
		fs_stat_add(ctx, cache_hits, 1);
	} else if (r == 0 && cache_failed_recently(cache, layer, chunk_no)) {
		/* Logged when it failed. */
		r = -EIO;
	} else if (r == 0) {
		fs_stat_add(ctx, cache_misses, 1);
		if (!worker->prefetch)
			fs_prefetch_note_miss(ctx, layer, chunk_no);
		*ret_fd = -1;
		r = cache_fill(ctx, worker, layer, chunk_no, last_wanted,
			       &chunk, ret_fd);
	} else {
		fs_stat_add(ctx, cache_errors, 1);
		fs_log_limited(&cache_ratelimit, LOG_ERR,
			       "cannot open cache file %s/chunks/%s: %s",
			       cache->dir, name, fs_strerror(-r));
		r = r == -ENOMEM ? r : -EIO;
	}
	pthread_mutex_unlock(lock);

	if (r < 0)
		return r;
	/* Memfds stay out: their chunk has no verified file. */
	if (cache_verified(cache, layer, chunk_no))
		*ret_fd = fs_fdcache_add(ctx, layer, chunk_no, *ret_fd);
	fs_evict_used(ctx, layer, chunk_no);
	return 0;

hit:
	fs_stat_add(ctx, cache_hits, 1);
	fs_evict_used(ctx, layer, chunk_no);
	*ret_fd = fd;
	return 0;
}

void fs_cache_hint(struct fs_ctx *ctx, uint32_t layer, uint32_t chunk_no,
		   int fd)
{
	struct fs_cache *cache = &ctx->cache;
	char name[CACHE_NAME_SIZE];
	struct index_chunk chunk;
	int own = -1;

	if (chunk_no >= index_reader_chunk_count(ctx->layers[layer].reader))
		return;
	if (fd < 0) {
		/* Only a file this process has checked: a hint must never
		 * start a fetch or a verification. */
		if (!cache_verified(cache, layer, chunk_no))
			return;
		own = fs_fdcache_get(ctx, layer, chunk_no);
		if (own < 0) {
			index_reader_chunk(ctx->layers[layer].reader,
					   chunk_no, &chunk);
			cache_name(chunk.sha256, name);
			own = openat(cache->chunks_fd, name,
				     O_RDONLY | O_CLOEXEC);
			if (own < 0)
				return;
			own = fs_fdcache_add(ctx, layer, chunk_no, own);
		}
		fd = own;
	}
	/* Advice only: a failure costs speed, never bytes. */
	(void)posix_fadvise(fd, 0, 0, POSIX_FADV_WILLNEED);
	fs_fdcache_put(ctx, layer, chunk_no, own);
}

/* ---- opening the cache ---- */

/* mkdir -p: makes @path and its missing parents. */
static int cache_mkdir_p(const char *path)
{
	char *p, *s;
	int r = 0;

	if (!*path)
		return -EINVAL;
	p = strdup(path);
	if (!p)
		return -ENOMEM;
	for (s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(p, 0755) < 0 && errno != EEXIST)
			r = -errno;
		*s = '/';
		if (r < 0)
			goto out;
	}
	if (mkdir(p, 0755) < 0 && errno != EEXIST)
		r = -errno;

out:
	free(p);
	return r;
}

static int cache_open_subdir(int dir_fd, const char *name, int *ret_fd)
{
	int fd;

	if (mkdirat(dir_fd, name, 0755) < 0 && errno != EEXIST)
		return -errno;
	fd = openat(dir_fd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	*ret_fd = fd;
	return 0;
}

/* Removes DIR/tmp/<pid>.<tid> files whose writer is gone (killed while
 * writing).  Files of live daemons sharing the cache are left alone. */
static void cache_sweep_tmp(struct fs_cache *cache)
{
	struct dirent *de;
	DIR *d;
	int fd;

	fd = openat(cache->tmp_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return;
	}
	while ((de = readdir(d))) {
		char *end;
		long pid = strtol(de->d_name, &end, 10);

		if (end == de->d_name || *end != '.' || pid <= 0 ||
		    pid > INT_MAX)
			continue;
		/* Our own pid is a stale file from a reused pid: this
		 * process has written nothing yet. */
		if (pid != getpid() && (kill((pid_t)pid, 0) == 0 ||
					errno != ESRCH))
			continue;
		unlinkat(cache->tmp_fd, de->d_name, 0);
	}
	closedir(d);
}

static int cache_alloc_bitmaps(struct fs_cache *cache,
			       const struct fs_layer *layers,
			       uint32_t n_layers)
{
	uint32_t i, n;

	cache->verified = calloc(n_layers ? n_layers : 1,
				 sizeof(*cache->verified));
	cache->failed = calloc(n_layers ? n_layers : 1,
			       sizeof(*cache->failed));
	if (!cache->verified || !cache->failed)
		return -ENOMEM;
	cache->n_layers = n_layers;
	for (i = 0; i < n_layers; i++) {
		n = index_reader_chunk_count(layers[i].reader);
		cache->verified[i] = calloc(n / 64 + 1, sizeof(uint64_t));
		cache->failed[i] = calloc(n + 1, sizeof(uint32_t));
		if (!cache->verified[i] || !cache->failed[i])
			return -ENOMEM;
	}
	return 0;
}

static int cache_open_dirs(struct fs_cache *cache, const char *dir)
{
	int dir_fd, r;

	r = cache_mkdir_p(dir);
	if (r < 0)
		return r;
	cache->dir = realpath(dir, NULL);
	if (!cache->dir)
		return -errno;

	dir_fd = open(cache->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dir_fd < 0)
		return -errno;
	r = cache_open_subdir(dir_fd, "chunks", &cache->chunks_fd);
	if (r >= 0)
		r = cache_open_subdir(dir_fd, "tmp", &cache->tmp_fd);
	close(dir_fd);
	return r;
}

int fs_cache_open(struct fs_cache *cache, const char *dir,
		  const struct fs_layer *layers, uint32_t n_layers)
{
	int i, r;

	cache->chunks_fd = -1;
	cache->tmp_fd = -1;
	cache->opened_ms = fs_now_ms();
	for (i = 0; i < FS_CACHE_STRIPES; i++)
		pthread_mutex_init(&cache->stripes[i], NULL);
	cache->opened = true;

	r = cache_open_dirs(cache, dir);
	if (r < 0) {
		fs_log(LOG_ERR, "cannot open cache directory %s: %s", dir,
		       fs_strerror(-r));
		return r;
	}
	r = cache_alloc_bitmaps(cache, layers, n_layers);
	if (r < 0) {
		fs_log(LOG_ERR, "cannot set up the chunk cache: %s",
		       fs_strerror(-r));
		return r;
	}

	cache_sweep_tmp(cache);
	return 0;
}

void fs_cache_close(struct fs_cache *cache)
{
	uint32_t i;
	int s;

	if (!cache->opened)
		return;
	for (i = 0; i < cache->n_layers; i++) {
		if (cache->verified)
			free(cache->verified[i]);
		if (cache->failed)
			free(cache->failed[i]);
	}
	free(cache->verified);
	free(cache->failed);
	if (cache->chunks_fd >= 0)
		close(cache->chunks_fd);
	if (cache->tmp_fd >= 0)
		close(cache->tmp_fd);
	for (s = 0; s < FS_CACHE_STRIPES; s++)
		pthread_mutex_destroy(&cache->stripes[s]);
	free(cache->dir);
	memset(cache, 0, sizeof(*cache));
}
