/* SPDX-License-Identifier: MIT */
/*
 * prefetch.c - fetching ahead of the program: the startup profile's
 * chunks first, in order, then every other chunk of the image (the
 * background fill); and recording a new profile (-o record=FILE).
 *
 * Design notes
 * ------------
 * One plan, made at start: the profile's chunks (those of the image's
 * layers that exist), then, when the fill is on, every chunk of every
 * layer in blob order.  A few threads take positions from the plan with
 * one atomic cursor and bring each chunk into the cache through
 * fs_cache_chunk_fd(), the same path reads take, so a chunk is fetched
 * once however many want it (cache.c, invariant 5) and every fetched byte
 * is verified.  A thread takes a run of up to PREFETCH_RUN positions
 * whose chunks follow each other in one layer, so that the missing ones
 * come in one range request, while the other threads fetch other runs
 * over their own connections.
 *
 * Priority: the profile races the program and is never held back (its
 * chunks are the ones the program is about to read).  The fill waits for
 * the whole profile, then gives way to programs: while they read (a read
 * in the last FILL_QUIET_MS), only one fill thread goes on, so that a
 * program's request shares the link with one bulk transfer rather than
 * eight, and its CPU with one decompressing thread.  Except when the
 * program misses just where the fill is about to fetch (within
 * FOLLOW_WINDOW positions after the fill's cursor: a walk of the tree in
 * blob order): then the fill's work is the program's, and it goes at full
 * width.  The fill can also be capped to a rate (-o fill_rate=MB/s).
 *
 * Read-ahead: a program's read that misses the cache queues the chunks
 * that follow it (the rest of a large file, or a small file's neighbours
 * in the blob) as urgent work for the same threads, which take it before
 * the profile and the fill: the program's own read fetches its chunk
 * while the threads fetch what it will read next, over other
 * connections, instead of one round trip after another.
 *
 * Recording: the first read of each chunk by a program (not by prefetch)
 * appends (layer, chunk) to a list under rec_lock; the list is written to
 * the record file when the daemon exits.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fs/fs_internal.h"
#include "fs/log.h"

/* Chunks a prefetch thread asks for in one go (missing neighbours come in
 * the same request): long runs for the profile, which races the program,
 * shorter ones for the fill, so that a program's read that arrives while
 * the fill is busy waits behind less. */
#define PREFETCH_RUN 16
#define FILL_RUN 4
/* Connections: on a link with a long round trip, one request at a time
 * per connection leaves most of the bandwidth unused. */
#define PREFETCH_THREADS_DEFAULT 8
#define PREFETCH_THREADS_MAX 32
/* How long a held-back fill thread waits before looking again. */
#define PREFETCH_YIELD_US 5000
#define FILL_QUIET_MS 250
#define FOLLOW_WINDOW 256
#define FOLLOW_MS 1000
/* Read-ahead for a program's read that misses: chunks after it in the
 * same large file, or after a small file's chunk in the blob; fetched by
 * the prefetch threads, URGENT_RUN chunks a request, ahead of everything
 * else. */
#define READ_AHEAD_FILE 32
#define READ_AHEAD_NEAR 8
#define URGENT_RUN 4

/*
 * A bitmap per layer, a bit per chunk, all zero: an array of layer
 * pointers and the words they point to in one allocation, freed with one
 * free().  Returned as void * so that plain and _Atomic maps share it.
 */
static void *layer_bits_new(const struct fs_ctx *ctx)
{
	size_t words = 0, at = 0;
	uint64_t **map, *base;

	for (uint32_t l = 0; l < ctx->n_layers; l++)
		words += index_reader_chunk_count(ctx->layers[l].reader) / 64 + 1;
	map = calloc(1, ctx->n_layers * sizeof(*map) + words * sizeof(**map));
	if (!map)
		return NULL;
	base = (uint64_t *)(map + ctx->n_layers);
	for (uint32_t l = 0; l < ctx->n_layers; l++) {
		map[l] = base + at;
		at += index_reader_chunk_count(ctx->layers[l].reader) / 64 + 1;
	}
	return map;
}

static int plan_add(struct fs_prefetch *pf, uint32_t layer, uint32_t chunk)
{
	if (pf->n == pf->cap) {
		size_t cap = pf->cap ? pf->cap * 2 : 4096;
		struct index_profile_entry *p = realloc(pf->plan,
							cap * sizeof(*p));

		if (!p)
			return -ENOMEM;
		pf->plan = p;
		pf->cap = cap;
	}
	pf->plan[pf->n++] = (struct index_profile_entry){ layer, chunk };
	return 0;
}

/* The profile's entries that name a chunk of this image; others (a
 * profile recorded on another build) are skipped with a warning. */
static int plan_profile(struct fs_ctx *ctx, struct fs_prefetch *pf)
{
	const struct index_image *img = ctx->image;
	uint32_t bad = 0;
	int r = 0;

	pf->in_profile = layer_bits_new(ctx);
	if (!pf->in_profile)
		return -ENOMEM;

	for (uint32_t i = 0; r >= 0 && i < img->n_profile; i++) {
		const struct index_profile_entry *e = &img->profile[i];

		if (e->layer >= ctx->n_layers ||
		    e->chunk >= index_reader_chunk_count(ctx->layers[e->layer].reader)) {
			bad++;
			continue;
		}
		r = plan_add(pf, e->layer, e->chunk);
		pf->in_profile[e->layer][e->chunk / 64] |=
			UINT64_C(1) << (e->chunk % 64);
	}
	if (bad)
		fs_log(LOG_WARNING, "startup profile: %" PRIu32 " of %" PRIu32
		       " entries name no chunk of this image", bad,
		       img->n_profile);
	pf->n_profile = pf->n;
	return r;
}

static int plan_fill(struct fs_ctx *ctx, struct fs_prefetch *pf)
{
	int r = 0;

	pf->layer_base = calloc(ctx->n_layers ? ctx->n_layers : 1,
				sizeof(*pf->layer_base));
	if (!pf->layer_base)
		return -ENOMEM;
	for (uint32_t l = 0; l < ctx->n_layers; l++) {
		uint32_t n = index_reader_chunk_count(ctx->layers[l].reader);

		pf->layer_base[l] = pf->n;
		for (uint32_t c = 0; r >= 0 && c < n; c++)
			r = plan_add(pf, l, c);
	}
	return r;
}

/* Whether the whole image fits the cache cap: a fill of an image that
 * does not would only fetch chunks to evict them again. */
static bool fill_fits(const struct fs_ctx *ctx)
{
	uint64_t total = 0;

	if (!ctx->evict.max)
		return true;
	for (uint32_t l = 0; l < ctx->n_layers; l++)
		total += index_reader_tar_size(ctx->layers[l].reader);
	if (total <= ctx->evict.max)
		return true;
	if (ctx->opts->fill == FS_ON)
		fs_log(LOG_WARNING, "no fill: the image's %" PRIu64 " bytes "
		       "do not fit cache_max (%" PRIu64 " bytes)", total,
		       ctx->evict.max);
	else
		fs_debug("no fill: %" PRIu64 " bytes over cache_max %" PRIu64,
			 total, ctx->evict.max);
	return false;
}

/* Holds the fill to its rate: sleeps until @bytes more are allowed. */
static void prefetch_pace(struct fs_ctx *ctx, uint64_t bytes)
{
	struct fs_prefetch *pf = &ctx->prefetch;
	uint64_t due_us;

	if (!ctx->opts->fill_rate_mb)
		return;
	pthread_mutex_lock(&pf->pace_lock);
	/* Each byte has its slot on a clock that runs at the rate. */
	if (pf->pace_us < fs_now_ms() * 1000)
		pf->pace_us = fs_now_ms() * 1000;
	pf->pace_us += bytes / ctx->opts->fill_rate_mb;
	due_us = pf->pace_us;
	pthread_mutex_unlock(&pf->pace_lock);
	while (!atomic_load(&pf->stop) && fs_now_ms() * 1000 < due_us)
		usleep(10000);
}

/* The next run of the plan: positions [*ret_i, *ret_i + n) all in one
 * layer, with consecutive chunk numbers, taken whole so that threads
 * fetch different runs side by side.  Returns n, 0 at the end. */
static uint32_t prefetch_take(struct fs_prefetch *pf, size_t *ret_i)
{
	size_t i, j;

	pthread_mutex_lock(&pf->take_lock);
	i = pf->cursor;
	for (j = i + 1; j < pf->n && j - i < (i < pf->n_profile ? PREFETCH_RUN :
								  FILL_RUN); j++)
		if (pf->plan[j].layer != pf->plan[i].layer ||
		    pf->plan[j].chunk != pf->plan[j - 1].chunk + 1)
			break;
	if (i < pf->n) {
		pf->cursor = j;
		atomic_store(&pf->cursor_seen, j);
	}
	pthread_mutex_unlock(&pf->take_lock);
	*ret_i = i;
	return i < pf->n ? (uint32_t)(j - i) : 0;
}

/*
 * The last chunk to ask for with position @i's: the end of its run, and
 * for a profile position further on while the chunks that follow in the
 * blob are in the profile too (a program reads a file's chunks in some
 * order, often not the blob's): one request then brings them all.
 */
static uint32_t prefetch_last_wanted(const struct fs_ctx *ctx, size_t i,
				     uint32_t run)
{
	const struct fs_prefetch *pf = &ctx->prefetch;
	const struct index_profile_entry *e = &pf->plan[i];
	uint32_t last = e->chunk + run - 1, n;

	if (i >= pf->n_profile)
		return last;
	n = index_reader_chunk_count(ctx->layers[e->layer].reader);
	while (last + 1 < n && last + 1 - e->chunk < PREFETCH_RUN &&
	       (pf->in_profile[e->layer][(last + 1) / 64] >>
		((last + 1) % 64) & 1))
		last++;
	return last;
}

/* ---- read-ahead for programs' reads (the urgent queue) ---- */

static bool queued_test_and_set(struct fs_prefetch *pf, uint32_t layer,
				uint32_t chunk)
{
	uint64_t bit = UINT64_C(1) << (chunk % 64);

	return atomic_fetch_or(&pf->queued[layer][chunk / 64], bit) & bit;
}

/* Queues chunks [first, last] of @layer that are neither cached nor
 * queued, in runs of at most URGENT_RUN.  Stripe locks are not taken: a
 * chunk fetched meanwhile is simply a cache hit for the thread. */
static void urgent_add(struct fs_ctx *ctx, uint32_t layer, uint32_t first,
		       uint32_t last)
{
	struct fs_prefetch *pf = &ctx->prefetch;
	struct fs_urgent u = { .layer = layer, .first = UINT32_MAX };
	bool added = false;

	pthread_mutex_lock(&pf->urgent_lock);
	for (uint32_t c = first; c <= last; c++) {
		/* Chunks of the profile are on their way already. */
		bool skip = fs_cache_has(ctx, layer, c) ||
			    (pf->in_profile &&
			     (pf->in_profile[layer][c / 64] >> (c % 64) & 1)) ||
			    queued_test_and_set(pf, layer, c);

		if (!skip && u.first == UINT32_MAX)
			u.first = c;
		if (!skip)
			u.last = c;
		if (u.first != UINT32_MAX &&
		    (skip || c == last || u.last - u.first + 1 == URGENT_RUN)) {
			if (pf->urgent_n == URGENT_MAX)
				break;
			pf->urgent[(pf->urgent_head + pf->urgent_n++) %
				   URGENT_MAX] = u;
			u.first = UINT32_MAX;
			added = true;
		}
	}
	if (added)
		pthread_cond_broadcast(&pf->urgent_cond);
	pthread_mutex_unlock(&pf->urgent_lock);
}

static bool urgent_take(struct fs_prefetch *pf, struct fs_urgent *ret)
{
	bool got = false;

	pthread_mutex_lock(&pf->urgent_lock);
	if (pf->urgent_n) {
		*ret = pf->urgent[pf->urgent_head];
		pf->urgent_head = (pf->urgent_head + 1) % URGENT_MAX;
		pf->urgent_n--;
		got = true;
	}
	pthread_mutex_unlock(&pf->urgent_lock);
	return got;
}

static void urgent_wait(struct fs_prefetch *pf)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_nsec += 200 * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&pf->urgent_lock);
	if (!pf->urgent_n && !atomic_load(&pf->stop))
		pthread_cond_timedwait(&pf->urgent_cond, &pf->urgent_lock, &ts);
	pthread_mutex_unlock(&pf->urgent_lock);
}

static void urgent_fetch(struct fs_ctx *ctx, struct fs_worker *worker,
			 const struct fs_urgent *u)
{
	int fd;

	if (fs_cache_chunk_fd(ctx, worker, u->layer, u->first, u->last,
			      &fd) >= 0)
		fs_fdcache_put(ctx, u->layer, u->first, fd);
	atomic_fetch_add_explicit(&ctx->prefetch.readahead_chunks,
				  u->last - u->first + 1, memory_order_relaxed);
	for (uint32_t c = u->first; c <= u->last; c++)
		atomic_fetch_and(&ctx->prefetch.queued[u->layer][c / 64],
				 ~(UINT64_C(1) << (c % 64)));
}

void fs_prefetch_read_ahead(struct fs_ctx *ctx, uint32_t layer,
			    const struct index_entry *entry, uint64_t off,
			    size_t len)
{
	const struct index_reader *reader = ctx->layers[layer].reader;
	uint32_t first, last, file_last, n, ahead;

	atomic_store_explicit(&ctx->prefetch.last_read_ms, fs_now_ms(),
			      memory_order_relaxed);
	/* While the profile comes in, it knows better what is needed. */
	if (atomic_load(&ctx->prefetch.profile_done) < ctx->prefetch.n_profile)
		return;
	if (!ctx->prefetch.queued || entry->chunk_count == 0 || len == 0 ||
	    index_reader_find_chunk(reader, entry->data_off + off,
				    &first) < 0 ||
	    index_reader_find_chunk(reader, entry->data_off + off + len - 1,
				    &last) < 0)
		return;
	if (fs_cache_has(ctx, layer, first) && fs_cache_has(ctx, layer, last))
		return;
	n = index_reader_chunk_count(reader);
	file_last = entry->chunk_first + entry->chunk_count - 1;
	/* The rest of a large file; after a small one, its neighbours in the
	 * blob, most often the files next to it in its directory. */
	ahead = entry->chunk_count > 1 ? READ_AHEAD_FILE : READ_AHEAD_NEAR;
	if (entry->chunk_count == 1 || file_last <= last)
		file_last = last + ahead < n - 1 ? last + ahead : n - 1;
	else if (file_last - last > ahead)
		file_last = last + ahead;
	if (file_last > last)
		urgent_add(ctx, layer, last + 1, file_last);
}

/* Whether fill thread @me may fetch now (see Priority above).  Not
 * before the whole profile is in: its last requests are still racing the
 * program. */
static bool fill_may_go(const struct fs_prefetch *pf, unsigned int me)
{
	uint64_t now = fs_now_ms();

	if (atomic_load(&pf->profile_done) < pf->n_profile)
		return false;
	return me == 0 || now < atomic_load(&pf->follow_until_ms) ||
	       now - atomic_load(&pf->last_read_ms) >= FILL_QUIET_MS;
}

void fs_prefetch_note_miss(struct fs_ctx *ctx, uint32_t layer,
			   uint32_t chunk)
{
	struct fs_prefetch *pf = &ctx->prefetch;
	uint64_t now = fs_now_ms();
	size_t idx, cur;

	if (!pf->layer_base || layer >= ctx->n_layers)
		return;
	idx = pf->layer_base[layer] + chunk;
	cur = atomic_load(&pf->cursor_seen);
	if (idx >= cur && idx - cur < FOLLOW_WINDOW)
		atomic_store(&pf->follow_until_ms, now + FOLLOW_MS);
}

static void prefetch_one(struct fs_ctx *ctx, struct fs_worker *worker,
			 unsigned int me, size_t i, uint32_t run)
{
	struct fs_prefetch *pf = &ctx->prefetch;
	const struct index_profile_entry *e = &pf->plan[i];
	uint64_t before = atomic_load_explicit(&ctx->stats.blob_bytes_read,
					       memory_order_relaxed);
	uint32_t last = e->chunk + run - 1;
	uint32_t want = prefetch_last_wanted(ctx, i, run);
	int fd, r;

	while (i >= pf->n_profile && !fill_may_go(pf, me) &&
	       !atomic_load(&pf->stop))
		usleep(PREFETCH_YIELD_US);
	/* One call brings in only the first chunk from a local layout, and
	 * from a server a span that may end early (size cap, a stripe held
	 * elsewhere): ask for each chunk of the run; those the first call
	 * stored are cache hits. */
	for (uint32_t c = e->chunk; c <= last && !atomic_load(&pf->stop);
	     c++) {
		r = fs_cache_chunk_fd(ctx, worker, e->layer, c, want, &fd);
		if (r >= 0)
			fs_fdcache_put(ctx, e->layer, c, fd);
		else
			atomic_fetch_add_explicit(&pf->failed, 1,
						  memory_order_relaxed);
		atomic_fetch_add_explicit(i + (c - e->chunk) < pf->n_profile ?
						  &pf->profile_done :
						  &pf->fill_done,
					  1, memory_order_relaxed);
	}
	if (i >= pf->n_profile)
		prefetch_pace(ctx, atomic_load_explicit(&ctx->stats.blob_bytes_read,
							memory_order_relaxed) -
					   before);
}

static void *prefetch_thread(void *arg)
{
	struct fs_ctx *ctx = arg;
	struct fs_prefetch *pf = &ctx->prefetch;
	unsigned int me = atomic_fetch_add(&pf->ids, 1);
	struct fs_worker *worker;
	uint32_t run;
	size_t i;

	if (fs_worker_get(&worker) < 0) {
		fs_log(LOG_ERR, "prefetch: out of memory");
		return NULL;
	}
	worker->prefetch = true;
	while (!atomic_load(&pf->stop)) {
		struct fs_urgent u;

		if (urgent_take(pf, &u)) {
			urgent_fetch(ctx, worker, &u);
		} else if ((run = prefetch_take(pf, &i))) {
			prefetch_one(ctx, worker, me, i, run);
		} else {
			if (!atomic_exchange(&pf->plan_logged, true))
				fs_debug("prefetch done: %zu profile "
				       "and %zu fill chunks, %" PRIu64
				       " failed", pf->n_profile,
				       pf->n - pf->n_profile,
				       atomic_load(&pf->failed));
			urgent_wait(pf);
		}
	}
	return NULL;
}

static int urgent_setup(struct fs_ctx *ctx, struct fs_prefetch *pf)
{
	pf->urgent = calloc(URGENT_MAX, sizeof(*pf->urgent));
	pf->queued = layer_bits_new(ctx);
	if (!pf->urgent || !pf->queued)
		return -ENOMEM;
	return 0;
}

int fs_prefetch_start(struct fs_ctx *ctx)
{
	const struct fs_options *o = ctx->opts;
	struct fs_prefetch *pf = &ctx->prefetch;
	unsigned int n = o->prefetch_threads ? o->prefetch_threads :
					       PREFETCH_THREADS_DEFAULT;
	int r = 0;

	pthread_mutex_init(&pf->pace_lock, NULL);
	pthread_mutex_init(&pf->take_lock, NULL);
	pthread_mutex_init(&pf->urgent_lock, NULL);
	pthread_cond_init(&pf->urgent_cond, NULL);
	pf->initialised = true;
	if (o->prefetch != FS_OFF)
		r = plan_profile(ctx, pf);
	if (r >= 0 && (o->fill == FS_ON || (o->fill == FS_DEFAULT &&
					    ctx->remote)) && fill_fits(ctx))
		r = plan_fill(ctx, pf);
	/* Read-ahead pays where a fetch costs a round trip. */
	if (r >= 0 && ctx->remote && o->readahead != FS_OFF)
		r = urgent_setup(ctx, pf);
	if (r < 0 || (pf->n == 0 && !pf->queued))
		return r;
	if (n > PREFETCH_THREADS_MAX)
		n = PREFETCH_THREADS_MAX;
	pf->threads = calloc(n, sizeof(*pf->threads));
	if (!pf->threads)
		return -ENOMEM;
	for (unsigned int t = 0; t < n; t++) {
		r = -pthread_create(&pf->threads[t], NULL, prefetch_thread, ctx);
		if (r < 0)
			break;
		pf->n_threads++;
	}
	/* Still on the terminal when detaching: debug detail only. */
	fs_debug("prefetch: %zu profile chunks, then %zu fill chunks, "
	       "read-ahead %s, %u threads", pf->n_profile,
	       pf->n - pf->n_profile, pf->queued ? "on" : "off",
	       pf->n_threads);
	return pf->n_threads ? 0 : r;
}

void fs_prefetch_stop(struct fs_ctx *ctx)
{
	struct fs_prefetch *pf = &ctx->prefetch;

	if (!pf->initialised)
		return;
	atomic_store(&pf->stop, true);
	pthread_mutex_lock(&pf->urgent_lock);
	pthread_cond_broadcast(&pf->urgent_cond);
	pthread_mutex_unlock(&pf->urgent_lock);
	for (unsigned int t = 0; t < pf->n_threads; t++)
		pthread_join(pf->threads[t], NULL);
	free(pf->threads);
	free(pf->plan);
	free(pf->in_profile);
	pf->in_profile = NULL;
	free(pf->layer_base);
	pf->layer_base = NULL;
	free(pf->queued);
	pf->queued = NULL;
	free(pf->urgent);
	pf->urgent = NULL;
	pthread_mutex_destroy(&pf->urgent_lock);
	pthread_cond_destroy(&pf->urgent_cond);
	pthread_mutex_destroy(&pf->pace_lock);
	pthread_mutex_destroy(&pf->take_lock);
	pf->threads = NULL;
	pf->plan = NULL;
	pf->initialised = false;
}

/* ---- recording ---- */

int fs_record_open(struct fs_ctx *ctx)
{
	struct fs_record *rec = &ctx->record;

	if (!ctx->opts->record_file)
		return 0;
	pthread_mutex_init(&rec->lock, NULL);
	rec->on = true;
	/* Opened now, so that a path that cannot be written fails the mount
	 * rather than the recording at its end. */
	rec->fd = open(ctx->opts->record_file,
		       O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (rec->fd < 0) {
		int r = -errno;

		fs_log(LOG_ERR, "cannot write the profile %s: %s",
		       ctx->opts->record_file, fs_strerror(-r));
		return r;
	}
	rec->seen = layer_bits_new(ctx);
	return rec->seen ? 0 : -ENOMEM;
}

void fs_record_touch(struct fs_ctx *ctx, uint32_t layer, uint32_t chunk)
{
	struct fs_record *rec = &ctx->record;
	uint64_t bit = UINT64_C(1) << (chunk % 64);
	struct index_profile_entry *p;

	if (!rec->on || (atomic_load_explicit(&rec->seen[layer][chunk / 64],
					      memory_order_relaxed) & bit))
		return;
	pthread_mutex_lock(&rec->lock);
	if (!(atomic_fetch_or(&rec->seen[layer][chunk / 64], bit) & bit)) {
		if (rec->n == rec->cap) {
			size_t cap = rec->cap ? rec->cap * 2 : 1024;

			p = realloc(rec->entries, cap * sizeof(*p));
			if (p) {
				rec->entries = p;
				rec->cap = cap;
			}
		}
		/* Out of memory: the profile misses a chunk, no more. */
		if (rec->n < rec->cap)
			rec->entries[rec->n++] =
				(struct index_profile_entry){ layer, chunk };
	}
	pthread_mutex_unlock(&rec->lock);
}

int fs_record_close(struct fs_ctx *ctx)
{
	struct fs_record *rec = &ctx->record;
	const char *path = ctx->opts->record_file;
	FILE *f = NULL;
	int r = 0;

	if (!rec->on)
		return 0;
	if (rec->seen && rec->fd >= 0) {
		f = fdopen(rec->fd, "w");
		if (!f) {
			r = -errno;
			close(rec->fd);
		}
		rec->fd = -1;
	} else if (rec->fd >= 0) {
		close(rec->fd);
		rec->fd = -1;
	}
	for (size_t i = 0; f && i < rec->n; i++)
		fprintf(f, "%" PRIu32 " %" PRIu32 "\n", rec->entries[i].layer,
			rec->entries[i].chunk);
	if (f && (ferror(f) | fclose(f)))
		r = -EIO;
	if (r < 0)
		fs_log(LOG_ERR, "cannot write the profile %s: %s", path,
		       fs_strerror(-r));
	else if (rec->seen)
		fs_log(LOG_INFO, "recorded %zu chunks in %s", rec->n, path);
	free(rec->seen);
	free(rec->entries);
	pthread_mutex_destroy(&rec->lock);
	memset(rec, 0, sizeof(*rec));
	return r;
}
