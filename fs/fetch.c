/* SPDX-License-Identifier: MIT */
/*
 * fetch.c - reading one chunk's zstd frame from its layer blob,
 * decompressing it and checking it against the index.
 *
 * Everything read from the blob is untrusted until its SHA-256 matches
 * the index (which the manifest pins): sizes are checked before any
 * buffer is sized from them, and a frame must decode to exactly the
 * length the index gives.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <openssl/sha.h>

#include "fs/fs_internal.h"
#include "fs/log.h"

/* A broken blob fails every read that touches it. */
static struct fs_ratelimit fetch_ratelimit = FS_RATELIMIT_INIT;

/* Logs why a fetch failed; the caller returns -EIO to the reader. */
static void fetch_fail(const struct fs_layer *layer, uint32_t chunk_no,
		       const struct index_chunk *chunk, const char *cause)
{
	fs_log_limited(&fetch_ratelimit, LOG_ERR,
		       "cannot fetch chunk %" PRIu32 " of '%s' at blob offset %"
		       PRIu64 ": %s", chunk_no, layer->desc->digest,
		       chunk->blob_off, cause);
}

/* Counts blob bytes read, in all and for their layer. */
static void fetch_count(struct fs_ctx *ctx, const struct fs_layer *layer,
			uint64_t n)
{
	fs_stat_add(ctx, blob_bytes_read, n);
	atomic_fetch_add_explicit(&ctx->layers[layer - ctx->layers].bytes_fetched,
				  n, memory_order_relaxed);
}

/* The frame from the server: one range request (retried inside). */
static int fetch_remote_frame(struct fs_ctx *ctx, struct fs_worker *worker,
			      const struct fs_layer *layer,
			      const struct index_chunk *chunk,
			      const char **ret_cause)
{
	int r;

	r = fs_remote_blob_read(ctx->remote, layer->desc->digest, chunk->blob_off,
			     chunk->blob_len, worker->zframe.data,
			     worker->err, sizeof(worker->err));
	fs_stat_add(ctx, blob_reads, 1);
	if (r < 0) {
		*ret_cause = worker->err[0] ? worker->err : fs_strerror(-r);
		return r == -ENOMEM ? r : -EIO;
	}
	fetch_count(ctx, layer, chunk->blob_len);
	return 0;
}

static int fetch_local_frame(struct fs_ctx *ctx, struct fs_worker *worker,
			     const struct fs_layer *layer,
			     const struct index_chunk *chunk,
			     const char **ret_cause)
{
	ssize_t n;

	n = fs_uring_read(fs_worker_ring(worker), layer->blob_fd,
			  worker->zframe.data, chunk->blob_len,
			  chunk->blob_off);
	fs_stat_add(ctx, blob_reads, 1);
	if (n > 0)
		fetch_count(ctx, layer, (uint64_t)n);

	if (n < 0) {
		*ret_cause = fs_strerror((int)-n);
		return -EIO;
	}
	if ((size_t)n < chunk->blob_len) {
		*ret_cause = "blob ends inside the frame";
		return -EIO;
	}
	return 0;
}

/* Counts a blob read of @layer that started at @start_us (fs_now_us())
 * and ended with @r. */
static void fetch_observe(struct fs_ctx *ctx, const struct fs_layer *layer,
			  uint64_t start_us, int r)
{
	atomic_fetch_add_explicit(&ctx->layers[layer - ctx->layers].reads, 1,
				  memory_order_relaxed);
	if (r < 0)
		fs_stat_add(ctx, fetch_errors, 1);
	else
		fs_hist_observe(ctx->remote ? &ctx->stats.fetch_remote :
					      &ctx->stats.fetch_local,
				fs_now_us() - start_us);
}

static int fetch_read_frame(struct fs_ctx *ctx, struct fs_worker *worker,
			    const struct fs_layer *layer,
			    const struct index_chunk *chunk,
			    const char **ret_cause)
{
	uint64_t start = fs_now_us();
	int r;

	if (ctx->remote)
		r = fetch_remote_frame(ctx, worker, layer, chunk, ret_cause);
	else
		r = fetch_local_frame(ctx, worker, layer, chunk, ret_cause);
	fetch_observe(ctx, layer, start, r);
	return r;
}

/* Decompresses the frame at @src into worker->chunk. */
static int fetch_decompress(struct fs_worker *worker,
			    const struct index_chunk *chunk, const uint8_t *src,
			    const char **ret_cause)
{
	unsigned long long declared;
	size_t n;

	/* The frame header must announce the index's length before any
	 * output is produced; a frame without a content size is refused. */
	declared = ZSTD_getFrameContentSize(src, chunk->blob_len);
	if (declared != chunk->tar_len) {
		*ret_cause = "frame size differs from the index";
		return -EIO;
	}
	n = ZSTD_findFrameCompressedSize(src, chunk->blob_len);
	if (ZSTD_isError(n) || n != chunk->blob_len) {
		*ret_cause = "chunk is not exactly one zstd frame";
		return -EIO;
	}

	n = ZSTD_decompressDCtx(worker->dctx, worker->chunk.data,
				chunk->tar_len, src, chunk->blob_len);
	if (ZSTD_isError(n)) {
		*ret_cause = ZSTD_getErrorName(n);
		return -EIO;
	}
	if (n != chunk->tar_len) {
		*ret_cause = "frame decodes to a different size";
		return -EIO;
	}
	return 0;
}

/* Sizes the index gives are untrusted too: bound them before any buffer
 * is sized from them. */
static bool fetch_sizes_ok(const struct index_chunk *chunk)
{
	return chunk->tar_len <= INDEX_CHUNK_MAX && chunk->blob_len != 0 &&
	       chunk->blob_len <= ZSTD_compressBound(INDEX_CHUNK_MAX);
}

int fs_fetch_decode(struct fs_ctx *ctx, struct fs_worker *worker,
		    uint32_t layer, uint32_t chunk_no,
		    const struct index_chunk *chunk, const uint8_t *frame)
{
	const struct fs_layer *l = &ctx->layers[layer];
	uint8_t md[SHA256_DIGEST_LENGTH];
	const char *cause;
	int r;

	if (!fetch_sizes_ok(chunk)) {
		fetch_fail(l, chunk_no, chunk, "chunk size out of range");
		return -EIO;
	}
	r = fs_buf_reserve(&worker->chunk, chunk->tar_len);
	if (r < 0)
		return r;
	r = fetch_decompress(worker, chunk, frame, &cause);
	if (r < 0) {
		r = -EBADMSG;
		goto err_fail;
	}

	SHA256(worker->chunk.data, chunk->tar_len, md);
	if (memcmp(md, chunk->sha256, sizeof(md)) != 0) {
		cause = "SHA-256 mismatch";
		r = -EBADMSG;
		goto err_fail;
	}

	fs_stat_add(ctx, chunks_fetched, 1);
	return 0;

err_fail:
	fs_stat_add(ctx, corrupt_errors, 1);
	fetch_fail(l, chunk_no, chunk, cause);
	return r;
}

int fs_fetch_chunk(struct fs_ctx *ctx, struct fs_worker *worker,
		   uint32_t layer, uint32_t chunk_no,
		   const struct index_chunk *chunk)
{
	const struct fs_layer *l = &ctx->layers[layer];
	const char *cause;
	int r;

	if (!fetch_sizes_ok(chunk)) {
		fetch_fail(l, chunk_no, chunk, "chunk size out of range");
		return -EIO;
	}
	r = fs_buf_reserve(&worker->zframe, chunk->blob_len);
	if (r < 0)
		return r;
	r = fetch_read_frame(ctx, worker, l, chunk, &cause);
	if (r < 0) {
		fetch_fail(l, chunk_no, chunk, cause);
		return r;
	}
	return fs_fetch_decode(ctx, worker, layer, chunk_no, chunk,
			       worker->zframe.data);
}

int fs_fetch_span(struct fs_ctx *ctx, struct fs_worker *worker,
		  uint32_t layer, uint32_t first_no,
		  const struct index_chunk *chunks, uint32_t n)
{
	const struct fs_layer *l = &ctx->layers[layer];
	const struct index_chunk *last = &chunks[n - 1];
	uint64_t len = last->blob_off + last->blob_len - chunks[0].blob_off;
	uint64_t start;
	int r;

	if (len > FS_SPAN_MAX_BYTES) {
		fetch_fail(l, first_no, &chunks[0], "span too large");
		return -EIO;
	}
	r = fs_buf_reserve(&worker->span, (size_t)len);
	if (r < 0)
		return r;
	start = fs_now_us();
	r = fs_remote_blob_read(ctx->remote, l->desc->digest, chunks[0].blob_off,
			     (size_t)len, worker->span.data, worker->err,
			     sizeof(worker->err));
	fs_stat_add(ctx, blob_reads, 1);
	fetch_observe(ctx, l, start, r);
	if (r < 0) {
		fetch_fail(l, first_no, &chunks[0],
			   worker->err[0] ? worker->err : fs_strerror(-r));
		return r == -ENOMEM ? r : -EIO;
	}
	fetch_count(ctx, l, len);
	return 0;
}
