/* SPDX-License-Identifier: MIT */
/*
 * cmd_mount.c - imgtool mount and imgtool status.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>

#include "fs/fs.h"
#include "imgtool.h"

/* Takes our own options out of a -o list; the rest goes to FUSE. */
static int parse_o(struct fs_options *o, char *list, char **fuse_opts)
{
	char *save = NULL;

	for (char *opt = strtok_r(list, ",", &save); opt;
	     opt = strtok_r(NULL, ",", &save)) {
		if (strncmp(opt, "cache=", 6) == 0) {
			o->cache_dir = opt + 6;
		} else if (strncmp(opt, "threads=", 8) == 0) {
			o->threads = (unsigned int)atoi(opt + 8);
		} else if (strcmp(opt, "debug") == 0) {
			o->debug = 1;
		} else if (strncmp(opt, "authfile=", 9) == 0) {
			o->authfile = opt + 9;
		} else if (strncmp(opt, "deadline=", 9) == 0) {
			o->deadline_s = (unsigned int)atoi(opt + 9);
		} else if (strcmp(opt, "insecure") == 0) {
			o->insecure = 1;
		} else if (strcmp(opt, "http_debug") == 0) {
			o->http_debug = 1;
		} else {
			size_t have = *fuse_opts ? strlen(*fuse_opts) : 0;
			char *p = realloc(*fuse_opts, have + strlen(opt) + 2);

			if (!p)
				return -ENOMEM;
			if (have)
				p[have++] = ',';
			strcpy(p + have, opt);
			*fuse_opts = p;
		}
	}
	return 0;
}

int imgtool_mount(int argc, char **argv)
{
	struct fs_options o = { 0 };
	char *fuse_opts = NULL;
	int c, r;

	while ((c = getopt(argc, argv, "fdo:")) != -1) {
		switch (c) {
		case 'f':
			o.foreground = 1;
			break;
		case 'd':
			o.debug = 1;
			break;
		case 'o':
			if (parse_o(&o, optarg, &fuse_opts) < 0)
				return 1;
			break;
		default:
			return 2;
		}
	}
	if (argc - optind != 2) {
		imgtool_error("usage: imgtool mount [-f] [-d] [-o OPTIONS] "
			      "SOURCE MOUNTPOINT\n"
			      "  SOURCE: oci:DIR[:TAG], docker://HOST[:PORT]/REPO[:TAG|@DIGEST],\n"
			      "          http(s)://HOST/PATH[:TAG] (a served OCI layout)");
		return 2;
	}
	o.source = argv[optind];
	o.mountpoint = argv[optind + 1];
	o.fuse_opts = fuse_opts;
	r = fs_run(&o);
	free(fuse_opts);
	return r < 0 ? 1 : 0;
}

int imgtool_status(int argc, char **argv)
{
	char buf[8192];
	ssize_t n;

	if (argc != 2) {
		imgtool_error("usage: imgtool status MOUNTPOINT");
		return 2;
	}
	n = getxattr(argv[1], FS_STATS_XATTR, buf, sizeof(buf) - 1);
	if (n < 0) {
		imgtool_error("cannot read counters of '%s': %s%s", argv[1],
			      strerror(errno),
			      errno == ENODATA || errno == ENOTSUP ?
				      " (not an imgfs mount?)" :
				      "");
		return 1;
	}
	buf[n] = '\0';
	fputs(buf, stdout);
	return 0;
}
