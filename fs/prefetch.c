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
 * Priority: a read from a program counts itself in ctx->reads_active
 * while it runs; a prefetch thread does not start a fetch while that is
 * non-zero, so on-demand reads get the connections and the link.  The
 * fill can be capped to a rate (-o fill_rate=MB/s).
 *
 * Recording: the first read of each chunk by a program (not by prefetch)
 * appends (layer, chunk) to a list under rec_lock; the list is written to
 * the record file when the daemon exits.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fs/fs_internal.h"
#include "fs/log.h"

/* Chunks a prefetch thread asks for in one go (missing neighbours come in
 * the same request). */
#define PREFETCH_RUN 16
#define PREFETCH_THREADS_DEFAULT 4
#define PREFETCH_THREADS_MAX 32
/* How long a prefetch thread waits before looking again while reads
 * from programs are running. */
#define PREFETCH_YIELD_US 2000

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

	for (uint32_t i = 0; r >= 0 && i < img->n_profile; i++) {
		const struct index_profile_entry *e = &img->profile[i];

		if (e->layer >= ctx->n_layers ||
		    e->chunk >= index_reader_chunk_count(ctx->layers[e->layer].reader)) {
			bad++;
			continue;
		}
		r = plan_add(pf, e->layer, e->chunk);
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

	for (uint32_t l = 0; l < ctx->n_layers; l++) {
		uint32_t n = index_reader_chunk_count(ctx->layers[l].reader);

		for (uint32_t c = 0; r >= 0 && c < n; c++)
			r = plan_add(pf, l, c);
	}
	return r;
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
	for (j = i + 1; j < pf->n && j - i < PREFETCH_RUN; j++)
		if (pf->plan[j].layer != pf->plan[i].layer ||
		    pf->plan[j].chunk != pf->plan[j - 1].chunk + 1)
			break;
	if (i < pf->n)
		pf->cursor = j;
	pthread_mutex_unlock(&pf->take_lock);
	*ret_i = i;
	return i < pf->n ? (uint32_t)(j - i) : 0;
}

static void prefetch_one(struct fs_ctx *ctx, struct fs_worker *worker,
			 size_t i, uint32_t run)
{
	struct fs_prefetch *pf = &ctx->prefetch;
	const struct index_profile_entry *e = &pf->plan[i];
	uint64_t before = atomic_load_explicit(&ctx->stats.blob_bytes_read,
					       memory_order_relaxed);
	uint32_t last = e->chunk + run - 1;
	int fd, r;

	while (atomic_load_explicit(&ctx->reads_active, memory_order_relaxed) &&
	       !atomic_load(&pf->stop))
		usleep(PREFETCH_YIELD_US);
	/* One call brings in only the first chunk from a local layout, and
	 * from a server a span that may end early (size cap, a stripe held
	 * elsewhere): ask for each chunk of the run; those the first call
	 * stored are cache hits. */
	for (uint32_t c = e->chunk; c <= last && !atomic_load(&pf->stop);
	     c++) {
		r = fs_cache_chunk_fd(ctx, worker, e->layer, c, last, &fd);
		if (r >= 0)
			close(fd);
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
	struct fs_worker *worker;
	uint32_t run;
	size_t i;

	if (fs_worker_get(&worker) < 0) {
		fs_log(LOG_ERR, "prefetch: out of memory");
		return NULL;
	}
	while (!atomic_load(&pf->stop) && (run = prefetch_take(pf, &i)))
		prefetch_one(ctx, worker, i, run);
	if (atomic_fetch_sub(&pf->running, 1) == 1 && !atomic_load(&pf->stop))
		fs_log(LOG_INFO, "prefetch done: %zu profile and %zu fill "
		       "chunks, %" PRIu64 " failed", pf->n_profile,
		       pf->n - pf->n_profile, atomic_load(&pf->failed));
	return NULL;
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
	pf->initialised = true;
	if (o->prefetch != FS_OFF)
		r = plan_profile(ctx, pf);
	if (r >= 0 && (o->fill == FS_ON || (o->fill == FS_DEFAULT &&
					    ctx->remote)))
		r = plan_fill(ctx, pf);
	if (r < 0 || pf->n == 0)
		return r;
	if (n > PREFETCH_THREADS_MAX)
		n = PREFETCH_THREADS_MAX;
	pf->threads = calloc(n, sizeof(*pf->threads));
	if (!pf->threads)
		return -ENOMEM;
	for (unsigned int t = 0; t < n; t++) {
		atomic_fetch_add(&pf->running, 1);
		r = -pthread_create(&pf->threads[t], NULL, prefetch_thread, ctx);
		if (r < 0) {
			atomic_fetch_sub(&pf->running, 1);
			break;
		}
		pf->n_threads++;
	}
	fs_log(LOG_INFO, "prefetch: %zu profile chunks, then %zu fill chunks, "
	       "%u threads", pf->n_profile, pf->n - pf->n_profile,
	       pf->n_threads);
	return pf->n_threads ? 0 : r;
}

void fs_prefetch_stop(struct fs_ctx *ctx)
{
	struct fs_prefetch *pf = &ctx->prefetch;

	if (!pf->initialised)
		return;
	atomic_store(&pf->stop, true);
	for (unsigned int t = 0; t < pf->n_threads; t++)
		pthread_join(pf->threads[t], NULL);
	free(pf->threads);
	free(pf->plan);
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
	rec->seen = calloc(ctx->n_layers ? ctx->n_layers : 1,
			   sizeof(*rec->seen));
	if (!rec->seen)
		return -ENOMEM;
	for (uint32_t l = 0; l < ctx->n_layers; l++) {
		uint32_t n = index_reader_chunk_count(ctx->layers[l].reader);

		rec->seen[l] = calloc(n / 64 + 1, sizeof(uint64_t));
		if (!rec->seen[l])
			return -ENOMEM;
	}
	return 0;
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
	if (rec->seen) {
		f = fopen(path, "we");
		if (!f)
			r = -errno;
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
	for (uint32_t l = 0; rec->seen && l < ctx->n_layers; l++)
		free(rec->seen[l]);
	free(rec->seen);
	free(rec->entries);
	pthread_mutex_destroy(&rec->lock);
	memset(rec, 0, sizeof(*rec));
	return r;
}
