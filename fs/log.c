/* SPDX-License-Identifier: MIT */
/*
 * log.c - the daemon's logging sink: stderr in the foreground, syslog
 * once detached.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "fs/log.h"

bool fs_log_debug_enabled;

/* Set before the worker threads start, read-only afterwards. */
static bool log_syslog;

void fs_log_init(bool debug)
{
	fs_log_debug_enabled = debug;
	log_syslog = false;
}

void fs_log_use_syslog(void)
{
	openlog("imgfs", LOG_PID, LOG_DAEMON);
	log_syslog = true;
}

void fs_log_close(void)
{
	if (log_syslog)
		closelog();
	log_syslog = false;
}

static const char *log_level_name(int level)
{
	switch (level) {
	case LOG_EMERG:
	case LOG_ALERT:
	case LOG_CRIT:
	case LOG_ERR:
		return "error";
	case LOG_WARNING:
		return "warning";
	case LOG_NOTICE:
		return "notice";
	case LOG_INFO:
		return "info";
	default:
		return "debug";
	}
}

__attribute__((format(printf, 2, 0)))
static void log_va(int level, const char *fmt, va_list ap)
{
	char line[1024];

	if (level >= LOG_DEBUG && !fs_log_debug_enabled)
		return;

	/* Format first so that one line reaches the sink in one call and
	 * lines from different threads never interleave. */
	vsnprintf(line, sizeof(line), fmt, ap);
	if (log_syslog)
		syslog(level, "%s", line);
	else
		fprintf(stderr, "imgfs: %s: %s\n", log_level_name(level), line);
}

void fs_log(int level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_va(level, fmt, ap);
	va_end(ap);
}

const char *fs_strerror(int err)
{
	const char *s = strerrordesc_np(err);

	return s ? s : "unknown error";
}

static long log_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long)ts.tv_sec;
}

void fs_log_limited(struct fs_ratelimit *rl, int level, const char *fmt, ...)
{
	unsigned long dropped = 0;
	bool print = false;
	long now = log_now();
	va_list ap;

	pthread_mutex_lock(&rl->lock);
	if (rl->printed == 0 || now - rl->window_start >= FS_LOG_INTERVAL) {
		dropped = rl->suppressed;
		rl->window_start = now;
		rl->printed = 0;
		rl->suppressed = 0;
	}
	if (rl->printed < FS_LOG_BURST) {
		rl->printed++;
		print = true;
	} else {
		rl->suppressed++;
	}
	pthread_mutex_unlock(&rl->lock);

	if (dropped)
		fs_log(level, "%lu similar messages suppressed", dropped);
	if (!print)
		return;
	va_start(ap, fmt);
	log_va(level, fmt, ap);
	va_end(ap);
}
