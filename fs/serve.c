/* SPDX-License-Identifier: MIT */
/*
 * serve.c - running the FUSE loops of several mounts in one daemon.
 *
 * libfuse's signal handlers serve one session, and its multi-threaded
 * loop only notices fuse_session_exit() when something interrupts the
 * thread that runs it.  So each session's loop runs in a thread of its
 * own, the termination signals are blocked everywhere and taken by
 * sigwait() in the calling thread, which then marks every session as
 * exited and pokes each loop thread with SERVE_WAKE (a handler that does
 * nothing, installed without SA_RESTART) until it has returned.  A loop
 * also ends alone when its mount is unmounted; the daemon ends when all
 * have.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fs/fs_internal.h"
#include "fs/log.h"

#define SERVE_WAKE SIGUSR1
/* Sent to the calling thread by the last loop that ends. */
#define SERVE_DONE SIGUSR2

struct serve_loop {
	struct fuse_session *se; /* borrowed */
	struct fuse_loop_config *cfg; /* borrowed */
	pthread_t thread;
	pthread_t waiter; /* the thread in fs_serve_sessions() */
	_Atomic unsigned int *running; /* loops not yet ended */
	_Atomic bool ended;
	bool started;
	int r; /* the loop's result, read after the join */
};

static void serve_wake_handler(int sig)
{
}

static void *serve_loop_thread(void *arg)
{
	struct serve_loop *l = arg;

	l->r = fuse_session_loop_mt(l->se, l->cfg);
	atomic_store(&l->ended, true);
	if (atomic_fetch_sub(l->running, 1) == 1)
		pthread_kill(l->waiter, SERVE_DONE);
	return NULL;
}

/* Ends every loop still running: exits its session and interrupts its
 * thread, again every few milliseconds, since a wake-up that comes just
 * before the loop waits is lost. */
static void serve_stop_all(struct serve_loop *loops, unsigned int n)
{
	const struct timespec pause = { .tv_nsec = 20 * 1000000 };
	bool all;

	for (unsigned int i = 0; i < n; i++)
		if (loops[i].started)
			fuse_session_exit(loops[i].se);
	do {
		all = true;
		for (unsigned int i = 0; i < n; i++) {
			if (!loops[i].started || atomic_load(&loops[i].ended))
				continue;
			all = false;
			pthread_kill(loops[i].thread, SERVE_WAKE);
		}
		if (!all)
			nanosleep(&pause, NULL);
	} while (!all);
}

/* Blocks the signals the waiter takes, in this thread and so in every
 * thread started from it; installs the wake-up handler. */
static int serve_signals(sigset_t *set)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = serve_wake_handler;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SERVE_WAKE, &sa, NULL) < 0)
		return -errno;
	sigemptyset(set);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGHUP);
	sigaddset(set, SERVE_DONE);
	return -pthread_sigmask(SIG_BLOCK, set, NULL);
}

/* Waits for a termination signal (returned) or for every loop to end
 * (0). */
static int serve_wait(const sigset_t *set, _Atomic unsigned int *running)
{
	int sig;

	for (;;) {
		if (sigwait(set, &sig) != 0)
			continue;
		if (sig != SERVE_DONE)
			return sig;
		if (atomic_load(running) == 0)
			return 0;
	}
}

int fs_serve_sessions(struct fuse_session *const *ses, unsigned int n,
		      struct fuse_loop_config *cfg)
{
	_Atomic unsigned int running = 0;
	struct serve_loop *loops;
	sigset_t set;
	int r, sig = 0;

	loops = calloc(n, sizeof(*loops));
	if (!loops)
		return -ENOMEM;
	r = serve_signals(&set);
	for (unsigned int i = 0; r >= 0 && i < n; i++) {
		loops[i] = (struct serve_loop){
			.se = ses[i],
			.cfg = cfg,
			.waiter = pthread_self(),
			.running = &running,
		};
		atomic_fetch_add(&running, 1);
		r = -pthread_create(&loops[i].thread, NULL, serve_loop_thread,
				    &loops[i]);
		if (r < 0)
			atomic_fetch_sub(&running, 1);
		else
			loops[i].started = true;
	}
	if (r >= 0)
		sig = serve_wait(&set, &running);
	else
		fs_log(LOG_ERR, "cannot start the FUSE loops: %s",
		       fs_strerror(-r));

	serve_stop_all(loops, n);
	for (unsigned int i = 0; i < n; i++) {
		if (!loops[i].started)
			continue;
		pthread_join(loops[i].thread, NULL);
		/* A loop that failed is the daemon's result. */
		if (loops[i].r < 0 && r >= 0 && !sig)
			r = loops[i].r;
	}
	free(loops);
	return r < 0 ? r : sig;
}
