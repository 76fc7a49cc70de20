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
#include <limits.h>
#include <stddef.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fs/fs_internal.h"
#include "fs/log.h"

#define METRICS_DEFAULT_INTERVAL 15

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

static const uint64_t metrics_bounds_us[FS_HIST_BUCKETS] = FS_HIST_BOUNDS_US;

/* Label sets are the mountpoint, escaped; longer ones are cut. */
#define METRICS_LABEL_SIZE 1024

struct fs_metrics {
	struct fs_ctx *const *ctxs; /* immutable; borrowed */
	unsigned int n; /* immutable */
	char (*labels)[METRICS_LABEL_SIZE]; /* immutable: one per ctx */
	char *path; /* immutable; owned */
	unsigned int interval_s; /* immutable */
	pthread_t thread;
	pthread_mutex_t lock; /* guards stop */
	pthread_cond_t cond; /* signalled when stop is set */
	bool stop;
};

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

/* A family with one series per mount, read from an atomic counter at
 * @off in struct fs_ctx, or in struct fs_remote_stats with @remote. */
struct metrics_counter {
	const char *name;
	const char *type;
	const char *help;
	size_t off;
};

#define CTX_AT(field) offsetof(struct fs_ctx, field)
#define REMOTE_AT(field) offsetof(struct fs_remote_stats, field)

static const struct metrics_counter metrics_counters[] = {
	{ "blob_read_bytes_total", "counter",
	  "Bytes read from the layer blobs.", CTX_AT(stats.blob_bytes_read) },
	{ "blob_reads_total", "counter", "Reads from the layer blobs.",
	  CTX_AT(stats.blob_reads) },
	{ "chunks_fetched_total", "counter", "Chunks fetched and verified.",
	  CTX_AT(stats.chunks_fetched) },
	{ "cache_hits_total", "counter",
	  "Chunk lookups answered by the cache.", CTX_AT(stats.cache_hits) },
	{ "cache_misses_total", "counter", "Chunk lookups that had to fetch.",
	  CTX_AT(stats.cache_misses) },
	{ "cache_bytes", "gauge", "Estimated size of the chunk cache.",
	  CTX_AT(evict.bytes) },
	{ "cache_evicted_bytes_total", "counter",
	  "Bytes evicted from the cache.", CTX_AT(stats.cache_evicted_bytes) },
	{ "served_bytes_total", "counter",
	  "Bytes returned to programs' reads.", CTX_AT(stats.bytes_served) },
};

static const struct metrics_counter metrics_remote_counters[] = {
	{ "http_requests_total", "counter", "HTTP requests sent.",
	  REMOTE_AT(requests) },
	{ "http_bytes_total", "counter", "HTTP body bytes received.",
	  REMOTE_AT(bytes) },
	{ "http_retries_total", "counter", "HTTP requests retried.",
	  REMOTE_AT(retries) },
	{ "http_errors_total", "counter",
	  "Blob reads from the server that failed.", REMOTE_AT(errors) },
};

static uint64_t metrics_at(const void *base, size_t off)
{
	const _Atomic uint64_t *p =
		(const _Atomic uint64_t *)((const char *)base + off);

	return atomic_load_explicit(p, memory_order_relaxed);
}

static void metrics_counters_all(FILE *f, const struct fs_metrics *m)
{
	const struct metrics_counter *c;

	for (size_t i = 0; i < ARRAY_SIZE(metrics_counters); i++) {
		c = &metrics_counters[i];
		metrics_head(f, c->name, c->type, c->help);
		for (unsigned int k = 0; k < m->n; k++)
			fprintf(f, "imgfs_%s{mountpoint=\"%s\"} %" PRIu64 "\n",
				c->name, m->labels[k],
				metrics_at(m->ctxs[k], c->off));
	}
	metrics_head(f, "cache_max_bytes", "gauge",
		     "Cap on the chunk cache (0: none).");
	for (unsigned int k = 0; k < m->n; k++)
		fprintf(f, "imgfs_cache_max_bytes{mountpoint=\"%s\"} %" PRIu64
			"\n", m->labels[k], m->ctxs[k]->evict.max);
}

/* Only mounts of remote sources have these. */
static void metrics_remote_all(FILE *f, const struct fs_metrics *m)
{
	const struct metrics_counter *c;
	bool any = false;

	for (unsigned int k = 0; k < m->n; k++)
		any |= m->ctxs[k]->remote != NULL;
	for (size_t i = 0; any && i < ARRAY_SIZE(metrics_remote_counters);
	     i++) {
		c = &metrics_remote_counters[i];
		metrics_head(f, c->name, c->type, c->help);
		for (unsigned int k = 0; k < m->n; k++) {
			if (!m->ctxs[k]->remote)
				continue;
			fprintf(f, "imgfs_%s{mountpoint=\"%s\"} %" PRIu64 "\n",
				c->name, m->labels[k],
				metrics_at(fs_remote_stats(m->ctxs[k]->remote),
					   c->off));
		}
	}
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

static void metrics_hist_all(FILE *f, const struct fs_metrics *m)
{
	metrics_head(f, "chunk_fetch_seconds", "histogram",
		     "Time to read chunk frames from the blob, by source.");
	for (unsigned int k = 0; k < m->n; k++) {
		metrics_hist(f, m->labels[k], "local",
			     &m->ctxs[k]->stats.fetch_local);
		metrics_hist(f, m->labels[k], "remote",
			     &m->ctxs[k]->stats.fetch_remote);
	}
}

/* A per-layer family: of each layer's reads with @reads, else bytes. */
static void metrics_layer_family(FILE *f, const struct fs_metrics *m,
				 const char *name, const char *help,
				 bool reads)
{
	const struct fs_layer *l;

	metrics_head(f, name, "counter", help);
	for (unsigned int k = 0; k < m->n; k++) {
		for (uint32_t i = 0; i < m->ctxs[k]->n_layers; i++) {
			l = &m->ctxs[k]->layers[i];
			fprintf(f, "imgfs_%s{mountpoint=\"%s\",layer=\"%" PRIu32
				"\",digest=\"%s\"} %" PRIu64 "\n", name,
				m->labels[k], i, l->desc->digest,
				reads ? LOAD(l->reads) :
					LOAD(l->bytes_fetched));
		}
	}
}

static void metrics_errors(FILE *f, const struct fs_metrics *m)
{
	static const struct {
		const char *kind;
		size_t off;
	} kinds[] = {
		{ "read", CTX_AT(stats.read_errors) },
		{ "fetch", CTX_AT(stats.fetch_errors) },
		{ "corrupt", CTX_AT(stats.corrupt_errors) },
		{ "cache", CTX_AT(stats.cache_errors) },
	};

	metrics_head(f, "errors_total", "counter",
		     "Failures by kind: reads answered with an error, blob "
		     "reads that failed, chunks with wrong bytes, cache files "
		     "that could not be used.");
	for (unsigned int k = 0; k < m->n; k++)
		for (size_t i = 0; i < ARRAY_SIZE(kinds); i++)
			fprintf(f, "imgfs_errors_total{mountpoint=\"%s\",kind="
				"\"%s\"} %" PRIu64 "\n", m->labels[k],
				kinds[i].kind,
				metrics_at(m->ctxs[k], kinds[i].off));
}

/* A prefetch family: with @done, the chunks handled, else planned. */
static void metrics_prefetch_family(FILE *f, const struct fs_metrics *m,
				    const char *name, const char *help,
				    bool done)
{
	const struct fs_prefetch *pf;

	metrics_head(f, name, "gauge", help);
	for (unsigned int k = 0; k < m->n; k++) {
		pf = &m->ctxs[k]->prefetch;
		fprintf(f, "imgfs_%s{mountpoint=\"%s\",part=\"profile\"} %"
			PRIu64 "\n", name, m->labels[k],
			done ? LOAD(pf->profile_done) :
			       (uint64_t)pf->n_profile);
		fprintf(f, "imgfs_%s{mountpoint=\"%s\",part=\"fill\"} %" PRIu64
			"\n", name, m->labels[k],
			done ? LOAD(pf->fill_done) :
			       (uint64_t)(pf->n - pf->n_profile));
	}
}

static void metrics_prefetch(FILE *f, const struct fs_metrics *m)
{
	metrics_prefetch_family(f, m, "prefetch_planned_chunks",
				"Chunks the prefetch (profile) and the fill "
				"will fetch.", false);
	metrics_prefetch_family(f, m, "prefetch_done_chunks",
				"Planned chunks handled so far.", true);
	metrics_head(f, "prefetch_failed_chunks_total", "counter",
		     "Planned chunks that could not be fetched.");
	for (unsigned int k = 0; k < m->n; k++)
		fprintf(f, "imgfs_prefetch_failed_chunks_total{mountpoint="
			"\"%s\"} %" PRIu64 "\n", m->labels[k],
			LOAD(m->ctxs[k]->prefetch.failed));
}

/* Writes every family, each with the series of every mount. */
static void metrics_format(FILE *f, const struct fs_metrics *m)
{
	metrics_counters_all(f, m);
	metrics_layer_family(f, m, "layer_fetched_bytes_total",
			     "Blob bytes read for chunks, by layer.", false);
	metrics_layer_family(f, m, "layer_fetch_requests_total",
			     "Blob reads (server requests when remote), by "
			     "layer.", true);
	metrics_errors(f, m);
	metrics_hist_all(f, m);
	metrics_prefetch(f, m);
	metrics_remote_all(f, m);
}

static int metrics_write(const struct fs_metrics *m)
{
	char *tmp;
	FILE *f;
	int r = 0;

	if (asprintf(&tmp, "%s.tmp", m->path) < 0)
		return -ENOMEM;
	f = fopen(tmp, "we");
	if (!f) {
		r = -errno;
		goto out;
	}
	metrics_format(f, m);
	if (ferror(f))
		r = -EIO;
	if (fclose(f) != 0 && r >= 0)
		r = -errno;
	if (r >= 0 && rename(tmp, m->path) < 0)
		r = -errno;
	if (r < 0)
		unlink(tmp);

out:
	free(tmp);
	return r;
}

static void *metrics_thread(void *arg)
{
	struct fs_metrics *m = arg;
	static struct fs_ratelimit rl = FS_RATELIMIT_INIT;
	struct timespec until;
	bool stop;
	int r;

	/* fs_metrics_start() wrote the first numbers. */
	for (;;) {
		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_sec += m->interval_s;
		pthread_mutex_lock(&m->lock);
		while (!m->stop &&
		       pthread_cond_timedwait(&m->cond, &m->lock, &until) !=
			       ETIMEDOUT)
			;
		stop = m->stop;
		pthread_mutex_unlock(&m->lock);
		if (stop)
			break;
		r = metrics_write(m);
		if (r < 0)
			fs_log_limited(&rl, LOG_ERR, "cannot write metrics "
				       "file %s: %s", m->path, fs_strerror(-r));
	}
	/* The last numbers, as the daemon stops. */
	metrics_write(m);
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

/* The parts of a writer that need no thread: path, labels. */
static int metrics_new(struct fs_ctx *const *ctxs, unsigned int n,
		       const struct fs_options *opts, struct fs_metrics **ret_m)
{
	const char *file = opts->metrics_file;
	struct fs_metrics *m;
	char cwd[PATH_MAX];

	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->ctxs = ctxs;
	m->n = n;
	m->interval_s = opts->metrics_interval_s ? opts->metrics_interval_s :
						   METRICS_DEFAULT_INTERVAL;
	m->labels = calloc(n, sizeof(*m->labels));
	if (file[0] == '/')
		m->path = strdup(file);
	else if (getcwd(cwd, sizeof(cwd)) &&
		 asprintf(&m->path, "%s/%s", cwd, file) < 0)
		m->path = NULL;
	if (!m->labels || !m->path) {
		free(m->labels);
		free(m->path);
		free(m);
		return -ENOMEM;
	}
	for (unsigned int k = 0; k < n; k++)
		metrics_label(ctxs[k]->mountpoint ? ctxs[k]->mountpoint : "",
			      m->labels[k], sizeof(m->labels[k]));
	*ret_m = m;
	return 0;
}

int fs_metrics_start(struct fs_ctx *const *ctxs, unsigned int n,
		     const struct fs_options *opts, struct fs_metrics **ret_m)
{
	struct fs_metrics *m;
	int r;

	*ret_m = NULL;
	if (!opts->metrics_file)
		return 0;
	r = metrics_new(ctxs, n, opts, &m);
	if (r < 0)
		goto err;
	/* A file that cannot be written now is a mistake in the options:
	 * refuse to start rather than log it every interval. */
	r = metrics_write(m);
	if (r < 0) {
		fs_log(LOG_ERR, "cannot write metrics file %s: %s", m->path,
		       fs_strerror(-r));
		free(m->labels);
		free(m->path);
		free(m);
		return r;
	}
	r = metrics_cond_init(&m->cond);
	if (r < 0)
		goto err_free;
	pthread_mutex_init(&m->lock, NULL);
	r = -pthread_create(&m->thread, NULL, metrics_thread, m);
	if (r < 0)
		goto err_destroy;
	*ret_m = m;
	return 0;

err_destroy:
	pthread_mutex_destroy(&m->lock);
	pthread_cond_destroy(&m->cond);
err_free:
	free(m->labels);
	free(m->path);
	free(m);
err:
	fs_log(LOG_ERR, "cannot start writing metrics to %s: %s",
	       opts->metrics_file, fs_strerror(-r));
	return r;
}

void fs_metrics_stop(struct fs_metrics *m)
{
	if (!m)
		return;
	pthread_mutex_lock(&m->lock);
	m->stop = true;
	pthread_cond_signal(&m->cond);
	pthread_mutex_unlock(&m->lock);
	pthread_join(m->thread, NULL);
	pthread_mutex_destroy(&m->lock);
	pthread_cond_destroy(&m->cond);
	free(m->labels);
	free(m->path);
	free(m);
}
