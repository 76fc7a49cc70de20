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

/* Frame bytes the compression ring holds: bounds the memory held for frames
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
	/* On the heap: a thread-local array would be set up in every
	 * thread of the process, the daemon's too (1 MiB of RSS each). */
	const size_t buf_size = 1u << 20;
	uint8_t *buf = malloc(buf_size);
	unsigned int dlen;
	int r, ret = 0;

	if (!a || !sha || !buf) {
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
		la_ssize_t n = archive_read_data(a, buf, buf_size);

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
	free(buf);
	EVP_MD_CTX_free(sha);
	archive_read_free(a);
	return ret;
}

/* A plain tar needs no unpacking: it is mapped where it lies, and its
 * DiffID hashed on a thread of its own while the chunks compress. */

/*
 * Whether @fd holds a plain tar: empty, or starting with a block of zeros
 * (an empty archive) or a header whose checksum holds.  Anything else
 * (gzip, zstd with or without a skippable frame first, ...) goes through
 * libarchive, which also says what is wrong with a broken one.
 */
static bool looks_plain_tar(int fd, uint64_t size)
{
	uint8_t h[512];
	unsigned int sum = 0, want = 0;
	bool zero = true;
	int i;

	if (size == 0)
		return true;
	if (size < sizeof(h) || pread(fd, h, sizeof(h), 0) != sizeof(h))
		return false;
	for (i = 0; i < 512; i++) {
		zero &= h[i] == 0;
		sum += i >= 148 && i < 156 ? ' ' : h[i];
	}
	if (zero)
		return true;
	for (i = 148; i < 156 && h[i] == ' '; i++)
		;
	for (; i < 156 && h[i] >= '0' && h[i] <= '7'; i++)
		want = want * 8 + (h[i] - '0');
	return sum == want;
}

struct diff_hash {
	const uint8_t *data;
	size_t size;
	uint8_t sha256[32];
	pthread_t thread;
	bool started;
};

static void *diff_hash_run(void *arg)
{
	struct diff_hash *h = arg;

	SHA256(h->data, h->size, h->sha256);
	return NULL;
}

/* Starts hashing, or hashes right away when no thread can start. */
static void diff_hash_start(struct diff_hash *h, const uint8_t *data,
			    size_t size)
{
	h->data = data;
	h->size = size;
	h->started = pthread_create(&h->thread, NULL, diff_hash_run, h) == 0;
	if (!h->started)
		diff_hash_run(h);
}

static void diff_hash_wait(struct diff_hash *h)
{
	if (h->started)
		pthread_join(h->thread, NULL);
	h->started = false;
}

/* ---- step 3: compress the chunks, in parallel, written in order ---- */

/*
 * Worker threads take chunks in order and compress each into a slot of a
 * ring of about BATCH_BYTES of frames; the calling thread writes frames
 * in chunk order and frees their slots.  A worker waits only when the
 * ring is full, so the cores stay busy while frames are written (no
 * batch ends where one thread finishes alone).
 */
struct pipe {
	const uint8_t *tar;
	const uint64_t *ends;
	uint32_t n_chunks;
	int level;
	uint32_t n_slots; /* ring size, in chunks */
	size_t slot_size; /* compressBound of the largest chunk */
	uint8_t *out; /* n_slots * slot_size */
	size_t *out_len; /* [slot]: frame length, or a zstd error code */
	uint8_t (*sha)[32]; /* [slot] */
	bool *done; /* [slot]: compressed, not yet written */
	pthread_mutex_t lock; /* guards next, written, done, stop */
	pthread_cond_t space; /* a slot was freed, or stop */
	pthread_cond_t ready; /* a chunk was compressed */
	uint32_t next; /* next chunk to take */
	uint32_t written; /* chunks written: slots below are free */
	bool stop;
};

static uint64_t chunk_start(const uint64_t *ends, uint32_t i)
{
	return i ? ends[i - 1] : 0;
}

static void *compress_worker(void *arg)
{
	struct pipe *p = arg;
	ZSTD_CCtx *cctx = ZSTD_createCCtx();

	if (cctx)
		ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, p->level);
	pthread_mutex_lock(&p->lock);
	for (;;) {
		while (!p->stop && p->next < p->n_chunks &&
		       p->next >= p->written + p->n_slots)
			pthread_cond_wait(&p->space, &p->lock);
		if (p->stop || p->next >= p->n_chunks)
			break;
		uint32_t c = p->next++, slot = c % p->n_slots;
		uint64_t off = chunk_start(p->ends, c);
		size_t len = (size_t)(p->ends[c] - off);

		pthread_mutex_unlock(&p->lock);
		SHA256(p->tar + off, len, p->sha[slot]);
		p->out_len[slot] = cctx ? ZSTD_compress2(cctx,
					p->out + (size_t)slot * p->slot_size,
					p->slot_size, p->tar + off, len) :
					  (size_t)-1;
		pthread_mutex_lock(&p->lock);
		p->done[slot] = true;
		pthread_cond_signal(&p->ready);
	}
	pthread_mutex_unlock(&p->lock);
	ZSTD_freeCCtx(cctx);
	return NULL;
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

/* Writes chunk @c's frame from its slot and records the chunk. */
static int emit_chunk(struct compress_job *j, struct pipe *p, uint32_t c)
{
	uint32_t slot = c % p->n_slots;
	uint64_t start = chunk_start(j->ends, c);
	struct index_chunk ch = {
		.tar_off = start, .blob_off = j->out->size,
		.tar_len = (uint32_t)(j->ends[c] - start),
		.blob_len = (uint32_t)p->out_len[slot], .sha256 = p->sha[slot],
	};
	int err;

	if (ZSTD_isError(p->out_len[slot]))
		return -EIO;
	err = index_writer_add_chunk(j->writer, &ch);
	if (err == 0)
		err = out_frame(j->out, ch.blob_len, ch.tar_len);
	if (err == 0)
		err = out_write(j->out, p->out + (size_t)slot * p->slot_size,
				p->out_len[slot]);
	return err;
}

/* Sizes the ring for @j: slots for the largest chunk, BATCH_BYTES in all
 * but at least four per thread.  -ENOMEM. */
static int pipe_init(struct pipe *p, const struct compress_job *j,
		     unsigned int threads)
{
	size_t max_len = 0;

	for (uint32_t c = 0; c < j->n_chunks; c++) {
		size_t len = (size_t)(j->ends[c] - chunk_start(j->ends, c));

		if (len > max_len)
			max_len = len;
	}
	*p = (struct pipe){ .tar = j->tar->data, .ends = j->ends,
			    .n_chunks = j->n_chunks,
			    .level = j->opts->level ? j->opts->level : 3 };
	p->slot_size = ZSTD_compressBound(max_len);
	p->n_slots = (uint32_t)(BATCH_BYTES / p->slot_size);
	if (p->n_slots < 4 * threads)
		p->n_slots = 4 * threads;
	if (p->n_slots > j->n_chunks)
		p->n_slots = j->n_chunks ? j->n_chunks : 1;
	p->out = malloc((size_t)p->n_slots * p->slot_size);
	p->out_len = calloc(p->n_slots, sizeof(*p->out_len));
	p->sha = calloc(p->n_slots, sizeof(*p->sha));
	p->done = calloc(p->n_slots, sizeof(*p->done));
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->space, NULL);
	pthread_cond_init(&p->ready, NULL);
	return p->out && p->out_len && p->sha && p->done ? 0 : -ENOMEM;
}

static void pipe_free(struct pipe *p)
{
	pthread_cond_destroy(&p->ready);
	pthread_cond_destroy(&p->space);
	pthread_mutex_destroy(&p->lock);
	free(p->out);
	free(p->out_len);
	free(p->sha);
	free(p->done);
}

static int compress_chunks(struct compress_job *j)
{
	unsigned int threads = j->opts->threads, started = 0;
	pthread_t tid[MAX_THREADS];
	struct pipe p;
	int err;

	if (threads == 0)
		threads = (unsigned int)sysconf(_SC_NPROCESSORS_ONLN);
	if (threads == 0 || threads > MAX_THREADS)
		threads = threads ? MAX_THREADS : 1;
	err = pipe_init(&p, j, threads);
	for (unsigned int i = 0; err == 0 && i < threads; i++) {
		if (pthread_create(&tid[started], NULL, compress_worker, &p) != 0)
			break;
		started++;
	}
	if (err == 0 && started == 0)
		err = -EAGAIN;

	for (uint32_t c = 0; err == 0 && c < j->n_chunks; c++) {
		uint32_t slot = c % p.n_slots;

		pthread_mutex_lock(&p.lock);
		while (!p.done[slot])
			pthread_cond_wait(&p.ready, &p.lock);
		pthread_mutex_unlock(&p.lock);
		err = emit_chunk(j, &p, c);
		pthread_mutex_lock(&p.lock);
		p.done[slot] = false;
		p.written = c + 1;
		pthread_cond_broadcast(&p.space);
		pthread_mutex_unlock(&p.lock);
		if ((c & 63) == 63 || c + 1 == j->n_chunks)
			report(j->opts, j->layer, j->n_layers, "compress",
			       j->ends[c], j->tar->size);
	}

	pthread_mutex_lock(&p.lock);
	p.stop = true;
	pthread_cond_broadcast(&p.space);
	pthread_mutex_unlock(&p.lock);
	for (unsigned int i = 0; i < started; i++)
		pthread_join(tid[i], NULL);
	pipe_free(&p);
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
	int tar_fd; /* the scratch tar, or the layer itself when plain */
	bool plain; /* an uncompressed layer, mapped in place */
	struct diff_hash hash; /* its DiffID, while it is computed */
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
	diff_hash_wait(&s->hash);
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
	char hex[65];
	int r;

	if (!want)
		return 0;
	r = index_digest_equal(want, got);
	if (r == -EINVAL)
		return builder_err(err, err_size, -EINVAL,
				   "config has a malformed DiffID '%s'", want);
	if (r == 0)
		return 0;
	index_hex(got, 32, hex);
	return builder_err(err, err_size, -EBADMSG,
			   "layer '%s' decompresses to sha256:%s, config says %s",
			   src, hex, want);
}

/*
 * Opens @src as the tar itself when it is not compressed: 1 (s->tar_fd
 * and s->tar.size set), 0 when it is compressed (unpack it), or -errno.
 */
static int open_plain(const char *src, struct scratch *s,
		      const struct builder_options *o, char *err,
		      size_t err_size)
{
	uint64_t max_tar = o->max_tar ? o->max_tar : BUILDER_TAR_MAX;
	struct stat st;
	int fd;

	fd = open(src, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return builder_err(err, err_size, -errno,
				   "cannot read layer '%s': %s", src,
				   strerror(errno));
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
	    !looks_plain_tar(fd, (uint64_t)st.st_size)) {
		close(fd);
		return 0;
	}
	if ((uint64_t)st.st_size > max_tar) {
		close(fd);
		return builder_err(err, err_size, -EFBIG,
				   "layer '%s' holds more than %ju bytes", src,
				   (uintmax_t)max_tar);
	}
	s->tar_fd = fd;
	s->tar.size = (uint64_t)st.st_size;
	s->plain = true;
	return 1;
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
				   "cannot map layer tar: %s", strerror(errno));
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
	r = open_plain(src, &s, opts, err, err_size);
	if (r < 0)
		goto out;
	if (r == 0) {
		s.tar_fd = scratch_tar_open(tmp);
		if (s.tar_fd < 0) {
			r = builder_err(err, err_size, s.tar_fd,
					"cannot create scratch file in '%s': %s",
					tmp, strerror(-s.tar_fd));
			goto out;
		}
		r = unpack_layer(src, s.tar_fd, got, &s.tar.size, opts, layer,
				 n_layers, err, err_size);
		if (r < 0)
			goto out;
		r = check_diff_id(got, diff_id, src, err, err_size);
		if (r < 0)
			goto out;
	}
	ret_stats->tar_size = s.tar.size;
	r = map_tar(&s, err, err_size);
	if (r < 0)
		goto out;
	if (s.plain)
		diff_hash_start(&s.hash, s.tar.data, s.tar.size);
	r = open_blob(&s, dst_dir, err, err_size);
	if (r >= 0)
		r = build_blob(&s, opts, layer, n_layers, ret_locator,
			       ret_stats, err, err_size);
	if (s.plain) {
		diff_hash_wait(&s.hash);
		/* A wrong DiffID is the first thing to report. */
		int e = check_diff_id(s.hash.sha256, diff_id, src, err,
				      err_size);

		if (e < 0)
			r = e;
	}
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
