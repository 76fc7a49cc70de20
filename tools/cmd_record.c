/* SPDX-License-Identifier: MIT */
/*
 * cmd_record.c - imgtool record: run a program from the image and keep,
 * in the image, which chunks it read first (the startup profile).
 *
 * The image is mounted by a daemon of our own (imgtool mount -f, with
 * record=FILE and no prefetch), the program runs as a container runtime
 * would start it (a writable overlay over the mount, /proc and /dev
 * mounted, chroot, in a mount namespace of its own so that nothing
 * outlives it), then the mount goes away, the daemon writes the chunks in
 * the order they were first read, and the profile is attached to the
 * image's config.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "builder/builder.h"
#include "index/image.h"
#include "imgtool.h"

/* How long the mount may take to come up. */
#define RECORD_MOUNT_WAIT_MS 60000

struct record_dirs {
	char root[64]; /* the scratch directory */
	char mnt[96], upper[96], work[96], merged[96], cache[96];
	char profile[96];
};

static int record_dirs_make(struct record_dirs *d)
{
	snprintf(d->root, sizeof(d->root), "/var/tmp/imgfs-record.XXXXXX");
	if (!mkdtemp(d->root))
		return -errno;
	snprintf(d->mnt, sizeof(d->mnt), "%s/mnt", d->root);
	snprintf(d->upper, sizeof(d->upper), "%s/upper", d->root);
	snprintf(d->work, sizeof(d->work), "%s/work", d->root);
	snprintf(d->merged, sizeof(d->merged), "%s/merged", d->root);
	snprintf(d->cache, sizeof(d->cache), "%s/cache", d->root);
	snprintf(d->profile, sizeof(d->profile), "%s/profile.txt", d->root);
	if (mkdir(d->mnt, 0755) < 0 || mkdir(d->upper, 0755) < 0 ||
	    mkdir(d->work, 0755) < 0 || mkdir(d->merged, 0755) < 0)
		return -errno;
	return 0;
}

/* The signal (SIGINT, SIGTERM, SIGHUP) that asked record to stop; the
 * command gets it too, then record unmounts, cleans up and exits. */
static volatile sig_atomic_t record_signal;

static void record_on_signal(int sig)
{
	record_signal = sig;
}

static void record_catch_signals(void)
{
	struct sigaction sa = { .sa_handler = record_on_signal };

	/* No SA_RESTART: waits end early and look at record_signal. */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
}

/* Starts the daemon in the foreground of a child; returns its pid once
 * the mount is up, or a negative errno. */
static pid_t record_mount(const struct record_dirs *d, const char *src,
			  const char *user_opts)
{
	struct stat root_st, st;
	char *opts;
	pid_t pid;
	int status;

	if (asprintf(&opts, "cache=%s,record=%s,prefetch=off,fill=off%s%s",
		     d->cache, d->profile, user_opts ? "," : "",
		     user_opts ? user_opts : "") < 0)
		return -ENOMEM;
	pid = fork();
	if (pid == 0) {
		/* Out of the terminal's process group: a Ctrl-C is for the
		 * command, and record ends the daemon itself. */
		setpgid(0, 0);
		execl("/proc/self/exe", "imgtool", "mount", "-f", "-o", opts,
		      src, d->mnt, (char *)NULL);
		_exit(127);
	}
	free(opts);
	if (pid < 0 || stat(d->root, &root_st) < 0)
		return -errno;
	for (int ms = 0; ms < RECORD_MOUNT_WAIT_MS && !record_signal;
	     ms += 50) {
		if (stat(d->mnt, &st) == 0 && st.st_dev != root_st.st_dev)
			return pid;
		if (waitpid(pid, &status, WNOHANG) == pid)
			return -EIO;
		usleep(50000);
	}
	kill(pid, SIGTERM);
	waitpid(pid, &status, 0);
	return record_signal ? -EINTR : -ETIMEDOUT;
}

/* In the child: the container's root, then the program.  Never returns. */
static void record_exec(const struct record_dirs *d, char **cmd)
{
	char opts[512], path[160];

	if (unshare(CLONE_NEWNS) < 0 ||
	    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) {
		imgtool_error("cannot make a mount namespace: %s",
			      strerror(errno));
		_exit(126);
	}
	snprintf(opts, sizeof(opts), "lowerdir=%s,upperdir=%s,workdir=%s",
		 d->mnt, d->upper, d->work);
	if (mount("overlay", d->merged, "overlay", 0, opts) < 0) {
		imgtool_error("cannot mount an overlay on the image: %s",
			      strerror(errno));
		_exit(126);
	}
	snprintf(path, sizeof(path), "%s/proc", d->merged);
	mkdir(path, 0555);
	if (mount("proc", path, "proc", 0, NULL) < 0)
		imgtool_error("warning: no /proc in the container: %s",
			      strerror(errno));
	snprintf(path, sizeof(path), "%s/dev", d->merged);
	mkdir(path, 0755);
	if (mount("/dev", path, NULL, MS_BIND | MS_REC, NULL) < 0)
		imgtool_error("warning: no /dev in the container: %s",
			      strerror(errno));
	if (chroot(d->merged) < 0 || chdir("/") < 0) {
		imgtool_error("cannot chroot into the image: %s",
			      strerror(errno));
		_exit(126);
	}
	setenv("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:"
		       "/sbin:/bin", 1);
	execvp(cmd[0], cmd);
	imgtool_error("cannot run '%s' in the image: %s", cmd[0],
		      strerror(errno));
	_exit(127);
}

/* Runs @cmd in the container; returns its wait status. */
static int record_run(const struct record_dirs *d, char **cmd)
{
	pid_t pid = fork();
	int status;

	bool forwarded = false;

	if (pid == 0)
		record_exec(d, cmd);
	if (pid < 0)
		return -errno;
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR)
			return -errno;
		/* Signalled: pass it on once and wait for the command. */
		if (record_signal && !forwarded) {
			kill(pid, record_signal);
			forwarded = true;
		}
	}
	return status;
}

/* Unmounts and waits for the daemon, which writes the profile. */
static int record_unmount(const struct record_dirs *d, pid_t daemon)
{
	int status;

	if (umount2(d->mnt, 0) < 0 && umount2(d->mnt, MNT_DETACH) < 0)
		return -errno;
	while (waitpid(daemon, &status, 0) < 0)
		if (errno != EINTR)
			return -errno;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -EIO;
}

/* Reads the daemon's "LAYER CHUNK" lines. */
static int record_load(const char *path,
		       struct index_profile_entry **ret_entries,
		       uint32_t *ret_n)
{
	struct index_profile_entry *e = NULL, *p;
	size_t n = 0, cap = 0;
	uint32_t layer, chunk;
	FILE *f = fopen(path, "re");

	if (!f)
		return -errno;
	while (fscanf(f, "%" SCNu32 " %" SCNu32, &layer, &chunk) == 2) {
		if (n == cap) {
			cap = cap ? cap * 2 : 1024;
			p = realloc(e, cap * sizeof(*p));
			if (!p) {
				free(e);
				fclose(f);
				return -ENOMEM;
			}
			e = p;
		}
		e[n++] = (struct index_profile_entry){ layer, chunk };
	}
	fclose(f);
	*ret_entries = e;
	*ret_n = (uint32_t)n;
	return 0;
}

static int record_usage(void)
{
	imgtool_error("usage: imgtool record [-o MOUNT_OPTIONS] oci:DIR[:TAG] "
		      "-- COMMAND [ARGS...]");
	return 2;
}

/* Attaches what was recorded; returns the exit status. */
static int record_attach(const char *src, const struct record_dirs *d)
{
	struct index_profile_entry *e = NULL;
	char digest[72], err[512] = "";
	uint32_t n = 0;
	int r;

	r = record_load(d->profile, &e, &n);
	if (r < 0) {
		imgtool_error("cannot read the recorded profile: %s",
			      strerror(-r));
		return 1;
	}
	r = builder_profile_attach(src, e, n, digest, err, sizeof(err));
	free(e);
	if (r < 0) {
		imgtool_error("cannot attach the profile to %s: %s", src,
			      err[0] ? err : strerror(-r));
		return 1;
	}
	printf("recorded %" PRIu32 " chunks; profile attached to %s "
	       "(manifest %s)\n", n, src, digest);
	return 0;
}

int imgtool_record(int argc, char **argv)
{
	const char *src, *user_opts = NULL;
	struct record_dirs d;
	int c, status, r, ret = 1;
	pid_t daemon;

	while ((c = getopt(argc, argv, "+o:")) != -1) {
		if (c != 'o')
			return record_usage();
		user_opts = optarg;
	}
	if (optind < argc - 1 && strcmp(argv[optind + 1], "--") == 0) {
		src = argv[optind];
		optind += 2;
	} else if (optind < argc) {
		src = argv[optind++];
	} else {
		return record_usage();
	}
	if (optind >= argc)
		return record_usage();
	if (strncmp(src, "oci:", 4) != 0) {
		/* The profile goes into the image's config: a layout this
		 * tool can rewrite. */
		imgtool_error("record needs a local layout (oci:DIR[:TAG]) to "
			      "attach the profile to, not '%s'", src);
		return 2;
	}

	r = record_dirs_make(&d);
	if (r < 0) {
		imgtool_error("cannot make a scratch directory: %s",
			      strerror(-r));
		return 1;
	}
	record_catch_signals();
	daemon = record_mount(&d, src, user_opts);
	if (daemon < 0) {
		imgtool_error("cannot mount %s: %s", src, strerror(-daemon));
		if (record_signal)
			ret = 128 + (int)record_signal;
		goto out;
	}
	status = record_run(&d, argv + optind);
	r = record_unmount(&d, daemon);
	if (r < 0) {
		imgtool_error("the daemon did not exit cleanly: %s",
			      strerror(-r));
	} else if (record_signal) {
		imgtool_error("stopped by signal %d (%s): no profile attached",
			      (int)record_signal,
			      strsignal((int)record_signal));
		ret = 128 + (int)record_signal;
	} else if (status < 0) {
		imgtool_error("cannot run '%s': %s; no profile attached",
			      argv[optind], strerror(-status));
	} else if (WIFSIGNALED(status)) {
		imgtool_error("'%s' was killed by signal %d (%s): no profile "
			      "attached", argv[optind], WTERMSIG(status),
			      strsignal(WTERMSIG(status)));
	} else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		imgtool_error("'%s' failed (exit status %d): no profile "
			      "attached", argv[optind], WEXITSTATUS(status));
	} else {
		ret = record_attach(src, &d);
	}
out:
	builder_remove_tree(d.root);
	return ret;
}
