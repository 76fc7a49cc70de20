/* SPDX-License-Identifier: MIT */
/*
 * mountpoint.c - checking a mountpoint before mounting on it.
 *
 * The kernel lets a FUSE mount stack on top of another mount or hide the
 * files of a directory, and a runner that mounts at boot would then serve
 * the wrong tree without a word.  So each case a user can get wrong is
 * refused here with its own message before anything is mounted.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>

#include "fs/fs_internal.h"
#include "fs/log.h"

#ifndef STATX_ATTR_MOUNT_ROOT
#define STATX_ATTR_MOUNT_ROOT 0x00002000
#endif

/* 1 when @path is the root of a mount, 0 when not, or -errno.  statx()
 * knows for sure since Linux 5.8; comparing with the parent's device
 * is the fallback, which misses a bind mount from the same file system. */
static int mountpoint_is_mount(const char *path, const struct stat *st)
{
	struct statx stx;
	struct stat parent;
	char *up;
	int r;

	if (statx(AT_FDCWD, path, AT_NO_AUTOMOUNT, STATX_BASIC_STATS,
		  &stx) == 0 &&
	    (stx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT))
		return (stx.stx_attributes & STATX_ATTR_MOUNT_ROOT) != 0;

	if (asprintf(&up, "%s/..", path) < 0)
		return -ENOMEM;
	r = stat(up, &parent) < 0 ? -errno : 0;
	free(up);
	if (r < 0)
		return r;
	return parent.st_dev != st->st_dev || parent.st_ino == st->st_ino;
}

/* 1 when the directory @path holds any entry, 0 when empty, or -errno. */
static int mountpoint_has_entries(const char *path)
{
	struct dirent *d;
	DIR *dir;
	int r = 0;

	dir = opendir(path);
	if (!dir)
		return -errno;
	while ((d = readdir(dir))) {
		if (strcmp(d->d_name, ".") != 0 &&
		    strcmp(d->d_name, "..") != 0) {
			r = 1;
			break;
		}
	}
	closedir(dir);
	return r;
}

/* Logs why @path cannot be used, in the words a user needs. */
static void mountpoint_explain(const char *path, int r)
{
	switch (r) {
	case -ENOENT:
		fs_log(LOG_ERR, "cannot mount on %s: it does not exist", path);
		break;
	case -ENOTDIR:
		fs_log(LOG_ERR, "cannot mount on %s: not a directory", path);
		break;
	case -ENOTCONN:
		fs_log(LOG_ERR, "cannot mount on %s: a FUSE mount whose daemon "
		       "is gone is still there (umount %s first)", path, path);
		break;
	case -EBUSY:
		fs_log(LOG_ERR, "cannot mount on %s: mountpoint is busy, "
		       "something is already mounted there", path);
		break;
	case -ENOTEMPTY:
		fs_log(LOG_ERR, "cannot mount on %s: mountpoint is in use, it "
		       "holds files the mount would hide (-o nonempty mounts "
		       "anyway)", path);
		break;
	default:
		fs_log(LOG_ERR, "cannot use mountpoint %s: %s", path,
		       fs_strerror(-r));
	}
}

int fs_mountpoint_check(const char *path, bool nonempty, char **ret_path)
{
	struct statfs sf;
	struct stat st;
	int r;

	r = stat(path, &st) < 0 ? -errno : 0;
	if (r >= 0 && !S_ISDIR(st.st_mode))
		r = -ENOTDIR;
	if (r >= 0) {
		r = mountpoint_is_mount(path, &st);
		/* stat() of a dead FUSE mount may still succeed from the
		 * kernel's attribute cache; statfs() always asks. */
		if (r > 0)
			r = statfs(path, &sf) < 0 && errno == ENOTCONN ?
				    -ENOTCONN : -EBUSY;
	}
	if (r >= 0 && !nonempty) {
		r = mountpoint_has_entries(path);
		if (r > 0)
			r = -ENOTEMPTY;
	}
	if (r < 0)
		goto err;

	/* libfuse keeps the path for the unmount, which runs after the
	 * daemon has changed to "/". */
	*ret_path = realpath(path, NULL);
	if (!*ret_path) {
		r = -errno;
		goto err;
	}
	return 0;

err:
	mountpoint_explain(path, r);
	return r;
}

/* Undoes mountinfo's octal escapes (\040 for a space) in place. */
static void mountinfo_unescape(char *s)
{
	char *out = s;

	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' &&
		    s[2] >= '0' && s[2] <= '7' && s[3] >= '0' && s[3] <= '7') {
			*out++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 +
					(s[3] - '0'));
			s += 3;
		} else {
			*out++ = *s;
		}
	}
	*out = '\0';
}

int fs_mountpoint_dev(const char *path, unsigned int *ret_major,
		      unsigned int *ret_minor)
{
	unsigned int major, minor;
	char *line = NULL, *at, *sep;
	size_t cap = 0;
	int r = -ENOENT;
	FILE *f;

	f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return -errno;
	/* "ID PARENT MAJOR:MINOR ROOT MOUNTPOINT OPTIONS ... - TYPE ...";
	 * the last match is the mount on top. */
	while (getline(&line, &cap, f) > 0) {
		at = line;
		for (int field = 0; field < 2 && at; field++) {
			at = strchr(at, ' ');
			if (at)
				at++;
		}
		if (!at || sscanf(at, "%u:%u", &major, &minor) != 2)
			continue;
		at = strchr(at, ' '); /* ROOT */
		at = at ? strchr(at + 1, ' ') : NULL; /* MOUNTPOINT */
		if (!at)
			continue;
		at++;
		sep = strchr(at, ' ');
		if (!sep || !strstr(sep, " - fuse"))
			continue;
		*sep = '\0';
		mountinfo_unescape(at);
		if (strcmp(at, path) == 0) {
			*ret_major = major;
			*ret_minor = minor;
			r = 0;
		}
	}
	free(line);
	fclose(f);
	return r;
}
