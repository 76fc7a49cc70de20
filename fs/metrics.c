/* SPDX-License-Identifier: MIT */
/*
 * metrics.c - the daemon's counters in the Prometheus text format,
 * rewritten into -o metrics=FILE every interval.
 *
 * A file rather than a listening socket: node_exporter's textfile
 * collector reads such files from a directory, one per mount, and a file
 * needs no port, no access control and no thread blocked in accept().
 * Each rewrite goes to a temporary name that is then renamed, so that a
 * scrape never reads half a file.  Every series carries the mountpoint
 * as a label, so the files of several mounts can be read together.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fs/fs_internal.h"
#include "fs/log.h"

#define METRICS_DEFAULT_INTERVAL 15

static const uint64_t metrics_bounds_us[FS_HIST_BUCKETS] = FS_HIST_BOUNDS_US;

void fs_hist_observe(struct fs_hist *h, uint64_t us)
{
	unsigned int i = 0;

	while (i < FS_HIST_BUCKETS && us > metrics_bounds_us[i])
		i++;
	atomic_fetch_add_explicit(&h->counts[i], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&h->sum_us, us, memory_order_relaxed);
}

#define LOAD(x) atomic_load_explicit(&(x), memory_order_relaxed)

/* The label set every series starts with: the mountpoint, with '\', '"'
 * and newline escaped as the format wants. */
static void metrics_label(const char *mnt, char *out, size_t size)
{
	size_t n = 0;

	for (; *mnt && n + 3 < size; mnt++) {
		if (*mnt == '\\' || *mnt == '"' || *mnt == '\n')
			out[n++] = '\\';
		out[n++] = *mnt == '\n' ? 'n' : *mnt;
	}
	out[n] = '\0';
}

static void metrics_head(FILE *f, const char *name, const char *type,
			 const char *help)
{
	fprintf(f, "# HELP imgfs_%s %s\n# TYPE imgfs_%s %s\n", name, help,
		name, type);
}

/* One family with a single series. */
static void metrics_one(FILE *f, const char *lbl, const char *name,
			const char *type, const char *help, uint64_t v)
{
	metrics_head(f, name, type, help);
	fprintf(f, "imgfs_%s{mountpoint=\"%s\"} %" PRIu64 "\n", name, lbl, v);
}

static void metrics_hist(FILE *f, const char *lbl, const char *source,
			 const struct fs_hist *h)
{
	uint64_t total = 0;
	char le[32];

	for (unsigned int i = 0; i <= FS_HIST_BUCKETS; i++) {
		total += LOAD(h->counts[i]);
		if (i < FS_HIST_BUCKETS)
			snprintf(le, sizeof(le), "%g",
				 (double)metrics_bounds_us[i] / 1e6);
		else
			snprintf(le, sizeof(le), "+Inf");
		fprintf(f, "imgfs_chunk_fetch_seconds_bucket{mountpoint=\"%s\","
			"source=\"%s\",le=\"%s\"} %" PRIu64 "\n", lbl, source,
			le, total);
	}
	fprintf(f, "imgfs_chunk_fetch_seconds_sum{mountpoint=\"%s\",source="
		"\"%s\"} %.6f\n", lbl, source, (double)LOAD(h->sum_us) / 1e6);
	fprintf(f, "imgfs_chunk_fetch_seconds_count{mountpoint=\"%s\",source="
		"\"%s\"} %" PRIu64 "\n", lbl, source, total);
}

/* A per-layer family: of each layer's reads with @reads, else bytes. */
static void metrics_layer_family(FILE *f, const struct fs_ctx *ctx,
				 const char *lbl, const char *name,
				 const char *help, bool reads)
{
	const struct fs_layer *l;

	metrics_head(f, name, "counter", help);
	for (uint32_t i = 0; i < ctx->n_layers; i++) {
		l = &ctx->layers[i];
		fprintf(f, "imgfs_%s{mountpoint=\"%s\",layer=\"%" PRIu32
			"\",digest=\"%s\"} %" PRIu64 "\n", name, lbl, i,
			l->desc->digest,
			reads ? LOAD(l->reads) : LOAD(l->bytes_fetched));
	}
}

static void metrics_layers(FILE *f, const struct fs_ctx *ctx, const char *lbl)
{
	metrics_layer_family(f, ctx, lbl, "layer_fetched_bytes_total",
			     "Blob bytes read for chunks, by layer.", false);
	metrics_layer_family(f, ctx, lbl, "layer_fetch_requests_total",
			     "Blob reads (server requests when remote), by "
			     "layer.", true);
}

static void metrics_errors(FILE *f, const struct fs_ctx *ctx, const char *lbl)
{
	const struct fs_stats *s = &ctx->stats;
	const struct {
		const char *kind;
		uint64_t n;
	} kinds[] = {
		{ "read", LOAD(s->read_errors) },
		{ "fetch", LOAD(s->fetch_errors) },
		{ "corrupt", LOAD(s->corrupt_errors) },
		{ "cache", LOAD(s->cache_errors) },
	};

	metrics_head(f, "errors_total", "counter",
		     "Failures by kind: reads answered with an error, blob "
		     "reads that failed, chunks with wrong bytes, cache files "
		     "that could not be used.");
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		fprintf(f, "imgfs_errors_total{mountpoint=\"%s\",kind=\"%s\"} %"
			PRIu64 "\n", lbl, kinds[i].kind, kinds[i].n);
}

static void metrics_prefetch(FILE *f, const struct fs_ctx *ctx,
			     const char *lbl)
{
	const struct fs_prefetch *pf = &ctx->prefetch;

	metrics_head(f, "prefetch_planned_chunks", "gauge",
		     "Chunks the prefetch (profile) and the fill will fetch.");
	fprintf(f, "imgfs_prefetch_planned_chunks{mountpoint=\"%s\",part="
		"\"profile\"} %zu\n", lbl, pf->n_profile);
	fprintf(f, "imgfs_prefetch_planned_chunks{mountpoint=\"%s\",part="
		"\"fill\"} %zu\n", lbl, pf->n - pf->n_profile);
	metrics_head(f, "prefetch_done_chunks", "gauge",
		     "Planned chunks handled so far.");
	fprintf(f, "imgfs_prefetch_done_chunks{mountpoint=\"%s\",part="
		"\"profile\"} %" PRIu64 "\n", lbl, LOAD(pf->profile_done));
	fprintf(f, "imgfs_prefetch_done_chunks{mountpoint=\"%s\",part="
		"\"fill\"} %" PRIu64 "\n", lbl, LOAD(pf->fill_done));
	metrics_one(f, lbl, "prefetch_failed_chunks_total", "counter",
		    "Planned chunks that could not be fetched.",
		    LOAD(pf->failed));
}

/* A family with one series, for the tables below. */
struct metrics_simple {
	const char *name;
	const char *type;
	const char *help;
	uint64_t value;
};

static void metrics_table(FILE *f, const char *lbl,
			  const struct metrics_simple *t, size_t n)
{
	for (size_t i = 0; i < n; i++)
		metrics_one(f, lbl, t[i].name, t[i].type, t[i].help,
			    t[i].value);
}

static void metrics_remote(FILE *f, const struct fs_ctx *ctx, const char *lbl)
{
	const struct fs_remote_stats *r = fs_remote_stats(ctx->remote);
	const struct metrics_simple t[] = {
		{ "http_requests_total", "counter", "HTTP requests sent.",
		  LOAD(r->requests) },
		{ "http_bytes_total", "counter", "HTTP body bytes received.",
		  LOAD(r->bytes) },
		{ "http_retries_total", "counter", "HTTP requests retried.",
		  LOAD(r->retries) },
		{ "http_errors_total", "counter",
		  "Blob reads from the server that failed.", LOAD(r->errors) },
	};

	metrics_table(f, lbl, t, sizeof(t) / sizeof(t[0]));
}

/* Writes every family to @f. */
static void metrics_format(FILE *f, const struct fs_ctx *ctx)
{
	const struct fs_stats *s = &ctx->stats;
	const struct metrics_simple t[] = {
		{ "blob_read_bytes_total", "counter",
		  "Bytes read from the layer blobs.",
		  LOAD(s->blob_bytes_read) },
		{ "blob_reads_total", "counter", "Reads from the layer blobs.",
		  LOAD(s->blob_reads) },
		{ "chunks_fetched_total", "counter",
		  "Chunks fetched and verified.", LOAD(s->chunks_fetched) },
		{ "cache_hits_total", "counter",
		  "Chunk lookups answered by the cache.", LOAD(s->cache_hits) },
		{ "cache_misses_total", "counter",
		  "Chunk lookups that had to fetch.", LOAD(s->cache_misses) },
		{ "cache_bytes", "gauge", "Estimated size of the chunk cache.",
		  LOAD(ctx->evict.bytes) },
		{ "cache_max_bytes", "gauge",
		  "Cap on the chunk cache (0: none).", ctx->evict.max },
		{ "cache_evicted_bytes_total", "counter",
		  "Bytes evicted from the cache.",
		  LOAD(s->cache_evicted_bytes) },
		{ "served_bytes_total", "counter",
		  "Bytes returned to programs' reads.", LOAD(s->bytes_served) },
	};
	char lbl[1024];

	metrics_label(ctx->mountpoint ? ctx->mountpoint : "", lbl, sizeof(lbl));
	metrics_table(f, lbl, t, sizeof(t) / sizeof(t[0]));
	metrics_layers(f, ctx, lbl);
	metrics_errors(f, ctx, lbl);
	metrics_head(f, "chunk_fetch_seconds", "histogram",
		     "Time to read chunk frames from the blob, by source.");
	metrics_hist(f, lbl, "local", &s->fetch_local);
	metrics_hist(f, lbl, "remote", &s->fetch_remote);
	metrics_prefetch(f, ctx, lbl);
	if (ctx->remote)
		metrics_remote(f, ctx, lbl);
}

static int metrics_write(const struct fs_ctx *ctx)
{
	const char *path = ctx->metrics.path;
	char *tmp;
	FILE *f;
	int r = 0;

	if (asprintf(&tmp, "%s.tmp", path) < 0)
		return -ENOMEM;
	f = fopen(tmp, "we");
	if (!f) {
		r = -errno;
		goto out;
	}
	metrics_format(f, ctx);
	if (ferror(f))
		r = -EIO;
	if (fclose(f) != 0 && r >= 0)
		r = -errno;
	if (r >= 0 && rename(tmp, path) < 0)
		r = -errno;
	if (r < 0)
		unlink(tmp);

out:
	free(tmp);
	return r;
}

static void *metrics_thread(void *arg)
{
	struct fs_ctx *ctx = arg;
	struct fs_metrics *m = &ctx->metrics;
	static struct fs_ratelimit rl = FS_RATELIMIT_INIT;
	struct timespec until;
	bool stop = false;
	int r;

	while (!stop) {
		r = metrics_write(ctx);
		if (r < 0)
			fs_log_limited(&rl, LOG_ERR, "cannot write metrics "
				       "file %s: %s", m->path, fs_strerror(-r));

		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_sec += m->interval_s;
		pthread_mutex_lock(&m->lock);
		while (!m->stop &&
		       pthread_cond_timedwait(&m->cond, &m->lock, &until) !=
			       ETIMEDOUT)
			;
		stop = m->stop;
		pthread_mutex_unlock(&m->lock);
	}
	/* The last numbers, as the daemon stops. */
	metrics_write(ctx);
	return NULL;
}

/* A condition variable that waits on CLOCK_MONOTONIC, so that setting
 * the clock does not stretch or skip an interval. */
static int metrics_cond_init(pthread_cond_t *cond)
{
	pthread_condattr_t attr;
	int r;

	r = pthread_condattr_init(&attr);
	if (r != 0)
		return -r;
	r = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	if (r == 0)
		r = pthread_cond_init(cond, &attr);
	pthread_condattr_destroy(&attr);
	return -r;
}

int fs_metrics_start(struct fs_ctx *ctx)
{
	struct fs_metrics *m = &ctx->metrics;
	const char *file = ctx->opts->metrics_file;
	char cwd[4096];
	int r;

	if (!file)
		return 0;
	if (file[0] == '/')
		m->path = strdup(file);
	else if (getcwd(cwd, sizeof(cwd)) &&
		 asprintf(&m->path, "%s/%s", cwd, file) < 0)
		m->path = NULL;
	if (!m->path)
		return -ENOMEM;
	m->interval_s = ctx->opts->metrics_interval_s ?
				ctx->opts->metrics_interval_s :
				METRICS_DEFAULT_INTERVAL;

	r = metrics_cond_init(&m->cond);
	if (r < 0)
		goto err_free;
	pthread_mutex_init(&m->lock, NULL);
	r = -pthread_create(&m->thread, NULL, metrics_thread, ctx);
	if (r < 0)
		goto err_destroy;
	m->started = true;
	return 0;

err_destroy:
	pthread_mutex_destroy(&m->lock);
	pthread_cond_destroy(&m->cond);
err_free:
	fs_log(LOG_ERR, "cannot start writing metrics to %s: %s", m->path,
	       fs_strerror(-r));
	free(m->path);
	m->path = NULL;
	return r;
}

void fs_metrics_stop(struct fs_ctx *ctx)
{
	struct fs_metrics *m = &ctx->metrics;

	if (m->started) {
		pthread_mutex_lock(&m->lock);
		m->stop = true;
		pthread_cond_signal(&m->cond);
		pthread_mutex_unlock(&m->lock);
		pthread_join(m->thread, NULL);
		pthread_mutex_destroy(&m->lock);
		pthread_cond_destroy(&m->cond);
		m->started = false;
	}
	free(m->path);
	m->path = NULL;
}
