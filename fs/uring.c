/* SPDX-License-Identifier: MIT */
/*
 * uring.c - positioned reads and writes through a per-thread io_uring,
 * with pread/pwrite when there is no ring.
 *
 * Each call submits its operations and reaps every completion before it
 * returns, so a buffer is lent to the kernel only for the call's
 * duration.  fs_uring_read_all() submits a whole read reply's pieces in
 * one system call; the worker's reply buffer is registered with the ring
 * (fs_uring_register()), so those reads skip pinning its pages each time.
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
	unsigned int entries; /* submission slots */
	const uint8_t *fixed; /* registered buffer 0, or NULL */
	size_t fixed_len;
};

/* One request moves at most this much: the length field is 32 bits and
 * chunks are far smaller anyway. */
#define URING_MAX_IO (1u << 30)
/* Reads submitted by one fs_uring_read_all() system call at most. */
#define URING_BATCH_MAX 64

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
	u->entries = entries;

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

int fs_uring_register(struct fs_uring *u, void *buf, size_t len)
{
	struct iovec iov = { .iov_base = buf, .iov_len = len };
	int r;

	if (!u)
		return -EINVAL;
	if (u->fixed) {
		io_uring_unregister_buffers(&u->ring);
		u->fixed = NULL;
		u->fixed_len = 0;
	}
	if (!buf || len > URING_MAX_IO)
		return 0;
	/* Counted against RLIMIT_MEMLOCK without CAP_IPC_LOCK: a refusal
	 * only means plain reads. */
	r = io_uring_register_buffers(&u->ring, &iov, 1);
	if (r < 0)
		return r;
	u->fixed = buf;
	u->fixed_len = len;
	return 0;
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

static bool uring_in_fixed(const struct fs_uring *u, const void *buf,
			   size_t len)
{
	const uint8_t *p = buf;

	return u->fixed && p >= u->fixed && len <= u->fixed_len &&
	       (size_t)(p - u->fixed) <= u->fixed_len - len;
}

/* Finishes a read the batch left short (or interrupted). */
static int uring_read_rest(struct fs_uring *u, const struct fs_uring_io *io,
			   int res)
{
	size_t done = res > 0 ? (size_t)res : 0;
	ssize_t n;

	n = io_full(u, false, io->fd, (uint8_t *)io->buf + done,
		    io->len - done, io->off + done);
	if (n < 0)
		return (int)n;
	return done + (size_t)n == io->len ? 0 : -EIO;
}

/* Submits ios[0..n) (n <= entries) at once and reaps all of them. */
static int uring_read_batch(struct fs_uring *u, const struct fs_uring_io *ios,
			    unsigned int n)
{
	int res[URING_BATCH_MAX];
	struct io_uring_cqe *cqe;
	unsigned int i, reaped = 0;
	int r, err = 0;

	for (i = 0; i < n; i++) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);

		/* Cannot fail: every earlier batch was reaped in full. */
		if (!sqe)
			return -EBUSY;
		if (uring_in_fixed(u, ios[i].buf, ios[i].len))
			io_uring_prep_read_fixed(sqe, ios[i].fd, ios[i].buf,
						 ios[i].len, ios[i].off, 0);
		else
			io_uring_prep_read(sqe, ios[i].fd, ios[i].buf,
					   ios[i].len, ios[i].off);
		io_uring_sqe_set_data64(sqe, i);
		res[i] = 0;
	}
	do {
		r = io_uring_submit_and_wait(&u->ring, n);
	} while (r == -EINTR);
	/* Submitted or not, nothing may be left in the ring: reap what went
	 * in.  A failed submit leaves the entries queued for the next one,
	 * which is this loop's wait. */
	while (reaped < n) {
		r = io_uring_wait_cqe(&u->ring, &cqe);
		if (r == -EINTR)
			continue;
		if (r < 0)
			return r; /* the ring is unusable; so is the process */
		i = (unsigned int)io_uring_cqe_get_data64(cqe);
		if (i < n)
			res[i] = cqe->res;
		io_uring_cqe_seen(&u->ring, cqe);
		reaped++;
	}
	for (i = 0; i < n && !err; i++) {
		if (res[i] == (int)ios[i].len)
			continue;
		if (res[i] < 0 && res[i] != -EINTR && res[i] != -EAGAIN)
			err = res[i];
		else
			err = uring_read_rest(u, &ios[i], res[i]);
	}
	return err;
}

int fs_uring_read_all(struct fs_uring *u, const struct fs_uring_io *ios,
		      size_t n)
{
	size_t i = 0;
	int r = 0;

	if (!u) {
		for (; i < n && r >= 0; i++)
			r = uring_read_rest(NULL, &ios[i], 0);
		return r < 0 ? r : 0;
	}
	while (i < n && r >= 0) {
		unsigned int k = u->entries < URING_BATCH_MAX ? u->entries :
							      URING_BATCH_MAX;

		if (n - i < k)
			k = (unsigned int)(n - i);

		r = uring_read_batch(u, ios + i, k);
		i += k;
	}
	return r < 0 ? r : 0;
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
