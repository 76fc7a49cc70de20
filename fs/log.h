/* SPDX-License-Identifier: MIT */
/*
 * log.h - the daemon's single logging call.
 *
 * One sink at a time: stderr until fs_log_use_syslog() switches to syslog
 * (after the daemon has detached).  Levels are the syslog ones.  Messages
 * start lowercase and have no final full stop or newline.
 *
 * fs_log_init() and fs_log_use_syslog() must run before any worker thread
 * starts; fs_log() itself is thread-safe.
 */
#ifndef IMGFS_FS_LOG_H
#define IMGFS_FS_LOG_H

#include <pthread.h>
#include <stdbool.h>
#include <syslog.h>

/* Read by fs_debug() on every traced request, so a plain flag: it is set
 * once before the worker threads exist and never changes afterwards. */
extern bool fs_log_debug_enabled;

/* Sets the stderr sink and whether LOG_DEBUG messages are kept. */
void fs_log_init(bool debug);

/* Sends every later message to syslog ("imgfs", LOG_PID, LOG_DAEMON). */
void fs_log_use_syslog(void);

/* Closes syslog if it was opened; later messages go to stderr again. */
void fs_log_close(void);

__attribute__((format(printf, 2, 3)))
void fs_log(int level, const char *fmt, ...);

/* Per-request tracing: costs one load of a flag when debugging is off. */
#define fs_debug(...)                                                   \
	do {                                                            \
		if (fs_log_debug_enabled)                               \
			fs_log(LOG_DEBUG, __VA_ARGS__);                 \
	} while (0)

/* Thread-safe text for a positive errno value (never NULL). */
const char *fs_strerror(int err);

/*
 * Limits a message that may repeat on every request (a broken blob, a
 * full cache disk) to FS_LOG_BURST lines per FS_LOG_INTERVAL seconds.
 * Initialise with FS_RATELIMIT_INIT.  Fields are guarded by @lock.
 */
#define FS_LOG_BURST 10
#define FS_LOG_INTERVAL 60

struct fs_ratelimit {
	pthread_mutex_t lock;
	long window_start; /* lock: CLOCK_MONOTONIC seconds */
	unsigned int printed; /* lock: lines printed in this window */
	unsigned long suppressed; /* lock: lines dropped in this window */
};

#define FS_RATELIMIT_INIT { PTHREAD_MUTEX_INITIALIZER, 0, 0, 0 }

/*
 * Like fs_log(), but drops the message when @rl has used up its burst.
 * The first message of a new window reports how many were dropped.
 */
__attribute__((format(printf, 3, 4)))
void fs_log_limited(struct fs_ratelimit *rl, int level, const char *fmt, ...);

#endif
