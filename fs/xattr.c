/* SPDX-License-Identifier: MIT */
/*
 * xattr.c - extended attributes from the layer entries, and the daemon's
 * counters as the hidden FS_STATS_XATTR of the root directory.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "fs/fs_internal.h"
#include "fs/log.h"

/* Room for the stats text: a dozen lines of a name and a 64-bit value. */
#define XATTR_STATS_SIZE 8192

/* Layers listed one by one in the counters; an image has a few dozen at
 * most, and the text must fit its buffer. */
#define STATS_LAYERS_MAX 64

/* Appends prefetch progress and per-layer fetch counts at @n. */
static int stats_format_prefetch(const struct fs_ctx *ctx, char *buf,
				 size_t size, size_t n)
{
	const struct fs_prefetch *pf = &ctx->prefetch;
	uint64_t done = atomic_load(&pf->profile_done) +
			atomic_load(&pf->fill_done);
	int m;

	m = snprintf(buf + n, size - n,
		     "prefetch_percent %.1f\n"
		     "prefetch_profile_chunks %zu\n"
		     "prefetch_profile_done %" PRIu64 "\n"
		     "prefetch_fill_chunks %zu\n"
		     "prefetch_fill_done %" PRIu64 "\n"
		     "prefetch_failed %" PRIu64 "\n"
		     "readahead_chunks %" PRIu64 "\n",
		     pf->n ? 100.0 * (double)done / (double)pf->n : 100.0,
		     pf->n_profile, atomic_load(&pf->profile_done),
		     pf->n - pf->n_profile, atomic_load(&pf->fill_done),
		     atomic_load(&pf->failed),
		     atomic_load(&pf->readahead_chunks));
	for (uint32_t i = 0; m >= 0 && (size_t)m < size - n &&
			     i < ctx->n_layers && i < STATS_LAYERS_MAX; i++) {
		n += (size_t)m;
		m = snprintf(buf + n, size - n,
			     "layer%" PRIu32 "_bytes_fetched %" PRIu64 "\n"
			     "layer%" PRIu32 "_blob_size %" PRIu64 "\n",
			     i, atomic_load(&ctx->layers[i].bytes_fetched), i,
			     ctx->layers[i].desc->size);
	}
	return m < 0 ? (int)n : (int)(n + (size_t)m);
}

size_t fs_stats_format(const struct fs_ctx *ctx, char *buf, size_t size)
{
	const struct fs_stats *s = &ctx->stats;
	int n;

#define LOAD(field) atomic_load_explicit(&s->field, memory_order_relaxed)
	n = snprintf(buf, size,
		     "blob_bytes_read %" PRIu64 "\n"
		     "blob_reads %" PRIu64 "\n"
		     "chunks_fetched %" PRIu64 "\n"
		     "cache_hits %" PRIu64 "\n"
		     "cache_misses %" PRIu64 "\n"
		     "bytes_served %" PRIu64 "\n"
		     "blobs_total_size %" PRIu64 "\n"
		     "index_bytes %" PRIu64 "\n"
		     "read_errors %" PRIu64 "\n"
		     "layers %" PRIu32 "\n"
		     "inodes %" PRIu64 "\n"
		     "cache_max %" PRIu64 "\n"
		     "cache_bytes %" PRIu64 "\n"
		     "cache_evicted_bytes %" PRIu64 "\n"
		     "cache_fds %zu\n"
		     "cache_fds_max %zu\n",
		     LOAD(blob_bytes_read), LOAD(blob_reads),
		     LOAD(chunks_fetched), LOAD(cache_hits),
		     LOAD(cache_misses), LOAD(bytes_served),
		     ctx->blobs_size, ctx->index_bytes, LOAD(read_errors),
		     ctx->n_layers, ctx->n_inodes, ctx->evict.max,
		     atomic_load_explicit(&ctx->evict.bytes,
					  memory_order_relaxed),
		     LOAD(cache_evicted_bytes),
		     atomic_load_explicit(&ctx->fdcache.open,
					  memory_order_relaxed),
		     ctx->fdcache.cap);
#undef LOAD
	if (n >= 0 && (size_t)n < size && ctx->remote) {
		const struct fs_remote_stats *r = fs_remote_stats(ctx->remote);
		int m;

#define LOAD(field) atomic_load_explicit(&r->field, memory_order_relaxed)
		m = snprintf(buf + n, size - (size_t)n,
			     "http_requests %" PRIu64 "\n"
			     "http_bytes %" PRIu64 "\n"
			     "http_retries %" PRIu64 "\n"
			     "http_range_ignored %" PRIu64 "\n"
			     "http_auth_refreshes %" PRIu64 "\n"
			     "http_read_errors %" PRIu64 "\n"
			     "http_reads %" PRIu64 "\n"
			     "http_read_latency_us_total %" PRIu64 "\n",
			     LOAD(requests), LOAD(bytes), LOAD(retries),
			     LOAD(range_ignored), LOAD(auth_refreshes),
			     LOAD(errors), LOAD(reads), LOAD(latency_us));
#undef LOAD
		n = m < 0 ? n : n + m;
	}
	if (n >= 0 && (size_t)n < size)
		n = stats_format_prefetch(ctx, buf, size, (size_t)n);
	if (n < 0)
		return 0;
	return (size_t)n < size ? (size_t)n : size - 1;
}

/* Answers a getxattr/listxattr of a value of @len bytes: a size probe
 * (@size 0), too small a buffer, or the value itself. */
static void xattr_reply(fuse_req_t req, const void *value, size_t len,
			size_t size)
{
	if (size == 0)
		fuse_reply_xattr(req, len);
	else if (size < len)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, value, len);
}

/* The entry holding the xattrs of @ino.  Returns 1 with *ret_entry, 0 for
 * an inode without one (a directory the tree made up), or -errno. */
static int xattr_entry(struct fs_ctx *ctx, fuse_ino_t ino, uint32_t *ret_layer,
		       struct index_entry *ret_entry)
{
	struct index_tree_attr attr;
	int r;

	r = index_tree_attr(ctx->tree, ino, &attr);
	if (r < 0)
		return r;
	if (attr.layer == INDEX_TREE_SYNTHETIC)
		return 0;
	if (attr.layer >= ctx->n_layers)
		return -EIO;

	index_reader_entry(ctx->layers[attr.layer].reader, attr.entry,
			   ret_entry);
	*ret_layer = attr.layer;
	return 1;
}

static void xattr_get_stats(fuse_req_t req, size_t size)
{
	char buf[XATTR_STATS_SIZE];
	size_t len;

	len = fs_stats_format(fuse_req_userdata(req), buf, sizeof(buf));
	xattr_reply(req, buf, len, size);
}

void fs_op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
		    size_t size)
{
	struct fs_ctx *ctx = fuse_req_userdata(req);
	const struct index_reader *reader;
	struct index_entry entry;
	struct index_xattr x;
	uint32_t layer, i;
	int r;

	fs_debug("getxattr %" PRIu64 " '%s' size %zu", (uint64_t)ino, name,
		 size);
	if (ino == FUSE_ROOT_ID && strcmp(name, FS_STATS_XATTR) == 0) {
		xattr_get_stats(req, size);
		return;
	}

	r = xattr_entry(ctx, ino, &layer, &entry);
	if (r <= 0) {
		fuse_reply_err(req, r < 0 ? -r : ENODATA);
		return;
	}
	reader = ctx->layers[layer].reader;
	for (i = 0; i < entry.xattr_count; i++) {
		index_reader_xattr(reader, entry.xattr_first + i, &x);
		if (strcmp(x.name, name) == 0) {
			xattr_reply(req, x.value, x.value_len, size);
			return;
		}
	}
	fuse_reply_err(req, ENODATA);
}

/* Writes the NUL-separated names of @entry's xattrs to @buf (when not
 * NULL) and returns their total length. */
static size_t xattr_names(const struct index_reader *reader,
			  const struct index_entry *entry, char *buf)
{
	struct index_xattr x;
	size_t len = 0;
	uint32_t i;

	for (i = 0; i < entry->xattr_count; i++) {
		index_reader_xattr(reader, entry->xattr_first + i, &x);
		if (buf)
			memcpy(buf + len, x.name, x.name_len + 1);
		len += x.name_len + 1;
	}
	return len;
}

void fs_op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct fs_ctx *ctx = fuse_req_userdata(req);
	const struct index_reader *reader;
	struct fs_worker *worker;
	struct index_entry entry;
	uint32_t layer;
	size_t len;
	int r;

	fs_debug("listxattr %" PRIu64 " size %zu", (uint64_t)ino, size);
	r = xattr_entry(ctx, ino, &layer, &entry);
	if (r <= 0) {
		if (r < 0)
			fuse_reply_err(req, -r);
		else
			xattr_reply(req, "", 0, size);
		return;
	}
	reader = ctx->layers[layer].reader;
	len = xattr_names(reader, &entry, NULL);
	if (size == 0 || size < len) {
		xattr_reply(req, NULL, len, size);
		return;
	}

	r = fs_worker_get(&worker);
	if (r >= 0)
		r = fs_worker_reserve_reply(worker, len);
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	xattr_names(reader, &entry, (char *)worker->reply.data);
	fuse_reply_buf(req, (const char *)worker->reply.data, len);
}
