/* SPDX-License-Identifier: MIT */
/*
 * replay.c - runs a harness over files and directories of inputs without
 * libFuzzer, the way the normal (and the sanitized) test suite uses the
 * corpus: each input once, in name order.  A crash or a failed check
 * aborts, which meson counts as a failure.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

/* Largest input replayed; the corpus files are far smaller. */
#define REPLAY_MAX (16u << 20)

static int replay_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	struct stat st;
	uint8_t *buf;
	size_t n;
	int r = 0;

	if (!f)
		return -errno;
	if (fstat(fileno(f), &st) < 0) {
		r = -errno;
		goto out_close;
	}
	if (st.st_size > REPLAY_MAX) {
		r = -EFBIG;
		goto out_close;
	}
	/* Exactly the input's size, so that ASan sees reads past it. */
	buf = malloc(st.st_size ? (size_t)st.st_size : 1);
	if (!buf) {
		r = -ENOMEM;
		goto out_close;
	}
	n = fread(buf, 1, (size_t)st.st_size, f);
	if (n != (size_t)st.st_size)
		r = -EIO;
	else
		LLVMFuzzerTestOneInput(buf, n);
	free(buf);

out_close:
	fclose(f);
	return r;
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Replays every regular file of @dir; returns how many, or -errno. */
static int replay_dir(const char *dir)
{
	struct dirent *de;
	char **names = NULL, path[4096];
	size_t n = 0;
	int count = 0, r = 0;
	DIR *d = opendir(dir);

	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		char **grown;

		if (de->d_name[0] == '.')
			continue;
		grown = realloc(names, (n + 1) * sizeof(*names));
		if (!grown || !(grown[n] = strdup(de->d_name))) {
			names = grown ? grown : names;
			r = -ENOMEM;
			goto out;
		}
		names = grown;
		n++;
	}
	qsort(names, n, sizeof(*names), name_cmp);
	for (size_t i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		r = replay_file(path);
		if (r < 0)
			goto out;
		count++;
	}
	r = count;
out:
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	closedir(d);
	return r;
}

int main(int argc, char **argv)
{
	int total = 0;

	for (int i = 1; i < argc; i++) {
		struct stat st;
		int r;

		if (stat(argv[i], &st) < 0) {
			fprintf(stderr, "replay: cannot stat '%s': %s\n",
				argv[i], strerror(errno));
			return 1;
		}
		r = S_ISDIR(st.st_mode) ? replay_dir(argv[i]) :
					  replay_file(argv[i]);
		if (r < 0) {
			fprintf(stderr, "replay: cannot read '%s': %s\n",
				argv[i], strerror(-r));
			return 1;
		}
		total += S_ISDIR(st.st_mode) ? r : 1;
	}
	if (total == 0) {
		/* An empty corpus would pass without testing anything. */
		fprintf(stderr, "replay: no inputs\n");
		return 1;
	}
	printf("replayed %d inputs\n", total);
	return 0;
}
