/* SPDX-License-Identifier: MIT */
/*
 * pidfile.c - the -o pidfile=FILE of a daemon run by a service manager.
 *
 * The file is written to a temporary name and renamed, so a reader never
 * sees it half written, and removed at exit only while it still names
 * this process: a new daemon may already have taken the name over.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fs/fs_internal.h"
#include "fs/log.h"

/* @path made absolute, since the daemon changes to "/" after writing. */
static int pidfile_absolute(const char *path, char **ret_path)
{
	char cwd[PATH_MAX];

	if (path[0] == '/') {
		*ret_path = strdup(path);
		return *ret_path ? 0 : -ENOMEM;
	}
	if (!getcwd(cwd, sizeof(cwd)))
		return -errno;
	return asprintf(ret_path, "%s/%s", cwd, path) < 0 ? -ENOMEM : 0;
}

int fs_pidfile_write(const char *path, char **ret_path)
{
	char *abs = NULL, *tmp = NULL;
	int fd, r;

	r = pidfile_absolute(path, &abs);
	if (r >= 0 && asprintf(&tmp, "%s.%ld.tmp", abs, (long)getpid()) < 0)
		r = -ENOMEM;
	if (r < 0)
		goto err;

	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		r = -errno;
		goto err;
	}
	r = dprintf(fd, "%ld\n", (long)getpid()) < 0 ? -EIO : 0;
	if (close(fd) < 0 && r >= 0)
		r = -errno;
	if (r >= 0 && rename(tmp, abs) < 0)
		r = -errno;
	if (r < 0) {
		unlink(tmp);
		goto err;
	}
	free(tmp);
	*ret_path = abs;
	return 0;

err:
	fs_log(LOG_ERR, "cannot write pid file %s: %s", path, fs_strerror(-r));
	free(tmp);
	free(abs);
	return r;
}

void fs_pidfile_remove(char *path)
{
	char buf[32] = "";
	FILE *f;

	if (!path)
		return;
	f = fopen(path, "re");
	if (f) {
		if (fgets(buf, sizeof(buf), f) && atol(buf) == (long)getpid())
			unlink(path);
		fclose(f);
	}
	free(path);
}
