/* SPDX-License-Identifier: MIT */
/*
 * fs.h - the FUSE daemon that serves an image's merged tree read-only,
 * fetching each chunk from the layer blobs on first use.
 */
#ifndef IMGFS_FS_H
#define IMGFS_FS_H

#include <stdint.h>

/* The root directory answers getxattr of this name (it is not listed by
 * listxattr) with the daemon's counters, one "key value" per line. */
#define FS_STATS_XATTR "user.imgfs.stats"

#define FS_DEFAULT_CACHE_DIR "/var/cache/imgfs"

/* A switch that may be left to the daemon's judgement. */
enum fs_switch { FS_DEFAULT, FS_ON, FS_OFF };

struct fs_options {
	const char *source; /* "oci:DIR[:TAG]", "docker://...", "http(s)://..." */
	const char *mountpoint;
	/* One daemon for several mounts: sources[i] on mountpoints[i], all
	 * with these options (source and mountpoint are then ignored); 0:
	 * just the one.  Borrowed. */
	unsigned int n_mounts;
	const char *const *sources;
	const char *const *mountpoints;
	const char *cache_dir; /* NULL: FS_DEFAULT_CACHE_DIR */
	uint64_t cache_max; /* bytes the cache may hold; 0: no cap */
	const char *fuse_opts; /* comma-separated options for FUSE, or NULL */
	int foreground; /* stay attached, log to stderr */
	int debug; /* log each request at debug level */
	unsigned int threads; /* FUSE worker threads, 0: default */
	/* Remote sources only: */
	const char *authfile; /* docker-style config.json, or NULL */
	unsigned int deadline_s; /* a chunk read fails (EIO) after; 0: 60 */
	unsigned int stall_s; /* no byte this long: retry; 0: 10 */
	int insecure; /* docker://: plain http to a non-loopback host */
	int http_debug; /* log every HTTP exchange (libcurl verbose) */
	/* Fetching ahead: */
	enum fs_switch prefetch; /* the profile's chunks; default on */
	enum fs_switch fill; /* all the rest; default on for remote */
	enum fs_switch readahead; /* after a program's miss; default on */
	unsigned int fill_rate_mb; /* cap on the fill, MB/s; 0: none */
	unsigned int prefetch_threads; /* 0: 8 */
	const char *record_file; /* write the chunks programs read, or NULL */
	/* Running as a service: */
	const char *pidfile; /* written once serving, removed at exit */
	const char *metrics_file; /* Prometheus text, rewritten, or NULL */
	unsigned int metrics_interval_s; /* between rewrites; 0: 15 */
	int nonempty; /* mount over a directory that holds files */
	int supervise; /* a supervisor keeps the mount across restarts */
	/* Set by the supervisor for the daemon it starts (fs/supervise.c):
	 * the mounted /dev/fuse descriptor and a memfd holding the
	 * FUSE_INIT request the kernel sent; -1 otherwise. */
	int fuse_fd;
	int fuse_init_fd;
	int ready_fd; /* a pipe: one byte 0 once serving; -1: none */
	/* The arguments of `imgtool mount` after the verb, which the
	 * supervisor gives each daemon it starts; borrowed. */
	int argc;
	char *const *argv;
};

/*
 * Opens the image, mounts it, and serves until it is unmounted.  Without
 * foreground it returns in the parent once the mount is ready (0), and the
 * detached child serves.  Errors before the mount (bad image, mountpoint)
 * are printed to stderr and returned as a negative errno.
 */
int fs_run(const struct fs_options *opts);

/* Sets the fields of @opts that are not zero by default. */
void fs_options_init(struct fs_options *opts);

#endif
