/* SPDX-License-Identifier: MIT */
/*
 * read.c - answering FUSE reads: inode -> layer entry -> tar range ->
 * chunks -> cache files.
 *
 * A regular file's bytes are one range of its layer's tar, starting at
 * the entry's data_off; the range may start inside a chunk (small files
 * share chunks) and cover many.  The reply normally points the kernel at
 * the cache files themselves (fd-backed buffers, spliced without a copy
 * through user space).  Sparse files, reads over very many chunks and
 * replies too big for a pipe this process may make are read into the
 * worker's registered buffer instead, all pieces in one io_uring
 * submission, and written with one writev.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "fs/fs_internal.h"
#include "fs/log.h"

/* Walks the chunks covering a tar range, one piece per chunk. */
struct read_iter {
	const struct fs_layer *layer; /* for messages */
	const struct index_reader *reader;
	uint64_t pos; /* next tar offset to cover */
	uint64_t end; /* tar offset just past the range */
	uint32_t chunk_no; /* chunk holding pos */
	uint32_t last_chunk; /* chunk holding the range's last byte */
};

struct read_piece {
	uint32_t chunk_no;
	uint32_t in_chunk; /* offset of the piece inside the chunk */
	uint32_t len;
};

/* A validated index covers every entry's data with chunks, so this means
 * an index the reader should have refused. */
static int read_iter_fail(const struct read_iter *it)
{
	fs_log(LOG_ERR, "chunks of '%s' do not cover tar offset %" PRIu64,
	       it->layer->desc->digest, it->pos);
	return -EIO;
}

static int read_iter_start(struct read_iter *it, const struct fs_layer *layer,
			   uint64_t tar_off, uint64_t len)
{
	it->layer = layer;
	it->reader = layer->reader;
	it->pos = tar_off;
	it->end = tar_off + len;
	if (it->end < tar_off)
		return read_iter_fail(it);
	if (len == 0)
		return 0;
	if (index_reader_find_chunk(it->reader, tar_off, &it->chunk_no) < 0 ||
	    index_reader_find_chunk(it->reader, it->end - 1,
				    &it->last_chunk) < 0)
		return read_iter_fail(it);
	return 0;
}

/* Returns 1 with the next piece, 0 once the range is covered, or -EIO if
 * the chunks leave a gap. */
static int read_iter_next(struct read_iter *it, struct read_piece *ret)
{
	uint32_t n = index_reader_chunk_count(it->reader);
	struct index_chunk c;
	uint64_t c_end;

	while (it->pos < it->end) {
		if (it->chunk_no >= n)
			return read_iter_fail(it);
		index_reader_chunk(it->reader, it->chunk_no, &c);
		c_end = c.tar_off + c.tar_len;
		if (c.tar_off > it->pos || c_end <= it->pos) {
			/* Empty chunks hold nothing; anything else is a gap. */
			if (c.tar_len == 0 && c.tar_off == it->pos) {
				it->chunk_no++;
				continue;
			}
			return read_iter_fail(it);
		}
		ret->chunk_no = it->chunk_no;
		ret->in_chunk = (uint32_t)(it->pos - c.tar_off);
		ret->len = (uint32_t)((c_end < it->end ? c_end : it->end) -
				      it->pos);
		it->pos += ret->len;
		it->chunk_no++;
		return 1;
	}
	return 0;
}

static int read_count_pieces(const struct fs_layer *layer, uint64_t tar_off, uint64_t len, size_t limit,
			     size_t *ret_count)
{
	struct read_piece p;
	struct read_iter it;
	size_t n = 0;
	int r;

	r = read_iter_start(&it, layer, tar_off, len);
	while (r >= 0 && n <= limit) {
		r = read_iter_next(&it, &p);
		if (r <= 0)
			break;
		n++;
	}
	*ret_count = n;
	return r < 0 ? r : 0;
}

/*
 * Takes the next pieces of @it, at most @max, into worker->pieces: each
 * with a held descriptor of its chunk's cache file (fetched first if
 * need be) and, when @dst is not NULL, the place in @dst its bytes go.
 * *ret_n gets the pieces taken, which the caller gives back with
 * read_release() whatever the result.  Returns 1 when pieces are left,
 * 0 when the range is covered, or -errno.
 */
static int read_hold(struct fs_ctx *ctx, struct fs_worker *worker,
		     uint32_t layer, struct read_iter *it, uint8_t *dst,
		     size_t max, size_t *ret_n)
{
	struct read_piece p;
	size_t n = 0;
	int fd, r = 1;

	while (n < max) {
		r = read_iter_next(it, &p);
		if (r <= 0)
			break;
		fs_record_touch(ctx, layer, p.chunk_no);
		r = fs_cache_chunk_fd(ctx, worker, layer, p.chunk_no,
				      it->last_chunk, &fd);
		if (r < 0)
			break;
		/* A sequential read entering a chunk: bring in this chunk
		 * and the next one ahead. */
		if (p.in_chunk == 0 && worker->read_seq) {
			fs_cache_hint(ctx, layer, p.chunk_no, fd);
			fs_cache_hint(ctx, layer, p.chunk_no + 1, -1);
		}
		worker->pieces[n] = (struct fs_uring_io){
			.fd = fd,
			.buf = dst,
			.len = p.len,
			.off = p.in_chunk,
		};
		worker->piece_chunks[n] = p.chunk_no;
		if (dst)
			dst += p.len;
		n++;
		r = 1;
	}
	*ret_n = n;
	return r;
}

static void read_release(struct fs_ctx *ctx, struct fs_worker *worker,
			 uint32_t layer, size_t n)
{
	for (size_t i = 0; i < n; i++)
		fs_fdcache_put(ctx, layer, worker->piece_chunks[i],
			       worker->pieces[i].fd);
}

/* Copies tar range [tar_off, + len) of @layer into @dst, up to
 * FS_READ_MAX_FDS pieces per batch of reads. */
static int read_copy(struct fs_ctx *ctx, struct fs_worker *worker,
		     uint32_t layer, uint64_t tar_off, uint64_t len,
		     uint8_t *dst)
{
	struct read_iter it;
	size_t n, i;
	int r, more;

	r = fs_worker_reserve_bufv(worker, FS_READ_MAX_FDS);
	if (r < 0)
		return r;
	r = read_iter_start(&it, &ctx->layers[layer], tar_off, len);
	if (r < 0 || len == 0)
		return r;
	do {
		more = read_hold(ctx, worker, layer, &it, dst,
				 FS_READ_MAX_FDS, &n);
		r = more < 0 ? more :
			       fs_uring_read_all(fs_worker_ring(worker),
						 worker->pieces, n);
		for (i = 0; i < n; i++)
			dst += worker->pieces[i].len;
		read_release(ctx, worker, layer, n);
	} while (r >= 0 && more > 0);
	/* The files were verified to hold their whole chunks, so a short
	 * read is the disk's fault. */
	return r;
}

/* Replies with the cache files as fd-backed buffers: no copy in user
 * space, and with splice none at all. */
static int read_reply_fds(struct fs_ctx *ctx, struct fs_worker *worker,
			  fuse_req_t req, uint32_t layer, uint64_t tar_off,
			  size_t len, size_t n_pieces)
{
	struct fuse_bufvec *bv;
	struct read_iter it;
	size_t i, n = 0;
	int r;

	r = fs_worker_reserve_bufv(worker, n_pieces);
	if (r < 0)
		return r;
	bv = worker->bufv;

	r = read_iter_start(&it, &ctx->layers[layer], tar_off, len);
	if (r >= 0)
		r = read_hold(ctx, worker, layer, &it, NULL, n_pieces, &n);
	if (r >= 0) {
		for (i = 0; i < n; i++)
			bv->buf[i] = (struct fuse_buf){
				.size = worker->pieces[i].len,
				.flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK,
				.fd = worker->pieces[i].fd,
				.pos = (off_t)worker->pieces[i].off,
			};
		bv->count = n;
		bv->idx = 0;
		bv->off = 0;
		r = fuse_reply_data(req, bv, FUSE_BUF_SPLICE_MOVE);
		/* The reply went out or the request is gone: either way it
		 * was answered, so do not answer again. */
		if (r < 0)
			fs_debug("read reply failed: %s", fs_strerror(-r));
		r = 1;
	}
	read_release(ctx, worker, layer, n);
	return r;
}

static int read_sparse(struct fs_ctx *ctx, struct fs_worker *worker,
		       uint32_t layer, const struct index_entry *entry,
		       uint64_t off, size_t len, uint8_t *dst)
{
	const struct index_reader *reader = ctx->layers[layer].reader;
	uint64_t stored = 0, lo, hi, end = off + len;
	struct index_sparse seg;
	uint32_t i;
	int r;

	/* Holes are whatever no segment covers. */
	memset(dst, 0, len);
	for (i = 0; i < entry->sparse_count; i++) {
		index_reader_sparse(reader, entry->sparse_first + i, &seg);
		if (seg.offset + seg.length < seg.offset)
			return -EIO;
		lo = seg.offset > off ? seg.offset : off;
		hi = seg.offset + seg.length < end ? seg.offset + seg.length :
						     end;
		if (lo < hi) {
			r = read_copy(ctx, worker, layer,
				      entry->data_off + stored + (lo - seg.offset),
				      hi - lo, dst + (lo - off));
			if (r < 0)
				return r;
		}
		stored += seg.length;
	}
	return 0;
}

/* Replies with bytes gathered in worker->reply. */
static int read_reply_memory(struct fs_ctx *ctx, struct fs_worker *worker,
			     fuse_req_t req, uint32_t layer,
			     const struct index_entry *entry, uint64_t off,
			     size_t len)
{
	int r;

	r = fs_worker_reserve_reply(worker, len);
	if (r < 0)
		return r;
	if (entry->flags & INDEX_ENTRY_SPARSE)
		r = read_sparse(ctx, worker, layer, entry, off, len,
				worker->reply.data);
	else
		r = read_copy(ctx, worker, layer, entry->data_off + off, len,
			      worker->reply.data);
	if (r < 0)
		return r;

	fuse_reply_buf(req, (const char *)worker->reply.data, len);
	return 1;
}

/*
 * Whether libfuse can splice a reply of @len bytes from @n files.  It
 * needs a pipe that holds the data and a page per buffer and header;
 * without CAP_SYS_RESOURCE pipes stop at fs.pipe-max-size (1 MiB), and a
 * reply that does not fit is copied through a buffer libfuse maps and
 * unmaps for each request: slower than our own copy into worker->reply.
 */
static bool read_splice_fits(const struct fs_ctx *ctx, size_t len, size_t n)
{
	size_t pipe_max = atomic_load_explicit(&ctx->splice_max,
					       memory_order_relaxed);

	return pipe_max && len <= pipe_max && n <= FS_SPLICE_PIECES &&
	       (n + 2) * (size_t)FS_BLOCK_SIZE <= pipe_max - len;
}

/*
 * Whether a read of [off, off + len) of @ino follows an earlier one: it
 * starts near where the last read of the inode seen in its slot ended
 * (the kernel's read-ahead sends several requests at once, so not always
 * exactly there).  Racy by design: a wrong answer costs a hint.
 */
static bool read_sequential(struct fs_ctx *ctx, fuse_ino_t ino, uint64_t off,
			    size_t len)
{
	struct fs_read_stream *s = &ctx->streams[ino % FS_READ_STREAMS];
	uint64_t last = atomic_load_explicit(&s->ino, memory_order_relaxed);
	uint64_t next = atomic_load_explicit(&s->next, memory_order_relaxed);

	atomic_store_explicit(&s->ino, ino, memory_order_relaxed);
	atomic_store_explicit(&s->next, off + len, memory_order_relaxed);
	if (last != ino)
		return off == 0;
	return off + FS_READ_STREAM_SLACK >= next &&
	       off <= next + FS_READ_STREAM_SLACK;
}

/* Serves [off, off + len) of the file, replying on success (returns 1). */
static int read_serve(struct fs_ctx *ctx, fuse_req_t req, fuse_ino_t ino,
		      uint32_t layer, const struct index_entry *entry,
		      uint64_t off, size_t len)
{
	struct fs_worker *worker;
	size_t n_pieces;
	int r;

	r = fs_worker_get(&worker);
	if (r < 0)
		return r;
	worker->read_seq = read_sequential(ctx, ino, off, len);
	if (entry->flags & INDEX_ENTRY_SPARSE)
		return read_reply_memory(ctx, worker, req, layer, entry, off,
					 len);

	fs_prefetch_read_ahead(ctx, layer, entry, off, len);
	r = read_count_pieces(&ctx->layers[layer], entry->data_off + off, len,
			      FS_READ_MAX_FDS, &n_pieces);
	if (r < 0)
		return r;
	if (n_pieces > FS_READ_MAX_FDS || !read_splice_fits(ctx, len, n_pieces))
		return read_reply_memory(ctx, worker, req, layer, entry, off,
					 len);
	return read_reply_fds(ctx, worker, req, layer, entry->data_off + off,
			      len, n_pieces);
}

/* Finds the entry holding the data of @ino; -EISDIR or -EINVAL for an
 * inode that is not a regular file. */
static int read_entry(struct fs_ctx *ctx, fuse_ino_t ino,
		      uint32_t *ret_layer, struct index_entry *ret_entry)
{
	struct index_tree_attr attr;
	int r;

	r = index_tree_attr(ctx->tree, ino, &attr);
	if (r < 0)
		return r;
	if (attr.kind == INDEX_KIND_DIR)
		return -EISDIR;
	if (attr.kind != INDEX_KIND_FILE)
		return -EINVAL;
	/* Only directories are synthetic. */
	if (attr.layer >= ctx->n_layers)
		return -EIO;

	index_reader_entry(ctx->layers[attr.layer].reader, attr.entry,
			   ret_entry);
	*ret_layer = attr.layer;
	return 0;
}

/*
 * The kernel reads ahead of a FUSE file's readers by the mount's
 * read_ahead_kb, which starts at 128 KiB and which the INIT reply can only
 * lower: a cold sequential read then waits for one 128 KiB request after
 * another.  Raising it takes root; without, nothing changes.  Done at the
 * first read, when the kernel has taken the INIT reply.
 */
static void read_tune_kernel(struct fs_ctx *ctx)
{
	unsigned int major, minor, kb = 0;
	char path[64];
	FILE *f;

	if (!ctx->mountpoint ||
	    fs_mountpoint_dev(ctx->mountpoint, &major, &minor) < 0)
		return;
	snprintf(path, sizeof(path), "/sys/class/bdi/%u:%u/read_ahead_kb",
		 major, minor);
	f = fopen(path, "r+e");
	if (!f) {
		fs_debug("cannot open %s: %s", path, fs_strerror(errno));
		return;
	}
	if (fscanf(f, "%u", &kb) == 1 && kb < FS_KERNEL_READAHEAD_KB) {
		rewind(f);
		fprintf(f, "%u\n", FS_KERNEL_READAHEAD_KB);
	}
	if (fclose(f) != 0)
		fs_debug("cannot write %s: %s", path, fs_strerror(errno));
	else
		fs_debug("%s: %u, want %u", path, kb, FS_KERNEL_READAHEAD_KB);
}

void fs_read_reply(struct fs_ctx *ctx, fuse_req_t req, fuse_ino_t ino,
		   size_t size, off_t off)
{
	struct index_entry entry;
	uint32_t layer;
	size_t len;
	int r;

	fs_debug("read ino %" PRIu64 " off %jd size %zu", (uint64_t)ino,
		 (intmax_t)off, size);
	if (!atomic_load_explicit(&ctx->readahead_tuned,
				  memory_order_relaxed) &&
	    !atomic_exchange(&ctx->readahead_tuned, true))
		read_tune_kernel(ctx);
	r = off < 0 ? -EINVAL : read_entry(ctx, ino, &layer, &entry);
	if (r < 0)
		goto err_reply;

	/* Reads that reach past the end are short; at or after it, empty. */
	if ((uint64_t)off >= entry.size || size == 0) {
		fuse_reply_buf(req, NULL, 0);
		return;
	}
	len = entry.size - (uint64_t)off < size ?
		      (size_t)(entry.size - (uint64_t)off) : size;

	r = read_serve(ctx, req, ino, layer, &entry, (uint64_t)off, len);
	if (r < 0)
		goto err_reply;
	fs_stat_add(ctx, bytes_served, len);
	return;

err_reply:
	fs_stat_add(ctx, read_errors, 1);
	fuse_reply_err(req, -r);
}
