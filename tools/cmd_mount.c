/* SPDX-License-Identifier: MIT */
/*
 * cmd_mount.c - imgtool mount and imgtool status.
 */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>

#include "fs/fs.h"
#include "imgtool.h"

/* A number option's value: digits only, at most @max. */
static int parse_uint(const char *opt, const char *val, unsigned long max,
		      unsigned int *ret)
{
	unsigned long v;
	char *end;

	errno = 0;
	v = strtoul(val, &end, 10);
	if (!isdigit((unsigned char)*val) || *end || errno || v > max) {
		imgtool_error("bad value in -o %s (a number up to %lu)", opt,
			      max);
		return -EINVAL;
	}
	*ret = (unsigned int)v;
	return 0;
}

/* A size option's value: a number with an optional K, M, G or T. */
static int parse_size(const char *opt, const char *val, uint64_t *ret)
{
	unsigned long long v;
	unsigned int shift = 0;
	char *end;

	errno = 0;
	v = strtoull(val, &end, 10);
	switch (*end) {
	case 'K': case 'k': shift = 10; end++; break;
	case 'M': case 'm': shift = 20; end++; break;
	case 'G': case 'g': shift = 30; end++; break;
	case 'T': case 't': shift = 40; end++; break;
	}
	if (!isdigit((unsigned char)*val) || *end || errno ||
	    v > (UINT64_MAX >> shift)) {
		imgtool_error("bad size in -o %s (e.g. 512M, 20G)", opt);
		return -EINVAL;
	}
	*ret = (uint64_t)v << shift;
	return 0;
}

/* An on/off option's value. */
static int parse_switch(const char *opt, const char *val,
			enum fs_switch *ret)
{
	if (strcmp(val, "on") == 0 || strcmp(val, "1") == 0) {
		*ret = FS_ON;
	} else if (strcmp(val, "off") == 0 || strcmp(val, "0") == 0) {
		*ret = FS_OFF;
	} else {
		imgtool_error("bad value in -o %s (on or off)", opt);
		return -EINVAL;
	}
	return 0;
}

static void mount_free_args(char **args)
{
	for (size_t i = 0; args && args[i]; i++)
		free(args[i]);
	free(args);
}

/* -o supervised=FUSE:INIT:READY: the descriptors a supervisor hands the
 * daemon it starts (fs/supervise.c); not for users. */
static int parse_supervised(struct fs_options *o, const char *val)
{
	if (sscanf(val, "%d:%d:%d", &o->fuse_fd, &o->fuse_init_fd,
		   &o->ready_fd) != 3 || o->fuse_fd < 0 ||
	    o->fuse_init_fd < 0 || o->ready_fd < 0) {
		imgtool_error("bad value in -o supervised (set by the "
			      "supervisor only)");
		return -EINVAL;
	}
	return 0;
}

/* The options of a daemon run as a service, or 1 when @opt is none. */
static int parse_service_opt(struct fs_options *o, char *opt)
{
	if (strncmp(opt, "pidfile=", 8) == 0)
		o->pidfile = opt + 8;
	else if (strncmp(opt, "metrics=", 8) == 0)
		o->metrics_file = opt + 8;
	else if (strncmp(opt, "metrics_interval=", 17) == 0)
		return parse_uint(opt, opt + 17, 86400,
				  &o->metrics_interval_s);
	else if (strcmp(opt, "nonempty") == 0)
		o->nonempty = 1;
	else if (strcmp(opt, "supervise") == 0)
		o->supervise = 1;
	else if (strncmp(opt, "supervised=", 11) == 0)
		return parse_supervised(o, opt + 11);
	else
		return 1;
	return 0;
}

/* Takes our own options out of a -o list; the rest goes to FUSE. */
static int parse_o(struct fs_options *o, char *list, char **fuse_opts)
{
	char *save = NULL;
	int r = 0;

	for (char *opt = strtok_r(list, ",", &save); opt && r >= 0;
	     opt = strtok_r(NULL, ",", &save)) {
		if (strncmp(opt, "cache=", 6) == 0) {
			o->cache_dir = opt + 6;
		} else if (strncmp(opt, "cache_max=", 10) == 0) {
			r = parse_size(opt, opt + 10, &o->cache_max);
		} else if (strncmp(opt, "threads=", 8) == 0) {
			r = parse_uint(opt, opt + 8, 256, &o->threads);
		} else if (strcmp(opt, "debug") == 0) {
			o->debug = 1;
		} else if (strncmp(opt, "authfile=", 9) == 0) {
			o->authfile = opt + 9;
		} else if (strncmp(opt, "deadline=", 9) == 0) {
			r = parse_uint(opt, opt + 9, 86400, &o->deadline_s);
		} else if (strncmp(opt, "stall=", 6) == 0) {
			r = parse_uint(opt, opt + 6, 86400, &o->stall_s);
		} else if (strncmp(opt, "prefetch=", 9) == 0) {
			r = parse_switch(opt, opt + 9, &o->prefetch);
		} else if (strncmp(opt, "readahead=", 10) == 0) {
			r = parse_switch(opt, opt + 10, &o->readahead);
		} else if (strncmp(opt, "fill=", 5) == 0) {
			r = parse_switch(opt, opt + 5, &o->fill);
		} else if (strncmp(opt, "fill_rate=", 10) == 0) {
			r = parse_uint(opt, opt + 10, 1000000, &o->fill_rate_mb);
		} else if (strncmp(opt, "prefetch_threads=", 17) == 0) {
			r = parse_uint(opt, opt + 17, 32, &o->prefetch_threads);
		} else if (strncmp(opt, "record=", 7) == 0) {
			o->record_file = opt + 7;
		} else if (strcmp(opt, "insecure") == 0) {
			o->insecure = 1;
		} else if (strcmp(opt, "http_debug") == 0) {
			o->http_debug = 1;
		} else if ((r = parse_service_opt(o, opt)) <= 0) {
			continue;
		} else {
			r = 0;
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
	return r;
}

/* A copy of @argv, for the supervisor to hand on; NULL-terminated. */
static char **mount_dup_args(int argc, char **argv)
{
	char **args = calloc((size_t)argc + 1, sizeof(*args));

	for (int i = 0; args && i < argc; i++) {
		args[i] = strdup(argv[i]);
		if (!args[i]) {
			mount_free_args(args);
			return NULL;
		}
	}
	return args;
}

/* Several SOURCE MOUNTPOINT pairs for one daemon: the sources and then
 * the mountpoints in one array, which the caller frees (o->sources). */
/* Two mounts on one mountpoint, or one inside another, would have the
 * daemon look itself up while it mounts: refused. */
static bool mount_nested(const char *a, const char *b)
{
	char *ra = realpath(a, NULL), *rb = realpath(b, NULL);
	size_t la = ra ? strlen(ra) : 0, lb = rb ? strlen(rb) : 0;
	bool nested = ra && rb &&
		      (strcmp(ra, rb) == 0 ||
		       (la < lb && strncmp(ra, rb, la) == 0 &&
			(rb[la] == '/' || la == 1)) ||
		       (lb < la && strncmp(rb, ra, lb) == 0 &&
			(ra[lb] == '/' || lb == 1)));

	free(ra);
	free(rb);
	return nested;
}

static int mount_pairs(struct fs_options *o, char **pos, int n)
{
	const char **a;

	for (int i = 0; i < n; i++)
		for (int j = i + 1; j < n; j++)
			if (mount_nested(pos[2 * i + 1], pos[2 * j + 1])) {
				imgtool_error("mountpoints '%s' and '%s' are "
					      "the same or nested",
					      pos[2 * i + 1], pos[2 * j + 1]);
				return 1;
			}
	a = calloc(2 * (size_t)n, sizeof(*a));
	if (!a) {
		imgtool_error("out of memory");
		return 1;
	}
	for (int i = 0; i < n; i++) {
		a[i] = pos[2 * i];
		a[n + i] = pos[2 * i + 1];
	}
	o->n_mounts = (unsigned int)n;
	o->sources = a;
	o->mountpoints = a + n;
	return 0;
}

static bool path_relative(const char *p)
{
	return p && p[0] != '/';
}

/*
 * A supervisor starts its daemons again from the root directory, with
 * the arguments as given: relative paths there would name other files.
 * Refused rather than guessed.
 */
static int mount_check_absolute(const struct fs_options *o, char **pos,
				int n)
{
	const char *bad = NULL;

	for (int i = 0; i < n && !bad; i++) {
		const char *p = pos[i];

		if (i % 2 == 0 && strncmp(p, "oci:", 4) == 0)
			p += 4;
		else if (i % 2 == 0)
			continue;
		if (path_relative(p))
			bad = pos[i];
	}
	if (!bad && path_relative(o->cache_dir))
		bad = o->cache_dir;
	if (!bad && path_relative(o->pidfile))
		bad = o->pidfile;
	if (!bad && path_relative(o->authfile))
		bad = o->authfile;
	if (!bad && path_relative(o->metrics_file))
		bad = o->metrics_file;
	if (!bad && path_relative(o->record_file))
		bad = o->record_file;
	if (bad) {
		imgtool_error("-o supervise needs absolute paths, not '%s'",
			      bad);
		return 2;
	}
	return 0;
}

int imgtool_mount(int argc, char **argv)
{
	struct fs_options o;
	char *fuse_opts = NULL;
	char **args, **pairs = NULL;
	int c, n, rc = 0;

	/* getopt() and strtok_r() change what they parse: they get a copy,
	 * so that the supervisor hands on the arguments as they were given
	 * and ps shows them so. */
	args = mount_dup_args(argc, argv);
	if (!args) {
		imgtool_error("out of memory");
		return 1;
	}
	fs_options_init(&o);
	o.argc = argc - 1;
	o.argv = argv + 1;

	while (rc == 0 && (c = getopt(argc, args, "fdo:")) != -1) {
		switch (c) {
		case 'f':
			o.foreground = 1;
			break;
		case 'd':
			o.debug = 1;
			break;
		case 'o':
			if (parse_o(&o, optarg, &fuse_opts) < 0)
				rc = 1;
			break;
		default:
			rc = 2;
		}
	}
	n = (argc - optind) / 2;
	if (rc == 0 && (argc - optind < 2 || (argc - optind) % 2)) {
		imgtool_error("usage: imgtool mount [-f] [-d] [-o OPTIONS] "
			      "SOURCE MOUNTPOINT [SOURCE MOUNTPOINT]...\n"
			      "  SOURCE: oci:DIR[:TAG], docker://HOST[:PORT]/REPO[:TAG|@DIGEST],\n"
			      "          http(s)://HOST/PATH[:TAG] (a served OCI layout)");
		rc = 2;
	}
	if (rc == 0 && n > 1) {
		rc = mount_pairs(&o, args + optind, n);
		pairs = (char **)o.sources;
	}
	if (rc == 0 && o.supervise)
		rc = mount_check_absolute(&o, args + optind, argc - optind);
	if (rc == 0) {
		o.source = args[optind];
		o.mountpoint = args[optind + 1];
		o.fuse_opts = fuse_opts;
		rc = fs_run(&o) < 0 ? 1 : 0;
	}

	free(pairs);
	free(fuse_opts);
	mount_free_args(args);
	return rc;
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
