/* SPDX-License-Identifier: MIT */
/*
 * pool.c - a few threads, one per core, that share the items of a batch
 * with the thread that hands it in: decompressing and hashing the chunks
 * of one fetched span (cache.c) takes one core per chunk instead of the
 * requesting thread alone.
 *
 * Design notes
 * ------------
 * The thread that calls fs_pool_run() works on its own batch too and
 * returns once every item is finished, so a batch lives on its stack and
 * a full pool never stalls anybody: with no pool thread free, the caller
 * does all the items itself.  Items are coarse (a chunk: about a
 * millisecond), so they are taken under the one lock.
 *
 * Invariants:
 * 1. Every field of the pool and of a queued batch is read and written
 *    under pool.lock, except while an item's function runs.
 * 2. A batch is on the queue exactly while it has items nobody took.
 * 3. fs_pool_run() returns only when done == n, and nobody touches a
 *    batch after finishing its last item: the caller may then free it.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

#include "fs/fs_internal.h"
#include "fs/log.h"

/* More threads than this buy nothing for a span of FS_SPAN_MAX_CHUNKS. */
#define POOL_MAX_THREADS 16

struct pool_batch {
	void (*fn)(void *arg, uint32_t i);
	void *arg;
	uint32_t n;
	uint32_t next; /* next item to take */
	uint32_t done; /* items finished */
	struct pool_batch *link; /* next batch on the queue */
};

static struct {
	pthread_mutex_t lock;
	pthread_cond_t work; /* a batch was queued, or stop */
	pthread_cond_t done; /* some batch's last item finished */
	struct pool_batch *head, *tail; /* batches with items left */
	pthread_t threads[POOL_MAX_THREADS];
	unsigned int n_threads;
	bool stop;
} pool = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.work = PTHREAD_COND_INITIALIZER,
	.done = PTHREAD_COND_INITIALIZER,
};

/* Takes @b off the queue (lock held). */
static void pool_unlink(struct pool_batch *b)
{
	struct pool_batch **at = &pool.head, *prev = NULL;

	while (*at && *at != b) {
		prev = *at;
		at = &(*at)->link;
	}
	if (!*at)
		return;
	*at = b->link;
	if (pool.tail == b)
		pool.tail = prev;
}

/* Takes the next item of @b (lock held, an item left). */
static uint32_t pool_take(struct pool_batch *b)
{
	uint32_t i = b->next++;

	if (b->next == b->n)
		pool_unlink(b);
	return i;
}

/* Runs item @i of @b with the lock dropped, and counts it (lock held). */
static void pool_do(struct pool_batch *b, uint32_t i)
{
	pthread_mutex_unlock(&pool.lock);
	b->fn(b->arg, i);
	pthread_mutex_lock(&pool.lock);
	if (++b->done == b->n)
		pthread_cond_broadcast(&pool.done);
}

static void *pool_thread(void *arg)
{
	struct pool_batch *b;

	pthread_mutex_lock(&pool.lock);
	for (;;) {
		while (!pool.stop && !pool.head)
			pthread_cond_wait(&pool.work, &pool.lock);
		if (pool.stop)
			break;
		b = pool.head;
		pool_do(b, pool_take(b));
	}
	pthread_mutex_unlock(&pool.lock);
	return arg;
}

int fs_pool_start(void)
{
	long cores = sysconf(_SC_NPROCESSORS_ONLN);
	unsigned int want;
	int r = 0;

	want = cores < 1 ? 1 : cores > POOL_MAX_THREADS ? POOL_MAX_THREADS :
							  (unsigned int)cores;
	pthread_mutex_lock(&pool.lock);
	pool.stop = false;
	while (pool.n_threads < want) {
		r = -pthread_create(&pool.threads[pool.n_threads], NULL,
				    pool_thread, NULL);
		if (r < 0)
			break;
		pool.n_threads++;
	}
	pthread_mutex_unlock(&pool.lock);
	/* Fewer threads only means less parallel decoding. */
	if (r < 0)
		fs_log(LOG_WARNING, "started %u of %u decoding threads: %s",
		       pool.n_threads, want, fs_strerror(-r));
	return 0;
}

void fs_pool_stop(void)
{
	unsigned int n;

	pthread_mutex_lock(&pool.lock);
	pool.stop = true;
	pthread_cond_broadcast(&pool.work);
	n = pool.n_threads;
	pool.n_threads = 0;
	pthread_mutex_unlock(&pool.lock);
	for (unsigned int i = 0; i < n; i++)
		pthread_join(pool.threads[i], NULL);
}

void fs_pool_run(void (*fn)(void *arg, uint32_t i), void *arg, uint32_t n)
{
	struct pool_batch b = { .fn = fn, .arg = arg, .n = n };
	uint32_t i;

	if (n == 0)
		return;
	pthread_mutex_lock(&pool.lock);
	if (!pool.n_threads || pool.stop || n == 1) {
		pthread_mutex_unlock(&pool.lock);
		for (i = 0; i < n; i++)
			fn(arg, i);
		return;
	}
	if (pool.tail)
		pool.tail->link = &b;
	else
		pool.head = &b;
	pool.tail = &b;
	pthread_cond_broadcast(&pool.work);
	/* Work on our own batch, not on others': they have their callers. */
	while (b.next < b.n)
		pool_do(&b, pool_take(&b));
	while (b.done < b.n)
		pthread_cond_wait(&pool.done, &pool.lock);
	pthread_mutex_unlock(&pool.lock);
}
