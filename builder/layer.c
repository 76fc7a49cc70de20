/* SPDX-License-Identifier: MIT */
/*
 * layer.c - convert one layer into a seekable zstd blob with its index.
 *
 * The layer is first decompressed into a scratch file (whatever its
 * compression, through libarchive) while its DiffID is computed; the
 * scratch tar is mapped, scanned, cut into chunks and compressed frame by
 * frame.  The blob is: the data frames (which decompress back to the tar
 * byte for byte), one skippable frame holding the index, the locator
 * frame, and the seek table that lists every frame.
 */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/sha.h>
#include <zstd.h>

#include "builder_internal.h"

/* Input bytes compressed per batch: bounds the memory held for frames
 * that wait to be written in order. */
#define BATCH_BYTES (64u << 20)
#define MAX_THREADS 64

/* Writes all @len bytes at @off, going on after short writes. */
static int pwrite_full(int fd, const void *buf, size_t len, uint64_t off)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t n = pwrite(fd, p, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		p += n;
		off += (uint64_t)n;
		len -= (size_t)n;
	}
	return 0;
}

#define HOLE_BLOCK 4096u

static bool block_is_zero(const uint8_t *p, size_t len)
{
	static const uint8_t zero[HOLE_BLOCK];

	return memcmp(p, zero, len) == 0;
}

/*
 * Writes @len bytes at @off of the scratch tar, leaving blocks of zeros
 * as holes: a layer holding a large sparse or zero-filled file then
 * needs no scratch space for it.  The caller sets the final size with
 * ftruncate() so that a trailing hole counts.
 */
static int write_sparse(int fd, const uint8_t *buf, size_t len, uint64_t off)
{
	size_t pos = 0, run = 0; /* run: data bytes before pos not written */
	int err;

	while (pos < len) {
		size_t n = len - pos < HOLE_BLOCK ? len - pos : HOLE_BLOCK;
		bool zero = block_is_zero(buf + pos, n);

		if (!zero)
			run += n;
		pos += n;
		if (run && (zero || pos == len)) {
			size_t start = pos - run - (zero ? n : 0);

			err = pwrite_full(fd, buf + start, run, off + start);
			if (err < 0)
				return err;
			run = 0;
		}
	}
	return 0;
}

static void report(const struct builder_options *o, uint32_t layer,
		   uint32_t n_layers, const char *phase, uint64_t done,
		   uint64_t total)
{
	struct builder_progress p = { layer, n_layers, phase, done, total };

	if (o->progress)
		o->progress(o->progress_ctx, &p);
}

/* The output blob being written, with its running digest. */
struct out_blob {
	int fd;
	uint64_t size;
	EVP_MD_CTX *sha;
	uint32_t *blob_sizes; /* per frame, for the seek table */
	uint32_t *tar_sizes;
	uint32_t n_frames, cap_frames;
};

static int out_write(struct out_blob *o, const void *buf, size_t len)
{
	/* The blob is written from its start, so its size is the offset. */
	int err = pwrite_full(o->fd, buf, len, o->size);

	if (err < 0)
		return err;
	EVP_DigestUpdate(o->sha, buf, len);
	o->size += len;
	return 0;
}

static int out_frame(struct out_blob *o, uint32_t blob_len, uint32_t tar_len)
{
	if (o->n_frames == o->cap_frames) {
		uint32_t cap = o->cap_frames ? o->cap_frames * 2 : 1024;
		uint32_t *b = realloc(o->blob_sizes, cap * sizeof(uint32_t));

		if (!b)
			return -ENOMEM;
		o->blob_sizes = b;
		b = realloc(o->tar_sizes, cap * sizeof(uint32_t));
		if (!b)
			return -ENOMEM;
		o->tar_sizes = b;
		o->cap_frames = cap;
	}
	if (o->n_frames >= INDEX_SEEKTABLE_MAX_FRAMES)
		return -EFBIG;
	o->blob_sizes[o->n_frames] = blob_len;
	o->tar_sizes[o->n_frames++] = tar_len;
	return 0;
}

/* ---- step 1: decompress the layer into a scratch tar ---- */

static int unpack_layer(const char *src, int tar_fd, uint8_t diff_id[32],
			uint64_t *ret_size, const struct builder_options *o,
			uint32_t layer, uint32_t n_layers, char *err,
			size_t err_size)
{
	struct archive_entry *ae;
	struct archive *a = archive_read_new();
	uint64_t total = 0, max_tar = o->max_tar ? o->max_tar : BUILDER_TAR_MAX;
	EVP_MD_CTX *sha = EVP_MD_CTX_new();
	static __thread uint8_t buf[1 << 20];
	unsigned int dlen;
	int r, ret = 0;

	if (!a || !sha) {
		ret = -ENOMEM;
		goto out;
	}
	EVP_DigestInit_ex(sha, EVP_sha256(), NULL);
	archive_read_support_filter_all(a);
	archive_read_support_format_raw(a);
	archive_read_support_format_empty(a);
	r = archive_read_open_filename(a, src, 1 << 20);
	if (r == ARCHIVE_OK)
		r = archive_read_next_header(a, &ae);
	if (r == ARCHIVE_EOF)
		goto done; /* an empty layer */
	if (r != ARCHIVE_OK) {
		ret = builder_err(err, err_size, -EBADMSG,
				  "cannot read layer '%s': %s", src,
				  archive_error_string(a));
		goto out;
	}
	for (;;) {
		la_ssize_t n = archive_read_data(a, buf, sizeof(buf));

		if (n == 0)
			break;
		if (n < 0) {
			ret = builder_err(err, err_size, -EBADMSG,
					  "cannot decompress layer '%s' at byte %ju: %s",
					  src, (uintmax_t)total,
					  archive_error_string(a));
			goto out;
		}
		if ((uint64_t)n > max_tar - total) {
			ret = builder_err(err, err_size, -EFBIG,
					  "layer '%s' decompresses to more than %ju bytes",
					  src, (uintmax_t)max_tar);
			goto out;
		}
		EVP_DigestUpdate(sha, buf, (size_t)n);
		ret = write_sparse(tar_fd, buf, (size_t)n, total);
		if (ret < 0) {
			builder_err(err, err_size, ret,
				    "cannot write scratch tar: %s",
				    strerror(-ret));
			goto out;
		}
		total += (uint64_t)n;
		if ((total & ((16u << 20) - 1)) < (uint64_t)n)
			report(o, layer, n_layers, "unpack", total, 0);
	}
done:
	if (ftruncate(tar_fd, (off_t)total) < 0) {
		ret = -errno;
		builder_err(err, err_size, ret, "cannot write scratch tar: %s",
			    strerror(-ret));
		goto out;
	}
	EVP_DigestFinal_ex(sha, diff_id, &dlen);
	*ret_size = total;
out:
	EVP_MD_CTX_free(sha);
	archive_read_free(a);
	return ret;
}

/* ---- step 3: compress the chunks, in parallel batches ---- */

struct batch {
	const uint8_t *tar;
	const uint64_t *ends;
	uint32_t first, count; /* chunks of this batch */
	uint8_t *out; /* one region of compressBound per chunk */
	size_t *out_off; /* where each chunk's frame starts in out */
	size_t *out_len; /* frame length, or a zstd error code */
	uint8_t (*sha)[32];
	atomic_uint next;
	int level;
};

static uint64_t chunk_start(const uint64_t *ends, uint32_t i)
{
	return i ? ends[i - 1] : 0;
}

static void *compress_worker(void *arg)
{
	struct batch *b = arg;
	ZSTD_CCtx *cctx = ZSTD_createCCtx();
	unsigned int k;

	if (cctx)
		ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, b->level);
	while ((k = atomic_fetch_add(&b->next, 1)) < b->count) {
		uint32_t c = b->first + k;
		uint64_t off = chunk_start(b->ends, c);
		size_t len = (size_t)(b->ends[c] - off);

		SHA256(b->tar + off, len, b->sha[k]);
		if (!cctx) {
			b->out_len[k] = (size_t)-1;
			continue;
		}
		b->out_len[k] = ZSTD_compress2(cctx, b->out + b->out_off[k],
					       ZSTD_compressBound(len),
					       b->tar + off, len);
	}
	ZSTD_freeCCtx(cctx);
	return NULL;
}

static int run_batch(struct batch *b, unsigned int threads)
{
	pthread_t tid[MAX_THREADS];
	unsigned int started = 0;

	atomic_store(&b->next, 0);
	for (unsigned int i = 1; i < threads; i++) {
		if (pthread_create(&tid[started], NULL, compress_worker, b) != 0)
			break;
		started++;
	}
	compress_worker(b);
	for (unsigned int i = 0; i < started; i++)
		pthread_join(tid[i], NULL);
	for (uint32_t k = 0; k < b->count; k++)
		if (ZSTD_isError(b->out_len[k]))
			return -EIO;
	return 0;
}

struct compress_job {
	const struct builder_tar *tar;
	const uint64_t *ends;
	uint32_t n_chunks;
	struct index_writer *writer;
	struct out_blob *out;
	const struct builder_options *opts;
	uint32_t layer, n_layers;
};

/* Writes a compressed batch in order and records its chunks. */
static int emit_batch(struct compress_job *j, struct batch *b)
{
	for (uint32_t k = 0; k < b->count; k++) {
		uint32_t c = b->first + k;
		uint64_t start = chunk_start(j->ends, c);
		struct index_chunk ch = {
			.tar_off = start, .blob_off = j->out->size,
			.tar_len = (uint32_t)(j->ends[c] - start),
			.blob_len = (uint32_t)b->out_len[k], .sha256 = b->sha[k],
		};
		int err = index_writer_add_chunk(j->writer, &ch);

		if (err == 0)
			err = out_frame(j->out, ch.blob_len, ch.tar_len);
		if (err == 0)
			err = out_write(j->out, b->out + b->out_off[k],
					b->out_len[k]);
		if (err < 0)
			return err;
	}
	return 0;
}

static int compress_chunks(struct compress_job *j)
{
	unsigned int threads = j->opts->threads;
	struct batch b = { .tar = j->tar->data, .ends = j->ends,
			   .level = j->opts->level ? j->opts->level : 3 };
	size_t cap = 0, cap_chunks = 0;
	int err = 0;

	if (threads == 0)
		threads = (unsigned int)sysconf(_SC_NPROCESSORS_ONLN);
	if (threads == 0 || threads > MAX_THREADS)
		threads = threads ? MAX_THREADS : 1;
	for (uint32_t c = 0; c < j->n_chunks && err == 0;) {
		size_t need = 0;

		b.first = c;
		b.count = 0;
		while (c < j->n_chunks && (b.count == 0 || need < BATCH_BYTES)) {
			need += ZSTD_compressBound(j->ends[c] -
						   chunk_start(j->ends, c));
			b.count++;
			c++;
		}
		if (need > cap || b.count > cap_chunks) {
			free(b.out);
			free(b.out_off);
			free(b.out_len);
			free(b.sha);
			cap = need;
			cap_chunks = b.count > 4096 ? b.count : 4096;
			b.out = malloc(cap);
			b.out_off = malloc(cap_chunks * sizeof(size_t));
			b.out_len = malloc(cap_chunks * sizeof(size_t));
			b.sha = malloc(cap_chunks * 32);
			if (!b.out || !b.out_off || !b.out_len || !b.sha) {
				err = -ENOMEM;
				break;
			}
		}
		need = 0;
		for (uint32_t k = 0; k < b.count; k++) {
			b.out_off[k] = need;
			need += ZSTD_compressBound(j->ends[b.first + k] -
						   chunk_start(j->ends, b.first + k));
		}
		err = run_batch(&b, threads);
		if (err == 0)
			err = emit_batch(j, &b);
		report(j->opts, j->layer, j->n_layers, "compress", j->ends[c - 1],
		       j->tar->size);
	}
	free(b.out);
	free(b.out_off);
	free(b.out_len);
	free(b.sha);
	return err;
}

/* ---- step 4: the trailer ---- */

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static int write_trailer(struct out_blob *o, const void *index,
			 size_t index_size, struct index_locator *ret_locator)
{
	uint8_t hdr[INDEX_SKIPPABLE_HEADER_SIZE], loc[INDEX_LOCATOR_FRAME_SIZE];
	uint8_t *st;
	uint64_t st_size;
	int err;

	if (index_size > UINT32_MAX - INDEX_SKIPPABLE_HEADER_SIZE)
		return -EFBIG;
	put32(hdr, INDEX_FRAME_MAGIC_INDEX);
	put32(hdr + 4, (uint32_t)index_size);
	err = out_write(o, hdr, sizeof(hdr));
	if (err < 0)
		return err;
	ret_locator->offset = o->size;
	ret_locator->size = index_size;
	SHA256(index, index_size, ret_locator->sha256);
	err = out_write(o, index, index_size);
	if (err == 0)
		err = out_frame(o, (uint32_t)(index_size + sizeof(hdr)), 0);
	if (err < 0)
		return err;

	index_locator_encode(ret_locator, loc);
	err = out_write(o, loc, sizeof(loc));
	if (err == 0)
		err = out_frame(o, sizeof(loc), 0);
	if (err < 0)
		return err;

	st_size = index_seektable_frame_size(o->n_frames);
	st = malloc(st_size);
	if (!st)
		return -ENOMEM;
	err = index_seektable_encode(o->blob_sizes, o->tar_sizes, o->n_frames,
				     st, st_size);
	if (err == 0)
		err = out_write(o, st, st_size);
	free(st);
	return err;
}

/* ---- the whole conversion ---- */

struct scratch {
	int tar_fd;
	struct builder_tar tar;
	void *map;
	int blob_fd;
	char *blob_tmp;
	struct index_writer *writer;
	struct builder_span *spans;
	uint64_t *ends;
	void *index;
	size_t index_size;
	struct out_blob out;
};

static void scratch_free(struct scratch *s)
{
	if (s->map)
		munmap(s->map, s->tar.size);
	if (s->tar_fd >= 0)
		close(s->tar_fd);
	if (s->blob_fd >= 0)
		close(s->blob_fd);
	if (s->blob_tmp) {
		unlink(s->blob_tmp);
		free(s->blob_tmp);
	}
	index_writer_free(s->writer);
	free(s->spans);
	free(s->ends);
	free(s->index);
	EVP_MD_CTX_free(s->out.sha);
	free(s->out.blob_sizes);
	free(s->out.tar_sizes);
}

/* A scratch file in @dir that vanishes when closed. */
static int scratch_tar_open(const char *dir)
{
	int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);

	return fd < 0 ? -errno : fd;
}

static int check_diff_id(const uint8_t got[32], const char *want,
			 const char *src, char *err, size_t err_size)
{
	uint8_t raw[32];
	char hex[65];

	if (!want)
		return 0;
	if (index_digest_parse(want, raw) < 0)
		return builder_err(err, err_size, -EINVAL,
				   "config has a malformed DiffID '%s'", want);
	if (memcmp(raw, got, 32) == 0)
		return 0;
	index_hex(got, 32, hex);
	return builder_err(err, err_size, -EBADMSG,
			   "layer '%s' decompresses to sha256:%s, config says %s",
			   src, hex, want);
}

static int map_tar(struct scratch *s, char *err, size_t err_size)
{
	if (s->tar.size == 0) {
		s->tar.data = (const uint8_t *)"";
		return 0;
	}
	s->map = mmap(NULL, s->tar.size, PROT_READ, MAP_SHARED, s->tar_fd, 0);
	if (s->map == MAP_FAILED) {
		s->map = NULL;
		return builder_err(err, err_size, -errno,
				   "cannot map scratch tar: %s", strerror(errno));
	}
	madvise(s->map, s->tar.size, MADV_SEQUENTIAL);
	s->tar.data = s->map;
	return 0;
}

static int open_blob(struct scratch *s, const char *dst_dir, char *err,
		     size_t err_size)
{
	if (asprintf(&s->blob_tmp, "%s/blobs/sha256/.tmp-XXXXXX", dst_dir) < 0) {
		s->blob_tmp = NULL;
		return -ENOMEM;
	}
	s->blob_fd = mkostemp(s->blob_tmp, O_CLOEXEC);
	if (s->blob_fd < 0) {
		int e = errno;

		free(s->blob_tmp);
		s->blob_tmp = NULL;
		return builder_err(err, err_size, -e, "cannot create blob in '%s': %s",
				   dst_dir, strerror(e));
	}
	s->out.fd = s->blob_fd;
	s->out.sha = EVP_MD_CTX_new();
	if (!s->out.sha)
		return -ENOMEM;
	EVP_DigestInit_ex(s->out.sha, EVP_sha256(), NULL);
	return 0;
}

/* Names the finished blob by its digest. */
static int seal_blob(struct scratch *s, const char *dst_dir,
		     char ret_digest[72])
{
	uint8_t digest[32];
	unsigned int dlen;
	char *path;
	int err = 0;

	EVP_DigestFinal_ex(s->out.sha, digest, &dlen);
	memcpy(ret_digest, "sha256:", 7);
	index_hex(digest, 32, ret_digest + 7);
	if (fchmod(s->blob_fd, 0644) < 0)
		return -errno;
	if (asprintf(&path, "%s/blobs/sha256/%s", dst_dir, ret_digest + 7) < 0)
		return -ENOMEM;
	if (rename(s->blob_tmp, path) < 0)
		err = -errno;
	free(path);
	if (err == 0) {
		free(s->blob_tmp);
		s->blob_tmp = NULL;
	}
	return err;
}

static int build_blob(struct scratch *s, const struct builder_options *opts,
		      uint32_t layer, uint32_t n_layers,
		      struct index_locator *ret_locator,
		      struct builder_layer_stats *st, char *err,
		      size_t err_size)
{
	struct compress_job job = { &s->tar, NULL, 0, NULL, &s->out, opts,
				    layer, n_layers };
	uint32_t n_spans = 0;
	int r;

	r = index_writer_new(&s->writer);
	if (r < 0)
		return r;
	report(opts, layer, n_layers, "scan", 0, s->tar.size);
	r = builder_scan_tar(&s->tar, s->writer, &s->spans, &n_spans, st, err,
			     err_size);
	if (r < 0)
		return r;
	r = builder_chunk_plan(&s->tar, s->spans, n_spans, &s->ends,
			       &job.n_chunks);
	if (r < 0)
		return builder_err(err, err_size, r, "cannot plan chunks: %s",
				   strerror(-r));
	job.ends = s->ends;
	job.writer = s->writer;
	r = compress_chunks(&job);
	if (r < 0)
		return builder_err(err, err_size, r, "cannot compress: %s",
				   strerror(-r));
	st->data_size = s->out.size;
	st->chunks = job.n_chunks;
	r = index_writer_finish(s->writer, s->tar.size, &s->index,
				&s->index_size);
	if (r == 0)
		r = write_trailer(&s->out, s->index, s->index_size,
				  ret_locator);
	if (r < 0)
		return builder_err(err, err_size, r, "cannot write index: %s",
				   strerror(-r));
	st->index_size = s->index_size;
	st->blob_size = s->out.size;
	return 0;
}

int builder_layer_convert(const char *src, const char *diff_id,
			  const char *dst_dir, const struct builder_options *opts,
			  uint32_t layer, uint32_t n_layers, char ret_digest[72],
			  struct index_locator *ret_locator,
			  struct builder_layer_stats *ret_stats,
			  void **ret_index, size_t *ret_index_size, char *err,
			  size_t err_size)
{
	struct scratch s = { .tar_fd = -1, .blob_fd = -1 };
	const char *tmp = opts->tmpdir ? opts->tmpdir : dst_dir;
	uint8_t got[32];
	int r;

	memset(ret_stats, 0, sizeof(*ret_stats));
	s.tar_fd = scratch_tar_open(tmp);
	if (s.tar_fd < 0) {
		r = builder_err(err, err_size, s.tar_fd,
				"cannot create scratch file in '%s': %s", tmp,
				strerror(-s.tar_fd));
		goto out;
	}
	r = unpack_layer(src, s.tar_fd, got, &s.tar.size, opts, layer,
			 n_layers, err, err_size);
	if (r < 0)
		goto out;
	r = check_diff_id(got, diff_id, src, err, err_size);
	if (r < 0)
		goto out;
	ret_stats->tar_size = s.tar.size;
	r = map_tar(&s, err, err_size);
	if (r < 0)
		goto out;
	r = open_blob(&s, dst_dir, err, err_size);
	if (r < 0)
		goto out;
	r = build_blob(&s, opts, layer, n_layers, ret_locator, ret_stats, err,
		       err_size);
	if (r < 0)
		goto out;
	r = seal_blob(&s, dst_dir, ret_digest);
	if (r < 0) {
		builder_err(err, err_size, r, "cannot store blob: %s",
			    strerror(-r));
		goto out;
	}
	*ret_index = s.index;
	*ret_index_size = s.index_size;
	s.index = NULL;
out:
	scratch_free(&s);
	return r;
}
