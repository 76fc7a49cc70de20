/* SPDX-License-Identifier: MIT */
/*
 * worker.c - per-thread state of the FUSE workers: buffers, the zstd
 * context and the io_uring, made on first use and freed when the thread
 * ends (libfuse starts and stops workers as load changes).
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

#include "fs/fs_internal.h"
#include "fs/log.h"

/* A ring only ever holds one request (see uring.c); a few spare entries
 * cost nothing. */
#define WORKER_RING_ENTRIES 32

static pthread_key_t worker_key;
/* Thread-local fast path; the key exists for its destructor. */
static _Thread_local struct fs_worker *worker_self;
/* Atomic: set by the first thread whose ring creation fails, so the
 * fallback is logged once and later threads do not retry. */
static atomic_bool worker_uring_off;

static void worker_free(void *p)
{
	struct fs_worker *w = p;

	if (!w)
		return;
	fs_uring_free(w->ring);
	ZSTD_freeDCtx(w->dctx);
	free(w->zframe.data);
	free(w->span.data);
	free(w->chunk.data);
	free(w->reply.data);
	free(w->bufv);
	free(w->pieces);
	free(w->piece_chunks);
	free(w);
}

int fs_worker_setup(void)
{
	atomic_store(&worker_uring_off, false);
	return -pthread_key_create(&worker_key, worker_free);
}

void fs_worker_teardown(void)
{
	worker_free(worker_self);
	worker_self = NULL;
	pthread_key_delete(worker_key);
}

int fs_worker_get(struct fs_worker **ret_worker)
{
	struct fs_worker *w = worker_self;
	int r;

	if (w)
		goto out;

	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->dctx = ZSTD_createDCtx();
	if (!w->dctx) {
		r = -ENOMEM;
		goto err_free;
	}
	r = -pthread_setspecific(worker_key, w);
	if (r < 0)
		goto err_free;
	worker_self = w;

out:
	*ret_worker = w;
	return 0;

err_free:
	worker_free(w);
	return r;
}

struct fs_uring *fs_worker_ring(struct fs_worker *worker)
{
	int r;

	if (worker->ring_tried || atomic_load(&worker_uring_off))
		return worker->ring;
	worker->ring_tried = 1;

	r = fs_uring_new(WORKER_RING_ENTRIES, &worker->ring);
	if (r < 0 && !atomic_exchange(&worker_uring_off, true))
		fs_log(LOG_WARNING,
		       "cannot set up io_uring: %s; using pread and pwrite",
		       fs_strerror(-r));
	return worker->ring;
}

int fs_buf_reserve(struct fs_buf *buf, size_t size)
{
	uint8_t *p;
	size_t n;

	if (size <= buf->size)
		return 0;
	if (size > SIZE_MAX / 2)
		return -ENOMEM;

	/* Grow to a power of two so a run of slightly larger chunks does not
	 * reallocate each time. */
	n = buf->size ? buf->size : 4096;
	while (n < size)
		n *= 2;
	/* Contents need not survive, so free first and keep the peak low. */
	free(buf->data);
	buf->size = 0;
	p = malloc(n);
	buf->data = p;
	if (!p)
		return -ENOMEM;
	buf->size = n;
	return 0;
}

int fs_worker_reserve_bufv(struct fs_worker *worker, size_t n)
{
	struct fuse_bufvec *bv;
	struct fs_uring_io *io;
	uint32_t *chunks;

	if (n <= worker->bufv_cap)
		return 0;

	/* struct fuse_bufvec ends in a one-element array of buffers. */
	bv = realloc(worker->bufv, sizeof(*bv) + (n - 1) * sizeof(bv->buf[0]));
	if (!bv)
		return -ENOMEM;
	worker->bufv = bv;
	io = realloc(worker->pieces, n * sizeof(*io));
	if (!io)
		return -ENOMEM;
	worker->pieces = io;
	chunks = realloc(worker->piece_chunks, n * sizeof(*chunks));
	if (!chunks)
		return -ENOMEM;
	worker->piece_chunks = chunks;
	worker->bufv_cap = n;
	return 0;
}

int fs_worker_reserve_reply(struct fs_worker *worker, size_t size)
{
	size_t before = worker->reply.size;
	struct fs_uring *ring;
	int r;

	r = fs_buf_reserve(&worker->reply, size);
	if (worker->reply.size == before)
		return r;
	/* A new buffer (or none), maybe at the old address: the ring must
	 * not keep the freed one's pages. */
	ring = fs_worker_ring(worker);
	if (ring)
		(void)fs_uring_register(ring, worker->reply.data,
					worker->reply.size);
	return r;
}
