/* SPDX-License-Identifier: MIT */
/*
 * uring.c - positioned reads and writes through a per-thread io_uring,
 * with pread/pwrite when there is no ring.
 *
 * Each call submits one operation and reaps its completion before it
 * returns, so a buffer is lent to the kernel only for the call's duration
 * and a ring never has more than one request in flight.
 */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

#include <liburing.h>

#include "fs/fs_internal.h"

struct fs_uring {
	struct io_uring ring; /* owned by the one thread that made it */
};

/* One request moves at most this much: the length field is 32 bits and
 * chunks are far smaller anyway. */
#define URING_MAX_IO (1u << 30)

int fs_uring_new(unsigned int entries, struct fs_uring **ret_ring)
{
	struct fs_uring *u;
	int r;

	u = calloc(1, sizeof(*u));
	if (!u)
		return -ENOMEM;

	r = io_uring_queue_init(entries, &u->ring, 0);
	if (r < 0)
		goto err_free;

	*ret_ring = u;
	return 0;

err_free:
	free(u);
	return r;
}

void fs_uring_free(struct fs_uring *ring)
{
	if (!ring)
		return;
	io_uring_queue_exit(&ring->ring);
	free(ring);
}

/*
 * Runs one prepared read or write and returns its result.  EINTR while
 * waiting only means a signal arrived: the request is still in flight, so
 * wait again rather than give its buffer back.
 */
static int uring_run(struct io_uring *ring)
{
	struct io_uring_cqe *cqe;
	int r;

	do {
		r = io_uring_submit_and_wait(ring, 1);
	} while (r == -EINTR);
	if (r < 0)
		return r;

	do {
		r = io_uring_wait_cqe(ring, &cqe);
	} while (r == -EINTR);
	if (r < 0)
		return r;

	r = cqe->res;
	io_uring_cqe_seen(ring, cqe);
	return r;
}

/* Submits one read (@write false) or write of up to @len bytes. */
static int uring_io(struct fs_uring *u, bool write, int fd, void *buf,
		    size_t len, uint64_t off)
{
	struct io_uring_sqe *sqe;
	unsigned int n = len > URING_MAX_IO ? URING_MAX_IO : (unsigned int)len;

	/* Cannot fail: the previous call reaped its only request. */
	sqe = io_uring_get_sqe(&u->ring);
	if (!sqe)
		return -EBUSY;
	if (write)
		io_uring_prep_write(sqe, fd, buf, n, off);
	else
		io_uring_prep_read(sqe, fd, buf, n, off);
	return uring_run(&u->ring);
}

static ssize_t plain_io(bool write, int fd, void *buf, size_t len,
			uint64_t off)
{
	ssize_t n;

	if (len > URING_MAX_IO)
		len = URING_MAX_IO;
	if (write)
		n = pwrite(fd, buf, len, (off_t)off);
	else
		n = pread(fd, buf, len, (off_t)off);
	return n < 0 ? -errno : n;
}

/* Moves @len bytes, resubmitting after short transfers.  Returns the bytes
 * moved (short only when a read hits end of file) or -errno. */
static ssize_t io_full(struct fs_uring *u, bool write, int fd, void *buf,
		       size_t len, uint64_t off)
{
	size_t done = 0;
	ssize_t n;

	while (done < len) {
		if (u)
			n = uring_io(u, write, fd, (uint8_t *)buf + done,
				     len - done, off + done);
		else
			n = plain_io(write, fd, (uint8_t *)buf + done,
				     len - done, off + done);
		if (n == -EINTR || n == -EAGAIN)
			continue;
		if (n < 0)
			return n;
		if (n == 0)
			break;
		done += (size_t)n;
	}

	return (ssize_t)done;
}

ssize_t fs_uring_read(struct fs_uring *ring, int fd, void *buf, size_t len,
		      uint64_t off)
{
	return io_full(ring, false, fd, buf, len, off);
}

int fs_uring_write(struct fs_uring *ring, int fd, const void *buf,
		   size_t len, uint64_t off)
{
	ssize_t n;

	/* The cast only serves the shared helper: writes never store into
	 * the buffer. */
	n = io_full(ring, true, fd, (void *)buf, len, off);
	if (n < 0)
		return (int)n;
	/* A regular file that takes no bytes and reports no error is full
	 * in all but name. */
	return (size_t)n == len ? 0 : -ENOSPC;
}
