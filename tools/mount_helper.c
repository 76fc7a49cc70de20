/* SPDX-License-Identifier: MIT */
/*
 * mount_helper.c - `imgfs`, what mount(8) runs for the type fuse.imgfs.
 *
 * mount(8) hands a "fuse.TYPE" mount to /sbin/mount.fuse3 (Debian's fuse3
 * links /sbin/mount.fuse to it), which drops the options only fstab
 * knows (auto, noauto, nofail, _netdev, x-*, ...), adds dev,suid for
 * root, and runs "TYPE SOURCE MOUNTPOINT -o OPTIONS" through /bin/sh with
 * the default PATH.  So this helper is installed as `imgfs` in bindir and
 * turns that command line into `imgtool mount -o OPTIONS SOURCE
 * MOUNTPOINT`, running the imgtool installed next to it.  The daemon
 * detaches once the mount serves, which is when mount(8) should return.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int helper_usage(void)
{
	fputs("usage: imgfs SOURCE MOUNTPOINT [-o OPTIONS]\n"
	      "  (run by mount -t fuse.imgfs; see imgtool mount)\n", stderr);
	return 2;
}

/* The imgtool next to this binary: @ret gets DIR/imgtool. */
static int helper_imgtool(char *ret, size_t size)
{
	char self[PATH_MAX];
	ssize_t n;
	char *slash;

	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n < 0)
		return -errno;
	self[n] = '\0';
	slash = strrchr(self, '/');
	if (!slash)
		return -ENOENT;
	*slash = '\0';
	if ((size_t)snprintf(ret, size, "%s/imgtool", self) >= size)
		return -ENAMETOOLONG;
	return 0;
}

int main(int argc, char **argv)
{
	char imgtool[PATH_MAX];
	const char *opts = NULL;
	char *pos[2];
	int n_pos = 0, r;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-o") == 0 && i + 1 < argc)
			opts = argv[++i];
		else if (argv[i][0] == '-' || n_pos == 2)
			return helper_usage();
		else
			pos[n_pos++] = argv[i];
	}
	if (n_pos != 2)
		return helper_usage();

	r = helper_imgtool(imgtool, sizeof(imgtool));
	if (r < 0) {
		fprintf(stderr, "imgfs: cannot find imgtool: %s\n",
			strerror(-r));
		return 1;
	}
	if (opts)
		execl(imgtool, "imgtool", "mount", "-o", opts, pos[0], pos[1],
		      (char *)NULL);
	else
		execl(imgtool, "imgtool", "mount", pos[0], pos[1],
		      (char *)NULL);
	fprintf(stderr, "imgfs: cannot run %s: %s\n", imgtool, strerror(errno));
	return 1;
}
