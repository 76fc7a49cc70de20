/* SPDX-License-Identifier: MIT */
/*
 * supervise.c - keeping a mount alive while the daemon behind it dies or
 * is replaced (-o supervise).
 *
 * A FUSE mount lives as long as some process holds its /dev/fuse
 * descriptor.  The supervisor mounts, holds the descriptor and starts
 * `imgtool mount` with a copy of it (-o supervised=FUSE:INIT:READY); when
 * that daemon dies, however it dies, the supervisor starts the binary
 * again (a new version, if it was replaced on disk) on the same
 * descriptor.  Programs keep their open files, directory streams and
 * working directories in the mount: the kernel never notices.
 *
 * What the new daemon needs, and how it gets it with libfuse 3.14's
 * public API:
 *
 * 1. libfuse answers every request with EIO until its session has seen
 *    FUSE_INIT, which the kernel sends once per mount.  So the supervisor
 *    reads that first request itself and keeps its bytes in a memfd.
 *    Every daemon it starts feeds those bytes to its new session with
 *    fuse_session_process_buf(): libfuse negotiates exactly as the first
 *    daemon did (same kernel offer, same code) and sets the session up.
 *    Its reply reaches the kernel only the first time; later the kernel
 *    refuses a reply to a request it no longer waits for (ENOENT), which
 *    libfuse drops silently.
 * 2. The state behind the requests must not live in the dead daemon.
 *    Inode numbers come from the merged tree, which is built the same way
 *    from the same index bytes; open and opendir hand out no file handle;
 *    readdir offsets are positions in the tree; lookups are not counted.
 *    Only the eviction pins of files opened before the restart are lost
 *    (see fs_evict_pin()).
 * 3. Requests the dead daemon had read but not answered would wait
 *    forever.  Since Linux 6.9 the FUSE_NOTIFY_RESEND notification puts
 *    them back in the queue, so the new daemon sends it once set up.  An
 *    older kernel refuses it, and such requests then hang until their
 *    program is killed: logged, since it is a limit a user can hit.
 *
 * The supervisor is single-threaded: signals arrive through a signalfd,
 * and it polls that, the ready pipe of the daemon it started and the
 * FUSE descriptor (which reports an error once the mount is gone).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/fuse.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fs/fs_internal.h"
#include "fs/log.h"

#ifndef FUSE_NOTIFY_RESEND
#define FUSE_NOTIFY_RESEND 7
#endif

/* Room for FUSE_INIT: the kernel refuses reads into smaller buffers. */
#define SUP_INIT_BUF 65536

/* A daemon that dies this soon after its start counts as failing to
 * start; after SUP_MAX_QUICK such deaths in a row the supervisor gives
 * up, unmounts and exits 1 instead of looping. */
#define SUP_QUICK_MS 10000
#define SUP_MAX_QUICK 6
/* Pause before a restart: doubles per quick death, up to the cap. */
#define SUP_PAUSE_MS 100
#define SUP_PAUSE_MAX_MS 5000

struct sup {
	const struct fs_options *opts; /* borrowed */
	char *mountpoint; /* owned, absolute */
	char exe[PATH_MAX]; /* the binary to start, resolved once */
	struct fuse_session *se; /* mounted, never run */
	int fuse_fd; /* se's descriptor */
	int init_fd; /* memfd: the FUSE_INIT request */
	int sig_fd;
	pid_t child; /* 0: none running */
	int child_ready_fd; /* read end of its ready pipe, -1 */
	uint64_t child_started_ms;
	bool child_served; /* it said it serves */
	bool served_once; /* some daemon did: later deaths are restarted */
	bool restart_asked; /* SIGHUP: this death is wanted */
	unsigned int quick_deaths;
	bool stopping;
	const char *exit_reason;
};

/* ---- the daemon's side ---- */

int fs_supervise_attach(struct fs_ctx *ctx, struct fuse_session *se)
{
	const struct fs_options *opts = ctx->opts;
	struct fuse_out_header resend = {
		.len = sizeof(resend),
		.error = FUSE_NOTIFY_RESEND,
	};
	struct fuse_buf buf = { 0 };
	off_t size;
	int r = 0;

	size = lseek(opts->fuse_init_fd, 0, SEEK_END);
	if (size <= 0 || size > SUP_INIT_BUF) {
		r = size < 0 ? -errno : -EPROTO;
		goto err;
	}
	buf.size = (size_t)size;
	buf.mem = malloc(buf.size);
	if (!buf.mem) {
		r = -ENOMEM;
		goto err;
	}
	if (pread(opts->fuse_init_fd, buf.mem, buf.size, 0) != size) {
		r = -EIO;
		goto err_free;
	}
	fuse_session_process_buf(se, &buf);
	if (!atomic_load(&ctx->init_done)) {
		r = -EPROTO;
		goto err_free;
	}
	free(buf.mem);
	close(opts->fuse_init_fd);

	if (write(opts->fuse_fd, &resend, sizeof(resend)) < 0)
		fs_log(LOG_WARNING, "the kernel cannot resend requests a "
		       "previous daemon left unanswered (%s, Linux 6.9 or "
		       "later can): their programs wait until killed",
		       fs_strerror(errno));
	return 0;

err_free:
	free(buf.mem);
err:
	fs_log(LOG_ERR, "cannot take over the FUSE connection of %s: %s",
	       opts->mountpoint, r == -EPROTO ? "the saved FUSE_INIT was "
	       "refused" : fs_strerror(-r));
	return r;
}

/* ---- the supervisor ---- */

/* Reads the FUSE_INIT the kernel queued at the mount into a memfd. */
static int sup_read_init(struct sup *s)
{
	const struct fuse_in_header *in;
	uint8_t *buf;
	ssize_t n;
	int r;

	buf = malloc(SUP_INIT_BUF);
	if (!buf)
		return -ENOMEM;
	do
		n = read(s->fuse_fd, buf, SUP_INIT_BUF);
	while (n < 0 && errno == EINTR);
	in = (const struct fuse_in_header *)buf;
	if (n < 0) {
		r = -errno;
		goto out;
	}
	if ((size_t)n < sizeof(*in) || in->len != (uint32_t)n ||
	    in->opcode != FUSE_INIT) {
		r = -EPROTO;
		goto out;
	}

	s->init_fd = memfd_create("imgfs-fuse-init", MFD_CLOEXEC);
	if (s->init_fd < 0) {
		r = -errno;
		goto out;
	}
	r = write(s->init_fd, buf, (size_t)n) == n ? 0 : -EIO;

out:
	if (r < 0)
		fs_log(LOG_ERR, "cannot read FUSE_INIT from the mount of %s: "
		       "%s", s->mountpoint, fs_strerror(-r));
	free(buf);
	return r;
}

/* In the forked child: the descriptors it is to keep across exec, its
 * signal mask back to normal, then exec.  Never returns. */
__attribute__((noreturn))
static void sup_exec_child(const struct sup *s, int ready_fd)
{
	const struct fs_options *o = s->opts;
	char spec[64];
	char **argv;
	int i = 0;
	sigset_t none;

	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	if (fcntl(s->fuse_fd, F_SETFD, 0) < 0 ||
	    fcntl(s->init_fd, F_SETFD, 0) < 0 ||
	    fcntl(ready_fd, F_SETFD, 0) < 0)
		_exit(127);
	snprintf(spec, sizeof(spec), "supervised=%d:%d:%d", s->fuse_fd,
		 s->init_fd, ready_fd);

	argv = calloc((size_t)o->argc + 6, sizeof(*argv));
	if (!argv)
		_exit(127);
	argv[i++] = (char *)"imgtool";
	argv[i++] = (char *)"mount";
	if (o->foreground)
		argv[i++] = (char *)"-f";
	argv[i++] = (char *)"-o";
	argv[i++] = spec;
	for (int a = 0; a < o->argc; a++)
		argv[i++] = o->argv[a];
	execv(s->exe, argv);
	fs_log(LOG_ERR, "cannot run %s: %s", s->exe, fs_strerror(errno));
	_exit(127);
}

static int sup_start_child(struct sup *s)
{
	int p[2], r;
	pid_t pid;

	r = fs_fork_pipe(p, &pid);
	if (r < 0)
		return r;
	if (pid == 0) {
		close(p[0]);
		sup_exec_child(s, p[1]);
	}
	close(p[1]);
	s->child = pid;
	s->child_ready_fd = p[0];
	s->child_started_ms = fs_now_ms();
	s->child_served = false;
	return 0;
}

/* Describes how @status ended daemon @pid, for the log. */
static void sup_describe(pid_t pid, int status, char *buf, size_t size)
{
	const char *sig;

	if (WIFSIGNALED(status)) {
		sig = sigabbrev_np(WTERMSIG(status));
		snprintf(buf, size, "%ld was killed by signal %s%s", (long)pid,
			 sig ? "SIG" : "", sig ? sig : "unknown");
	} else {
		snprintf(buf, size, "%ld exited with status %d", (long)pid,
			 WEXITSTATUS(status));
	}
}

/* The mount still stands: poll reports an error once it is gone. */
static bool sup_mount_alive(const struct sup *s)
{
	struct pollfd p = { .fd = s->fuse_fd, .events = 0 };

	return poll(&p, 1, 0) == 0;
}

static void sup_pause(unsigned int quick)
{
	uint64_t ms = (uint64_t)SUP_PAUSE_MS << (quick < 16 ? quick : 16);
	struct timespec ts;

	if (ms > SUP_PAUSE_MAX_MS)
		ms = SUP_PAUSE_MAX_MS;
	ts.tv_sec = (time_t)(ms / 1000);
	ts.tv_nsec = (long)(ms % 1000) * 1000000;
	nanosleep(&ts, NULL);
}

/* After the daemon ended with @status: start the next one, or decide to
 * stop.  Returns 0, or -errno when the supervisor must give up. */
static int sup_child_ended(struct sup *s, int status)
{
	bool quick = fs_now_ms() - s->child_started_ms < SUP_QUICK_MS;
	char how[80];

	sup_describe(s->child, status, how, sizeof(how));
	if (s->child_ready_fd >= 0) {
		close(s->child_ready_fd);
		s->child_ready_fd = -1;
	}
	s->child = 0;
	if (s->stopping)
		return 0;
	if (!s->served_once) {
		fs_log(LOG_ERR, "daemon %s before it served", how);
		return -ECHILD;
	}
	if (!sup_mount_alive(s)) {
		s->stopping = true;
		s->exit_reason = "unmounted";
		return 0;
	}

	if (s->restart_asked) {
		fs_log(LOG_INFO, "daemon %s; starting it again as asked", how);
		s->quick_deaths = 0;
	} else {
		s->quick_deaths = quick ? s->quick_deaths + 1 : 0;
		if (s->quick_deaths > SUP_MAX_QUICK) {
			fs_log(LOG_ERR, "daemon %s, %u times in a row just "
			       "after starting; giving up and unmounting %s",
			       how, s->quick_deaths, s->mountpoint);
			return -ECHILD;
		}
		fs_log(LOG_WARNING, "daemon %s; starting it again, %s stays "
		       "mounted", how, s->mountpoint);
		sup_pause(s->quick_deaths);
	}
	s->restart_asked = false;
	return sup_start_child(s);
}

static int sup_reap(struct sup *s)
{
	int status, r = 0;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		if (pid == s->child)
			r = sup_child_ended(s, status);
	}
	return r;
}

static int sup_on_signal(struct sup *s)
{
	struct signalfd_siginfo si;

	if (read(s->sig_fd, &si, sizeof(si)) != sizeof(si))
		return 0;
	switch (si.ssi_signo) {
	case SIGCHLD:
		return sup_reap(s);
	case SIGHUP:
		fs_log(LOG_INFO, "restarting the daemon (SIGHUP)");
		s->restart_asked = true;
		if (s->child > 0)
			kill(s->child, SIGTERM);
		return 0;
	default:
		if (!s->stopping)
			s->exit_reason = si.ssi_signo == SIGINT ?
						 "signal SIGINT" :
						 "signal SIGTERM";
		s->stopping = true;
		if (s->child > 0)
			kill(s->child, SIGTERM);
		return 0;
	}
}

/* The daemon's ready byte (0: serving) or the end of its pipe. */
static void sup_on_ready(struct sup *s)
{
	unsigned char b = 1;

	if (read(s->child_ready_fd, &b, 1) == 1 && b == 0) {
		/* The first start is told by the supervisor's start line. */
		if (s->served_once)
			fs_log(LOG_INFO, "daemon %ld serves %s", (long)s->child,
			       s->mountpoint);
		s->child_served = true;
		s->served_once = true;
	}
	close(s->child_ready_fd);
	s->child_ready_fd = -1;
}

/* Polls until the supervisor is to stop, or, with @until_ready, until
 * the first daemon serves (1) or has failed (-errno). */
static int sup_loop(struct sup *s, bool until_ready)
{
	struct pollfd p[3];
	int n, r;

	while (!s->stopping || s->child > 0) {
		p[0] = (struct pollfd){ .fd = s->sig_fd, .events = POLLIN };
		p[1] = (struct pollfd){ .fd = s->fuse_fd, .events = 0 };
		p[2] = (struct pollfd){ .fd = s->child_ready_fd,
					.events = POLLIN };
		n = s->child_ready_fd >= 0 ? 3 : 2;
		if (poll(p, (nfds_t)n, -1) < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 3 && p[2].revents)
			sup_on_ready(s);
		if (until_ready && s->child_served)
			return 1;
		if (p[1].revents && !s->stopping) {
			/* Unmounted: the daemon reads ENODEV and exits. */
			s->stopping = true;
			s->exit_reason = "unmounted";
		}
		if (p[0].revents) {
			r = sup_on_signal(s);
			if (r < 0)
				return r;
		}
		if (until_ready && s->child == 0)
			return -ECHILD;
		if (until_ready && s->stopping)
			return -ECANCELED;
	}
	return 0;
}

static int sup_signals(struct sup *s)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
		return -errno;
	s->sig_fd = signalfd(-1, &set, SFD_CLOEXEC);
	return s->sig_fd < 0 ? -errno : 0;
}

/* Mounts and reads FUSE_INIT: all that can fail on the user's input
 * happens before the supervisor detaches. */
static int sup_mount(struct sup *s)
{
	ssize_t n;
	int r;

	n = readlink("/proc/self/exe", s->exe, sizeof(s->exe) - 1);
	if (n < 0) {
		fs_log(LOG_ERR, "cannot find the imgtool binary: %s",
		       fs_strerror(errno));
		return -errno;
	}
	s->exe[n] = '\0';
	r = fs_session_create(s->opts, NULL, &s->se);
	if (r < 0)
		return r;
	if (fuse_session_mount(s->se, s->mountpoint) != 0) {
		fs_log(LOG_ERR, "cannot mount %s on %s", s->opts->source,
		       s->mountpoint);
		fuse_session_destroy(s->se);
		s->se = NULL;
		return -EIO;
	}
	s->fuse_fd = fuse_session_fd(s->se);
	return sup_read_init(s);
}

/* Starts the first daemon and waits until it serves. */
static int sup_first_child(struct sup *s)
{
	int r;

	r = sup_start_child(s);
	if (r < 0) {
		fs_log(LOG_ERR, "cannot start the daemon: %s", fs_strerror(-r));
		return r;
	}
	r = sup_loop(s, true);
	/* A daemon that died has been logged by sup_child_ended(). */
	if (r < 0 && r != -ECHILD)
		fs_log(LOG_ERR, "the daemon for %s did not start: %s",
		       s->mountpoint, fs_strerror(-r));
	return r < 0 ? r : 0;
}

static void sup_stop_child(struct sup *s)
{
	int status;

	if (s->child <= 0)
		return;
	kill(s->child, SIGTERM);
	waitpid(s->child, &status, 0);
	s->child = 0;
}

static int sup_serve(struct sup *s)
{
	char *pidfile = NULL;
	int ready_fd = -1, r;

	if (!s->opts->foreground) {
		r = fs_detach_begin(&ready_fd);
		if (r < 0)
			return r;
	}
	r = sup_signals(s);
	if (r >= 0)
		r = sup_first_child(s);
	if (r >= 0 && s->opts->pidfile)
		r = fs_pidfile_write(s->opts->pidfile, &pidfile);
	if (r < 0) {
		fs_detach_done(ready_fd, 1);
		goto out;
	}
	if (!s->opts->foreground) {
		fs_log_use_syslog();
		fs_detach_quiet();
	}
	fs_log(LOG_INFO, "imgfs supervisor serving %s on %s: restarts the "
	       "daemon when it dies, SIGHUP restarts it", s->opts->source,
	       s->mountpoint);
	fs_detach_done(ready_fd, 0);

	r = sup_loop(s, false);
	fs_log(r < 0 ? LOG_ERR : LOG_INFO, "supervisor exiting: %s",
	       r < 0 ? "the daemon cannot be kept running" :
		       s->exit_reason ? s->exit_reason : "stopped");

out:
	sup_stop_child(s);
	fs_pidfile_remove(pidfile);
	return r;
}

int fs_supervise_run(const struct fs_options *opts)
{
	struct sup s = {
		.opts = opts,
		.fuse_fd = -1,
		.init_fd = -1,
		.sig_fd = -1,
		.child_ready_fd = -1,
	};
	int r;

	r = fs_mountpoint_check(opts->mountpoint, opts->nonempty,
				&s.mountpoint);
	if (r < 0)
		return r;
	r = sup_mount(&s);
	if (r >= 0)
		r = sup_serve(&s);

	if (s.se) {
		fuse_session_unmount(s.se);
		fuse_session_destroy(s.se);
	}
	if (s.init_fd >= 0)
		close(s.init_fd);
	if (s.sig_fd >= 0)
		close(s.sig_fd);
	if (s.child_ready_fd >= 0)
		close(s.child_ready_fd);
	free(s.mountpoint);
	fs_log_close();
	return r;
}
