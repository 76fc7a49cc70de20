/* SPDX-License-Identifier: MIT */
/*
 * fdcache.c - descriptors of verified cache files, kept open between
 * reads.
 *
 * Design notes
 * ------------
 * Opening a chunk's file by name for every FUSE read costs a path walk,
 * and after the kernel dropped its dentry and inode caches (memory
 * pressure, or drop_caches in a benchmark) that walk reads the shard
 * directory and the inode from disk before the data: a cold random read
 * pays two or three disk reads where a local file pays one.  An open
 * descriptor pins its dentry and inode, so the data read is the only
 * disk access left, and the syscalls of open and close go too.
 *
 * The table maps (layer, chunk) to a slot; slots are reused in clock
 * order (a slot used since the hand last passed gets a second chance).
 * A slot handed out is referenced until fs_fdcache_put(): it is never
 * closed under a reader, so a descriptor number cannot be reused for
 * another file while a reply still points at it.
 *
 * Invariants:
 * 1. Only descriptors of files this process verified go in (cache.c,
 *    invariant 2); memfds and unverified files never do.
 * 2. slot_of[] and every slot field are read and written under @lock.
 * 3. A slot with refs > 0 is never closed or reused; a flushed slot with
 *    readers is marked doomed and closed by its last put.
 * 4. The evictor flushes the table after removing files (evict.c), so a
 *    removed file's disk space is not held past the readers it has.
 * 5. The tables of all mounts of the process hold at most fdcache_budget
 *    descriptors together (fdcache_total counts them), so a daemon with
 *    several mounts never runs out of descriptors for its own work.
 */
#include <errno.h>
#include <stdint.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

#include "fs/fs_internal.h"
#include "fs/log.h"

/* Kept open at most: a pytorch image has about 3,200 chunk files.  The
 * kernel spends about 1 KiB per open file; the daemon 16 bytes. */
#define FDCACHE_MAX 8192
/* Descriptors left for everything else: FUSE, sockets, the blobs. */
#define FDCACHE_SPARE 256
/* Fewer than this and parallel reads fail for want of descriptors
 * (pipes, cache files, sockets): refused at start. */
#define FDCACHE_MIN_LIMIT 64

struct fd_slot {
	size_t key; /* global chunk number (fs_ctx_chunk_key) */
	int fd; /* -1: free */
	uint32_t refs; /* readers holding it */
	bool recent; /* used since the clock hand last passed */
	bool doomed; /* flushed while referenced: the last put closes it */
};

/* Descriptors all tables of the process may hold together (half of what
 * RLIMIT_NOFILE leaves), set by the first fs_fdcache_open(), and how many
 * they hold now.  The mounts of one daemon share the budget. */
static size_t fdcache_budget;
static _Atomic size_t fdcache_total;

/* Raises the soft descriptor limit to the hard one and sets the
 * process's budget.  -EMFILE (logged) under FDCACHE_MIN_LIMIT. */
static int fdcache_budget_init(void)
{
	struct rlimit rl;
	rlim_t n;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return 0;
	if (rl.rlim_cur < rl.rlim_max) {
		rlim_t want = rl.rlim_max == RLIM_INFINITY ? 65536 :
							     rl.rlim_max;
		struct rlimit up = { want, rl.rlim_max };

		if (setrlimit(RLIMIT_NOFILE, &up) == 0)
			rl.rlim_cur = want;
	}
	n = rl.rlim_cur;
	if (n < FDCACHE_MIN_LIMIT) {
		fs_log(LOG_ERR, "only %ju file descriptors allowed "
		       "(RLIMIT_NOFILE); the daemon needs at least %d",
		       (uintmax_t)n, FDCACHE_MIN_LIMIT);
		return -EMFILE;
	}
	if (n == RLIM_INFINITY || n > 2 * (4 * FDCACHE_MAX + FDCACHE_SPARE))
		fdcache_budget = 4 * FDCACHE_MAX;
	else if (n > FDCACHE_SPARE)
		fdcache_budget = (size_t)(n - FDCACHE_SPARE) / 2;
	return 0;
}

/* Takes one descriptor of the budget; false when it is spent. */
static bool fdcache_reserve(void)
{
	if (atomic_fetch_add(&fdcache_total, 1) < fdcache_budget)
		return true;
	atomic_fetch_sub(&fdcache_total, 1);
	return false;
}

int fs_fdcache_open(struct fs_ctx *ctx)
{
	struct fs_fdcache *fc = &ctx->fdcache;
	static bool budget_set;
	size_t cap;
	int r;

	/* Mounts open one after another, before any thread serves. */
	if (!budget_set) {
		r = fdcache_budget_init();
		if (r < 0)
			return r;
		budget_set = true;
	}
	cap = fdcache_budget < FDCACHE_MAX ? fdcache_budget : FDCACHE_MAX;
	if (!cap)
		return 0;
	fc->slot_of = calloc(ctx->n_chunks ? ctx->n_chunks : 1,
			     sizeof(*fc->slot_of));
	fc->slots = calloc(cap, sizeof(*fc->slots));
	if (!fc->slot_of || !fc->slots) {
		free(fc->slot_of);
		free(fc->slots);
		fc->slot_of = NULL;
		fc->slots = NULL;
		return -ENOMEM;
	}
	for (size_t i = 0; i < cap; i++)
		fc->slots[i].fd = -1;
	pthread_mutex_init(&fc->lock, NULL);
	fc->cap = cap;
	return 0;
}

static void slot_close(struct fs_fdcache *fc, struct fd_slot *s)
{
	close(s->fd);
	fc->slot_of[s->key] = 0;
	s->fd = -1;
	s->refs = 0;
	s->doomed = false;
	fc->open--;
	atomic_fetch_sub(&fdcache_total, 1);
}

void fs_fdcache_close(struct fs_ctx *ctx)
{
	struct fs_fdcache *fc = &ctx->fdcache;

	if (!fc->cap)
		return;
	for (size_t i = 0; i < fc->cap; i++)
		if (fc->slots[i].fd >= 0)
			slot_close(fc, &fc->slots[i]);
	pthread_mutex_destroy(&fc->lock);
	free(fc->slot_of);
	free(fc->slots);
	fc->slot_of = NULL;
	fc->slots = NULL;
	fc->cap = 0;
}

/* Holds the open slot of @key; -1 when there is none (or it is doomed). */
static int slot_hold(struct fs_fdcache *fc, size_t key)
{
	struct fd_slot *s;

	if (!fc->slot_of[key])
		return -1;
	s = &fc->slots[fc->slot_of[key] - 1];
	if (s->doomed)
		return -1;
	s->refs++;
	s->recent = true;
	return s->fd;
}

int fs_fdcache_get(struct fs_ctx *ctx, uint32_t layer, uint32_t chunk_no)
{
	struct fs_fdcache *fc = &ctx->fdcache;
	int fd;

	if (!fc->cap)
		return -1;
	pthread_mutex_lock(&fc->lock);
	fd = slot_hold(fc, fs_ctx_chunk_key(ctx, layer, chunk_no));
	pthread_mutex_unlock(&fc->lock);
	return fd;
}

/* A slot to reuse, with a descriptor of the budget taken for it: a free
 * one while the budget lasts, else an idle one not used since the hand
 * passed, which is closed.  NULL: none (the caller keeps its own). */
static struct fd_slot *fdcache_victim(struct fs_fdcache *fc)
{
	for (size_t step = 0; step < 2 * fc->cap; step++) {
		struct fd_slot *s = &fc->slots[fc->hand];

		fc->hand = (fc->hand + 1) % fc->cap;
		if (s->fd < 0) {
			if (fdcache_reserve())
				return s;
			continue;
		}
		if (s->refs)
			continue;
		if (s->recent) {
			s->recent = false;
			continue;
		}
		slot_close(fc, s);
		/* Another mount's table may have taken what was freed. */
		return fdcache_reserve() ? s : NULL;
	}
	return NULL;
}

int fs_fdcache_add(struct fs_ctx *ctx, uint32_t layer, uint32_t chunk_no,
		   int fd)
{
	struct fs_fdcache *fc = &ctx->fdcache;
	size_t key = fs_ctx_chunk_key(ctx, layer, chunk_no);
	struct fd_slot *s;
	int held;

	if (!fc->cap)
		return fd;
	pthread_mutex_lock(&fc->lock);
	if (fc->slot_of[key]) {
		/* Another reader opened the same file meanwhile. */
		held = slot_hold(fc, key);
		if (held >= 0) {
			pthread_mutex_unlock(&fc->lock);
			close(fd);
			return held;
		}
	} else {
		s = fdcache_victim(fc);
		if (s) {
			/* Requests read pieces of a chunk, often not in
			 * order, and the FUSE side has its own read-ahead:
			 * kernel read-ahead here only read bytes nobody
			 * asked for (random 128 KiB reads: 1.4 times the
			 * disk bytes).  Sequential reads get explicit hints
			 * (fs_cache_hint). */
			(void)posix_fadvise(fd, 0, 0, POSIX_FADV_RANDOM);
			*s = (struct fd_slot){ .key = key, .fd = fd, .refs = 1,
					       .recent = true };
			fc->slot_of[key] = (uint32_t)(s - fc->slots) + 1;
			fc->open++;
		}
	}
	/* A full table of busy slots, or a doomed one: the caller's
	 * descriptor stays its own and put() closes it. */
	pthread_mutex_unlock(&fc->lock);
	return fd;
}

void fs_fdcache_put(struct fs_ctx *ctx, uint32_t layer, uint32_t chunk_no,
		    int fd)
{
	struct fs_fdcache *fc = &ctx->fdcache;
	struct fd_slot *s = NULL;
	size_t key;

	if (fd < 0)
		return;
	if (fc->cap) {
		key = fs_ctx_chunk_key(ctx, layer, chunk_no);
		pthread_mutex_lock(&fc->lock);
		if (fc->slot_of[key])
			s = &fc->slots[fc->slot_of[key] - 1];
		/* Two open descriptors never share a number, so a slot
		 * holding @fd is the one it came from. */
		if (s && s->fd == fd) {
			if (--s->refs == 0 && s->doomed)
				slot_close(fc, s);
			pthread_mutex_unlock(&fc->lock);
			return;
		}
		pthread_mutex_unlock(&fc->lock);
	}
	close(fd);
}

void fs_fdcache_flush(struct fs_ctx *ctx)
{
	struct fs_fdcache *fc = &ctx->fdcache;

	if (!fc->cap)
		return;
	pthread_mutex_lock(&fc->lock);
	for (size_t i = 0; i < fc->cap; i++) {
		struct fd_slot *s = &fc->slots[i];

		if (s->fd < 0)
			continue;
		if (s->refs)
			s->doomed = true;
		else
			slot_close(fc, s);
	}
	pthread_mutex_unlock(&fc->lock);
}

void fs_fdcache_share(struct fs_ctx *const *ctxs, unsigned int n)
{
	size_t share = n ? fdcache_budget / n : 0;

	for (unsigned int i = 0; i < n; i++) {
		struct fs_fdcache *fc = &ctxs[i]->fdcache;

		/* The slots beyond stay unused; nothing is open yet. */
		if (fc->cap > share)
			fc->cap = share ? share : 1;
		fc->hand = 0;
	}
}
