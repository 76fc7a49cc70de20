/* SPDX-License-Identifier: MIT */
/*
 * detach.c - going into the background only once the mount serves.
 *
 * fuse_daemonize() lets the parent exit as soon as the child has forked,
 * before the child has written its pid file or started its threads, so a
 * service manager (systemd's Type=forking) or mount(8) would go on while
 * the daemon may still fail.  Here the parent waits on a pipe for one
 * status byte that the child sends when it serves, and exits with it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "fs/fs_internal.h"
#include "fs/log.h"

/* The parent: waits for the child's status byte and exits with it; a
 * child that dies first (end of file) is a failure too. */
__attribute__((noreturn))
static void detach_parent_wait(int fd)
{
	unsigned char status = 1;
	ssize_t n;

	do
		n = read(fd, &status, 1);
	while (n < 0 && errno == EINTR);
	_exit(n == 1 ? status : 1);
}

int fs_fork_pipe(int ret_fds[2], pid_t *ret_pid)
{
	pid_t pid;
	int r;

	if (pipe2(ret_fds, O_CLOEXEC) < 0)
		return -errno;
	/* What stdio holds would be written twice. */
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		r = -errno;
		close(ret_fds[0]);
		close(ret_fds[1]);
		return r;
	}
	*ret_pid = pid;
	return 0;
}

int fs_detach_begin(int *ret_ready_fd)
{
	int p[2], r;
	pid_t pid;

	r = fs_fork_pipe(p, &pid);
	if (r < 0)
		return r;
	if (pid > 0) {
		close(p[1]);
		detach_parent_wait(p[0]);
	}

	close(p[0]);
	/* A session of its own: the terminal's hangup and job control
	 * signals no longer reach the daemon. */
	setsid();
	*ret_ready_fd = p[1];
	return 0;
}

void fs_detach_quiet(void)
{
	int null_fd;

	null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (null_fd >= 0) {
		dup2(null_fd, STDIN_FILENO);
		dup2(null_fd, STDOUT_FILENO);
		dup2(null_fd, STDERR_FILENO);
		close(null_fd);
	}
	if (chdir("/") < 0)
		fs_log(LOG_WARNING, "cannot change to /: %s",
		       fs_strerror(errno));
}

void fs_detach_done(int ready_fd, int status)
{
	unsigned char b = status ? 1 : 0;

	if (ready_fd < 0)
		return;
	if (write(ready_fd, &b, 1) != 1)
		fs_log(LOG_WARNING, "cannot tell the parent that the mount "
		       "is ready: %s", fs_strerror(errno));
	close(ready_fd);
}
