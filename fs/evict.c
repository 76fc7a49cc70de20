/* SPDX-License-Identifier: MIT */
/*
 * evict.c - keeping the chunk cache under its size cap (-o cache_max=).
 *
 * Design notes
 * ------------
 * The cache directory may be shared by several daemons and may hold files
 * of images this daemon does not serve, so the only true size is the one
 * found by walking it.  The daemon keeps a running estimate (bytes found
 * at the last walk plus bytes it published since); when the estimate
 * passes the cap, the evictor thread walks the directory, which also
 * corrects the estimate, and removes whole chunk files until the cache is
 * back under EVICT_LOW_PERCENT of the cap.
 *
 * Order: files this daemon has not used since it started go first, oldest
 * modification time first (other images', and chunks read before a
 * restart); then the chunks it has used, least recently used first.
 * Chunks of files that are open now (pinned by open/release) are never
 * removed, so a program holding a file open is not made to fetch it
 * again; the cache may stay over the cap while pinned chunks alone
 * exceed it.
 *
 * Invariants:
 * 1. A file is only removed under its content's stripe lock, taken with
 *    trylock (a busy stripe means a fetch or check is in progress: the
 *    file is skipped this round), so removal never races a publish or a
 *    first check of the same content (cache.c, invariant 4).
 * 2. A removed file may still be open by a reader or in the table of
 *    open cache files (flushed after each round): it keeps its bytes
 *    until closed.  A later open by name fails with ENOENT, which the
 *    read path treats as a miss (cache.c clears the verified bit).
 * 3. used[] and pins[] are per (layer, chunk), updated with relaxed
 *    atomics: they steer the choice, never correctness.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fs/fs_internal.h"
#include "fs/log.h"

/* Eviction stops once the cache is this far under the cap. */
#define EVICT_LOW_PERCENT 90

/* A chunk of this image, sorted by the first 8 bytes of its SHA-256. */
struct evict_slot {
	uint64_t key;
	uint32_t layer;
	uint32_t chunk_no;
};

/* A file found by the walk. */
struct evict_file {
	uint64_t order; /* smaller goes first */
	uint64_t size;
	uint8_t sha256[32];
};

static uint64_t sha_key(const uint8_t *sha256)
{
	uint64_t k = 0;

	for (int i = 0; i < 8; i++)
		k = k << 8 | sha256[i];
	return k;
}

static int slot_cmp(const void *a, const void *b)
{
	const struct evict_slot *x = a, *y = b;

	return x->key < y->key ? -1 : x->key > y->key;
}

static int file_cmp(const void *a, const void *b)
{
	const struct evict_file *x = a, *y = b;

	return x->order < y->order ? -1 : x->order > y->order;
}

static _Atomic uint32_t **evict_arrays(const struct fs_ctx *ctx)
{
	_Atomic uint32_t **a = calloc(ctx->n_layers ? ctx->n_layers : 1,
				      sizeof(*a));

	for (uint32_t i = 0; a && i < ctx->n_layers; i++) {
		uint32_t n = index_reader_chunk_count(ctx->layers[i].reader);

		a[i] = calloc(n + 1, sizeof(**a));
		if (!a[i]) {
			while (i--)
				free(a[i]);
			free(a);
			return NULL;
		}
	}
	return a;
}

static void evict_arrays_free(_Atomic uint32_t **a, uint32_t n_layers)
{
	for (uint32_t i = 0; a && i < n_layers; i++)
		free(a[i]);
	free(a);
}

static int evict_build_slots(struct fs_evict *ev, const struct fs_ctx *ctx)
{
	size_t n = 0, k = 0;
	struct index_chunk c;

	for (uint32_t i = 0; i < ctx->n_layers; i++)
		n += index_reader_chunk_count(ctx->layers[i].reader);
	ev->slots = calloc(n ? n : 1, sizeof(*ev->slots));
	if (!ev->slots)
		return -ENOMEM;
	for (uint32_t i = 0; i < ctx->n_layers; i++) {
		const struct index_reader *r = ctx->layers[i].reader;

		for (uint32_t j = 0; j < index_reader_chunk_count(r); j++) {
			index_reader_chunk(r, j, &c);
			ev->slots[k++] = (struct evict_slot){
				.key = sha_key(c.sha256), .layer = i,
				.chunk_no = j };
		}
	}
	qsort(ev->slots, n, sizeof(*ev->slots), slot_cmp);
	ev->n_slots = n;
	return 0;
}

/*
 * What this daemon knows of the content @sha256: sets *ret_used to the
 * latest use of any chunk with it (0: unused) and returns true when one
 * of them is pinned by an open file.
 */
static bool evict_lookup(const struct fs_ctx *ctx, const uint8_t *sha256,
			 uint32_t *ret_used)
{
	const struct fs_evict *ev = &ctx->evict;
	uint64_t key = sha_key(sha256);
	size_t lo = 0, hi = ev->n_slots;
	struct index_chunk c;
	bool pinned = false;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (ev->slots[mid].key < key)
			lo = mid + 1;
		else
			hi = mid;
	}
	*ret_used = 0;
	for (; lo < ev->n_slots && ev->slots[lo].key == key; lo++) {
		const struct evict_slot *s = &ev->slots[lo];
		uint32_t u;

		index_reader_chunk(ctx->layers[s->layer].reader, s->chunk_no,
				   &c);
		if (memcmp(c.sha256, sha256, 32) != 0)
			continue;
		u = atomic_load_explicit(&ev->used[s->layer][s->chunk_no],
					 memory_order_relaxed);
		if (u > *ret_used)
			*ret_used = u;
		pinned |= atomic_load_explicit(&ev->pins[s->layer][s->chunk_no],
					       memory_order_relaxed) != 0;
	}
	return pinned;
}

static bool parse_hex(const char *s, uint8_t out[32])
{
	for (int i = 0; i < 32; i++) {
		unsigned int v;

		if (sscanf(s + 2 * i, "%2x", &v) != 1)
			return false;
		out[i] = (uint8_t)v;
	}
	return strlen(s) == 64;
}

/* Appends the files of one shard directory to @files. */
static int evict_walk_shard(struct fs_ctx *ctx, int shard_fd,
			    struct evict_file **files, size_t *n,
			    size_t *cap, uint64_t *total)
{
	struct dirent *de;
	struct stat st;
	DIR *d;

	d = fdopendir(shard_fd);
	if (!d) {
		close(shard_fd);
		return -errno;
	}
	while ((de = readdir(d))) {
		struct evict_file f;
		uint32_t used;

		if (!parse_hex(de->d_name, f.sha256) ||
		    fstatat(dirfd(d), de->d_name, &st,
			    AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISREG(st.st_mode))
			continue;
		*total += (uint64_t)st.st_size;
		if (evict_lookup(ctx, f.sha256, &used))
			continue;
		f.size = (uint64_t)st.st_size;
		/* Unused files by age, then used ones by last use. */
		f.order = used ? (UINT64_C(1) << 62) + used :
				 (uint64_t)(st.st_mtime > 0 ? st.st_mtime : 0);
		if (*n == *cap) {
			size_t c = *cap ? *cap * 2 : 1024;
			struct evict_file *p = realloc(*files, c * sizeof(*p));

			if (!p) {
				closedir(d);
				return -ENOMEM;
			}
			*files = p;
			*cap = c;
		}
		(*files)[(*n)++] = f;
	}
	closedir(d);
	return 0;
}

/* Every chunk file of the cache that may go, and the cache's size. */
static int evict_walk(struct fs_ctx *ctx, struct evict_file **ret_files,
		      size_t *ret_n, uint64_t *ret_total)
{
	int fd = openat(ctx->cache.chunks_fd, ".", O_RDONLY | O_DIRECTORY |
						       O_CLOEXEC);
	size_t cap = 0;
	struct dirent *de;
	int r = 0;
	DIR *d;

	*ret_files = NULL;
	*ret_n = 0;
	*ret_total = 0;
	if (fd < 0)
		return -errno;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -errno;
	}
	while (r >= 0 && (de = readdir(d))) {
		int sfd;

		if (strlen(de->d_name) != 2 || de->d_name[0] == '.')
			continue;
		sfd = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY |
							   O_CLOEXEC);
		if (sfd >= 0)
			r = evict_walk_shard(ctx, sfd, ret_files, ret_n, &cap,
					     ret_total);
	}
	closedir(d);
	return r;
}

/* Removes files, in order, until @total is down to @goal. */
static uint64_t evict_remove(struct fs_ctx *ctx, struct evict_file *files,
			     size_t n, uint64_t total, uint64_t goal)
{
	char name[3 + 64 + 1], hex[65];
	uint64_t removed = 0;

	/* @files is NULL when the walk found nothing, and qsort() may not
	 * be given NULL even for no elements. */
	if (n > 1)
		qsort(files, n, sizeof(*files), file_cmp);
	for (size_t i = 0; i < n && total > goal; i++) {
		pthread_mutex_t *lock = fs_cache_stripe(&ctx->cache,
							files[i].sha256);
		uint32_t used;

		if (pthread_mutex_trylock(lock) != 0)
			continue;
		/* Opened since the walk? */
		if (!evict_lookup(ctx, files[i].sha256, &used)) {
			index_hex(files[i].sha256, 32, hex);
			snprintf(name, sizeof(name), "%.2s/%s", hex, hex);
			if (unlinkat(ctx->cache.chunks_fd, name, 0) == 0) {
				total -= files[i].size;
				removed += files[i].size;
			}
		}
		pthread_mutex_unlock(lock);
	}
	return removed;
}

static void evict_run(struct fs_ctx *ctx)
{
	struct fs_evict *ev = &ctx->evict;
	uint64_t total, goal = ev->max / 100 * EVICT_LOW_PERCENT, removed;
	struct evict_file *files;
	size_t n;
	int r;

	r = evict_walk(ctx, &files, &n, &total);
	if (r < 0) {
		fs_log(LOG_WARNING, "cannot walk cache directory %s: %s",
		       ctx->cache.dir, fs_strerror(-r));
		free(files);
		return;
	}
	removed = total > ev->max ? evict_remove(ctx, files, n, total, goal) :
				    0;
	free(files);
	/* Open descriptors would keep the removed files' blocks. */
	if (removed)
		fs_fdcache_flush(ctx);
	atomic_store_explicit(&ev->bytes, total - removed,
			      memory_order_relaxed);
	fs_debug("cache %s: %" PRIu64 " bytes, %" PRIu64 " removed, cap %"
		 PRIu64, ctx->cache.dir, total, removed, ev->max);
	fs_stat_add(ctx, cache_evicted_bytes, removed);
}

static void *evict_thread(void *arg)
{
	struct fs_ctx *ctx = arg;
	struct fs_evict *ev = &ctx->evict;

	pthread_mutex_lock(&ev->lock);
	for (;;) {
		while (!ev->wanted && !ev->stop)
			pthread_cond_wait(&ev->cond, &ev->lock);
		if (ev->stop)
			break;
		ev->wanted = false;
		pthread_mutex_unlock(&ev->lock);
		evict_run(ctx);
		pthread_mutex_lock(&ev->lock);
	}
	pthread_mutex_unlock(&ev->lock);
	return NULL;
}

int fs_evict_open(struct fs_ctx *ctx, uint64_t max)
{
	struct fs_evict *ev = &ctx->evict;
	int r;

	ev->max = max;
	if (!max)
		return 0;
	pthread_mutex_init(&ev->lock, NULL);
	pthread_cond_init(&ev->cond, NULL);
	ev->initialised = true;
	ev->used = evict_arrays(ctx);
	ev->pins = evict_arrays(ctx);
	if (!ev->used || !ev->pins)
		return -ENOMEM;
	r = evict_build_slots(ev, ctx);
	if (r < 0)
		return r;
	/* The first round finds the size left by earlier daemons. */
	ev->wanted = true;
	return 0;
}

int fs_evict_start(struct fs_ctx *ctx)
{
	struct fs_evict *ev = &ctx->evict;
	int r;

	if (!ev->max)
		return 0;
	r = pthread_create(&ev->thread, NULL, evict_thread, ctx);
	if (r != 0)
		return -r;
	ev->started = true;
	return 0;
}

void fs_evict_close(struct fs_ctx *ctx)
{
	struct fs_evict *ev = &ctx->evict;

	if (!ev->initialised)
		return;
	if (ev->started) {
		pthread_mutex_lock(&ev->lock);
		ev->stop = true;
		pthread_cond_signal(&ev->cond);
		pthread_mutex_unlock(&ev->lock);
		pthread_join(ev->thread, NULL);
	}
	evict_arrays_free(ev->used, ctx->n_layers);
	evict_arrays_free(ev->pins, ctx->n_layers);
	free(ev->slots);
	pthread_cond_destroy(&ev->cond);
	pthread_mutex_destroy(&ev->lock);
	memset(ev, 0, sizeof(*ev));
}

void fs_evict_used(struct fs_ctx *ctx, uint32_t layer, uint32_t chunk_no)
{
	struct fs_evict *ev = &ctx->evict;
	uint32_t t;

	if (!ev->max)
		return;
	t = (uint32_t)(fs_now_ms() - ctx->cache.opened_ms) + 1;
	atomic_store_explicit(&ev->used[layer][chunk_no], t ? t : 1,
			      memory_order_relaxed);
}

/* Wakes the evictor when the cache is over its cap. */
static void evict_wake_if_over(struct fs_evict *ev)
{
	if (atomic_load_explicit(&ev->bytes, memory_order_relaxed) <= ev->max)
		return;
	pthread_mutex_lock(&ev->lock);
	ev->wanted = true;
	pthread_cond_signal(&ev->cond);
	pthread_mutex_unlock(&ev->lock);
}

void fs_evict_stored(struct fs_ctx *ctx, uint64_t size)
{
	struct fs_evict *ev = &ctx->evict;

	if (!ev->max)
		return;
	atomic_fetch_add_explicit(&ev->bytes, size, memory_order_relaxed);
	evict_wake_if_over(ev);
}

/* Takes one pin off, never below zero: after a supervised restart
 * (supervise.c) files opened under the previous daemon are released
 * here without ever having been pinned in this process. */
static void evict_unpin(_Atomic uint32_t *pins)
{
	uint32_t v = atomic_load_explicit(pins, memory_order_relaxed);

	while (v && !atomic_compare_exchange_weak_explicit(
			    pins, &v, v - 1, memory_order_relaxed,
			    memory_order_relaxed))
		;
}

void fs_evict_pin(struct fs_ctx *ctx, uint32_t layer, uint32_t first,
		  uint32_t count, bool pin)
{
	struct fs_evict *ev = &ctx->evict;
	uint32_t n;

	if (!ev->max || layer >= ctx->n_layers)
		return;
	n = index_reader_chunk_count(ctx->layers[layer].reader);
	for (uint32_t c = first; c < n && c - first < count; c++) {
		if (pin)
			atomic_fetch_add_explicit(&ev->pins[layer][c], 1,
						  memory_order_relaxed);
		else
			evict_unpin(&ev->pins[layer][c]);
	}
	/* What this file held may have kept the last round over the cap. */
	if (!pin)
		evict_wake_if_over(ev);
}
