/* SPDX-License-Identifier: MIT */
/*
 * daemon.c - fs_run(): load the image, mount it, detach, serve with the
 * multi-threaded loop until unmounted or signalled, then clean up.
 *
 * Order matters: everything that can fail because of the image or the
 * mountpoint happens in the foreground, so the caller sees the error;
 * threads (libfuse's workers, their rings) only exist after the fork of
 * fs_detach_begin(), since a fork keeps only the calling thread, and the
 * parent exits only once the child serves (detach.c).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "config.h"
#include "fs/fs_internal.h"
#include "fs/log.h"

/*
 * Idle workers libfuse keeps.  With FUSE_USE_VERSION 34 libfuse caps the
 * pool at 10 threads; keeping all of them spares re-creating each
 * thread's ring and buffers after every burst.
 */
#define DAEMON_IDLE_THREADS 10

/* Appends @s to @out with ',' and '\' escaped, so that a source path
 * stays one value of the -o list. */
static void daemon_escape_into(char *out, const char *s)
{
	for (; *s; s++) {
		if (*s == ',' || *s == '\\')
			*out++ = '\\';
		*out++ = *s;
	}
	*out = '\0';
}

/* The -o list: the caller's options, then ours, which win. */
static int daemon_mount_opts(const struct fs_options *opts, char **ret_opts)
{
	static const char fixed[] = "ro,default_permissions,subtype=imgfs,"
				    "max_read=%u,fsname=imgfs:";
	const char *user = opts->fuse_opts ? opts->fuse_opts : "";
	size_t n = strlen(user) + 1 + sizeof(fixed) + 10 +
		   2 * strlen(opts->source) + 1;
	char *buf, *p;

	buf = malloc(n);
	if (!buf)
		return -ENOMEM;
	p = buf;
	if (*user)
		p += sprintf(p, "%s,", user);
	p += sprintf(p, fixed, fs_read_max());
	daemon_escape_into(p, opts->source);

	*ret_opts = buf;
	return 0;
}

int fs_session_create(const struct fs_options *opts, void *userdata,
		      struct fuse_session **ret_se)
{
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	struct fuse_session *se;
	char *mount_opts = NULL;
	int r;

	r = daemon_mount_opts(opts, &mount_opts);
	if (r < 0)
		goto out;
	if (opts->fuse_opts && strstr(opts->fuse_opts, "max_read="))
		fs_log(LOG_WARNING, "ignoring max_read: reads are capped at "
		       "%u bytes to fit the pipes spliced replies use",
		       fs_read_max());
	r = -ENOMEM;
	if (fuse_opt_add_arg(&args, "imgfs") < 0 ||
	    fuse_opt_add_arg(&args, "-o") < 0 ||
	    fuse_opt_add_arg(&args, mount_opts) < 0)
		goto out;

	/* libfuse prints what it did not like about the options. */
	se = fuse_session_new(&args, &fs_ops, sizeof(fs_ops), userdata);
	if (!se) {
		fs_log(LOG_ERR, "cannot create the FUSE session with options "
		       "'%s'", mount_opts);
		r = -EINVAL;
		goto out;
	}
	*ret_se = se;
	r = 0;

out:
	fuse_opt_free_args(&args);
	free(mount_opts);
	return r;
}

/* Mounts @ctx's image on @mountpoint.  With @handlers, libfuse's signal
 * handlers end the session (one mount); else fs_serve_sessions() does. */
static int daemon_mount(struct fs_ctx *ctx, const char *mountpoint,
			bool handlers, struct fuse_session **ret_se)
{
	const struct fs_options *opts = ctx->opts;
	struct fuse_session *se = NULL;
	char fd_path[32];
	int r;

	r = fs_session_create(opts, ctx, &se);
	if (r < 0)
		return r;
	/* A supervised daemon is handed the mounted descriptor: libfuse
	 * takes "/dev/fd/N" as that descriptor and mounts nothing. */
	if (opts->fuse_fd >= 0) {
		snprintf(fd_path, sizeof(fd_path), "/dev/fd/%d", opts->fuse_fd);
		mountpoint = fd_path;
	}

	if (handlers && fuse_set_signal_handlers(se) != 0) {
		fs_log(LOG_ERR, "cannot install the signal handlers");
		r = -EIO;
		goto err_destroy;
	}
	if (fuse_session_mount(se, mountpoint) != 0) {
		/* libfuse has printed the cause. */
		fs_log(LOG_ERR, "cannot mount %s on %s", ctx->opts->source,
		       mountpoint);
		r = -EIO;
		goto err_signals;
	}
	if (opts->fuse_fd >= 0) {
		r = fs_supervise_attach(ctx, se);
		if (r < 0)
			goto err_unmount;
	}

	*ret_se = se;
	return 0;

err_unmount:
	fuse_session_unmount(se);

err_signals:
	if (handlers)
		fuse_remove_signal_handlers(se);
err_destroy:
	fuse_session_destroy(se);
	return r;
}

static void daemon_unmount(struct fuse_session *se, bool handlers)
{
	if (handlers)
		fuse_remove_signal_handlers(se);
	fuse_session_unmount(se);
	fuse_session_destroy(se);
}

static void daemon_log_start(const struct fs_ctx *ctx, const char *mountpoint)
{
	fs_log(LOG_INFO, "imgfs %s serving %s on %s: %" PRIu32 " layers, %"
	       PRIu64 " inodes, cache %s", IMGFS_VERSION, ctx->opts->source,
	       mountpoint, ctx->n_layers, ctx->n_inodes, ctx->cache.dir);
}

/* One mount of the daemon. */
struct daemon_mount {
	struct fs_options opts; /* the daemon's, for this mount */
	char *mountpoint; /* owned; absolute */
	struct fs_ctx *ctx; /* owned */
	struct fuse_session *se; /* owned; mounted */
};

struct daemon {
	const struct fs_options *opts; /* borrowed */
	unsigned int n;
	struct daemon_mount *mounts; /* owned, n */
	struct fs_ctx **ctxs; /* owned array of borrowed, n */
	struct fuse_session **ses; /* owned array of borrowed, n */
};

/* Runs the loops; returns 0 when they ended by unmount or signal (logged
 * as the exit reason), else a negative errno. */
static int daemon_serve(struct daemon *d)
{
	struct fuse_loop_config cfg = {
		.clone_fd = 0,
		.max_idle_threads = d->opts->threads ? d->opts->threads :
						       DAEMON_IDLE_THREADS,
	};
	const char *sig;
	int r;

	if (d->n == 1)
		r = fuse_session_loop_mt(d->ses[0], &cfg);
	else
		r = fs_serve_sessions(d->ses, d->n, &cfg);
	if (r > 0) {
		/* The signal that ended it. */
		sig = sigabbrev_np(r);
		fs_log(LOG_INFO, "exiting: signal %s%s", sig ? "SIG" : "",
		       sig ? sig : "unknown");
		return 0;
	}
	if (r < 0) {
		fs_log(LOG_ERR, "exiting: the FUSE loop failed: %s",
		       fs_strerror(-r));
		return r;
	}
	fs_log(LOG_INFO, "exiting: unmounted");
	return 0;
}

/* Threads start only in the process that serves (after the fork). */
static int daemon_start_threads(struct daemon *d, struct fs_metrics **ret_m)
{
	int r;

	r = fs_worker_setup();
	if (r < 0) {
		fs_log(LOG_ERR, "cannot set up worker state: %s",
		       fs_strerror(-r));
		return r;
	}
	fs_pool_start();
	for (unsigned int i = 0; i < d->n; i++) {
		r = fs_evict_start(d->ctxs[i]);
		if (r < 0) {
			fs_log(LOG_ERR, "cannot start the cache evictor: %s",
			       fs_strerror(-r));
			return r;
		}
		r = fs_prefetch_start(d->ctxs[i]);
		if (r < 0) {
			fs_log(LOG_ERR, "cannot start prefetching: %s",
			       fs_strerror(-r));
			return r;
		}
	}
	return fs_metrics_start(d->ctxs, d->n, d->opts, ret_m);
}

/* The mountpoint to log and to unmount; a supervised daemon's is already
 * mounted (by the supervisor), so it is not checked. */
static int daemon_mountpoint(const struct fs_options *opts, char **ret_path)
{
	if (opts->fuse_fd >= 0) {
		*ret_path = strdup(opts->mountpoint);
		return *ret_path ? 0 : -ENOMEM;
	}
	return fs_mountpoint_check(opts->mountpoint, opts->nonempty, ret_path);
}

/* Everything after the mounts: detach (unless in the foreground or
 * supervised), start the threads, write the pid file, tell whoever waits
 * that the mounts serve, serve until the end. */
static int daemon_main(struct daemon *d)
{
	const struct fs_options *opts = d->opts;
	struct fs_metrics *metrics = NULL;
	char *pidfile = NULL;
	int ready_fd = opts->ready_fd, r;

	if (!opts->foreground && opts->fuse_fd < 0) {
		r = fs_detach_begin(&ready_fd);
		if (r < 0) {
			fs_log(LOG_ERR, "cannot fork the daemon: %s",
			       fs_strerror(-r));
			return r;
		}
	}
	r = daemon_start_threads(d, &metrics);
	if (r >= 0 && opts->pidfile && opts->fuse_fd < 0)
		r = fs_pidfile_write(opts->pidfile, &pidfile);
	if (r < 0) {
		fs_detach_done(ready_fd, 1);
		goto out;
	}
	if (!opts->foreground) {
		fs_log_use_syslog();
		fs_detach_quiet();
	}
	for (unsigned int i = 0; i < d->n; i++)
		daemon_log_start(d->ctxs[i], d->mounts[i].mountpoint);
	fs_detach_done(ready_fd, 0);

	r = daemon_serve(d);

out:
	/* Prefetch threads hold workers too: they end before the key. */
	for (unsigned int i = 0; i < d->n; i++)
		fs_prefetch_stop(d->ctxs[i]);
	fs_metrics_stop(metrics);
	fs_pool_stop();
	fs_worker_teardown();
	fs_pidfile_remove(pidfile);
	return r;
}

/* Checks the mountpoint, opens the image and mounts it: mount @i. */
static int daemon_open_one(struct daemon *d, unsigned int i)
{
	struct daemon_mount *m = &d->mounts[i];
	int r;

	m->opts = *d->opts;
	if (d->opts->n_mounts) {
		m->opts.source = d->opts->sources[i];
		m->opts.mountpoint = d->opts->mountpoints[i];
	}
	r = daemon_mountpoint(&m->opts, &m->mountpoint);
	if (r < 0)
		return r;
	r = fs_ctx_open(&m->opts, &m->ctx);
	if (r < 0)
		return r;
	m->ctx->mountpoint = m->mountpoint;
	d->ctxs[i] = m->ctx;
	r = daemon_mount(m->ctx, m->mountpoint, d->n == 1, &m->se);
	if (r < 0)
		return r;
	d->ses[i] = m->se;
	return 0;
}

/* Unmounts and frees what daemon_open_one() made, last mount first. */
static void daemon_close_all(struct daemon *d)
{
	for (unsigned int i = d->n; d->mounts && i-- > 0;) {
		if (d->mounts[i].se)
			daemon_unmount(d->mounts[i].se, d->n == 1);
		fs_ctx_free(d->mounts[i].ctx);
		free(d->mounts[i].mountpoint);
	}
	free(d->mounts);
	free(d->ctxs);
	free(d->ses);
}

void fs_options_init(struct fs_options *opts)
{
	memset(opts, 0, sizeof(*opts));
	opts->fuse_fd = -1;
	opts->fuse_init_fd = -1;
	opts->ready_fd = -1;
}

int fs_run(const struct fs_options *opts)
{
	struct daemon d = { .opts = opts };
	int r = 0;

	d.n = opts->n_mounts ? opts->n_mounts : 1;
	fs_log_init(opts->debug);
	if (!opts->n_mounts && (!opts->source || !opts->mountpoint)) {
		fs_log(LOG_ERR, "a source and a mountpoint are needed");
		return -EINVAL;
	}
	if (opts->supervise && d.n > 1) {
		/* XXX: one supervisor per mount; its restart logic holds one
		 * FUSE descriptor and one daemon. */
		fs_log(LOG_ERR, "supervise serves one mount: run one "
		       "imgtool mount per image");
		return -EOPNOTSUPP;
	}
	if (opts->supervise && opts->fuse_fd < 0)
		return fs_supervise_run(opts);

	d.mounts = calloc(d.n, sizeof(*d.mounts));
	d.ctxs = calloc(d.n, sizeof(*d.ctxs));
	d.ses = calloc(d.n, sizeof(*d.ses));
	if (!d.mounts || !d.ctxs || !d.ses) {
		fs_log(LOG_ERR, "cannot allocate the daemon state: %s",
		       fs_strerror(ENOMEM));
		r = -ENOMEM;
	}
	for (unsigned int i = 0; r >= 0 && i < d.n; i++)
		r = daemon_open_one(&d, i);
	if (r >= 0) {
		fs_fdcache_share(d.ctxs, d.n);
		r = daemon_main(&d);
	}

	daemon_close_all(&d);
	fs_log_close();
	return r;
}
