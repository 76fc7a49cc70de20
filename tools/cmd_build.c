/* SPDX-License-Identifier: MIT */
/*
 * cmd_build.c - imgtool build: convert an image, with progress on a
 * terminal and a summary at the end.
 */
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <zstd.h>

#include "builder/builder.h"
#include "imgtool.h"

#define MIB (1024.0 * 1024.0)

static void show_progress(void *ctx, const struct builder_progress *p)
{
	(void)ctx;
	if (p->total)
		fprintf(stderr, "\rlayer %u/%u: %-8s %5.1f%% of %.1f MiB   ",
			p->layer + 1, p->n_layers, p->phase,
			100.0 * (double)p->done / (double)p->total,
			(double)p->total / MIB);
	else
		fprintf(stderr, "\rlayer %u/%u: %-8s %.1f MiB          ",
			p->layer + 1, p->n_layers, p->phase,
			(double)p->done / MIB);
}

static void print_summary(const struct builder_stats *s)
{
	const struct builder_layer_stats *t = &s->total;

	printf("layers     %u\n", s->layers);
	printf("entries    %u (%u regular files)\n", t->entries, t->files);
	printf("chunks     %u\n", t->chunks);
	printf("tar        %.1f MiB\n", (double)t->tar_size / MIB);
	printf("blobs      %.1f MiB (data %.1f MiB, index %.1f MiB), "
	       "ratio %.3f\n",
	       (double)t->blob_size / MIB, (double)t->data_size / MIB,
	       (double)t->index_size / MIB,
	       t->tar_size ? (double)t->blob_size / (double)t->tar_size : 0.0);
	printf("time       %.2f s (%.1f MiB/s of tar)\n", s->seconds,
	       s->seconds > 0 ? (double)t->tar_size / MIB / s->seconds : 0.0);
}

int imgtool_build(int argc, char **argv)
{
	struct builder_options opts = { 0 };
	struct builder_stats stats;
	char err[1024] = "", *end;
	unsigned long long mib;
	int c, r, quiet = 0;

	while ((c = getopt(argc, argv, "l:j:t:m:q")) != -1) {
		switch (c) {
		case 'l':
			opts.level = (int)strtol(optarg, &end, 10);
			if (*end || end == optarg || opts.level < 1 ||
			    opts.level > ZSTD_maxCLevel()) {
				imgtool_error("-l: a zstd level from 1 to %d",
					      ZSTD_maxCLevel());
				return 2;
			}
			break;
		case 'j':
			opts.threads = (unsigned int)strtoul(optarg, &end, 10);
			if (*end || end == optarg || opts.threads > 1024) {
				imgtool_error("-j: a number of threads up to 1024");
				return 2;
			}
			break;
		case 't':
			opts.tmpdir = optarg;
			break;
		case 'm':
			mib = strtoull(optarg, &end, 10);
			if (*end || mib == 0 || mib > (UINT64_MAX >> 20)) {
				imgtool_error("-m: a size in MiB, at least 1");
				return 2;
			}
			opts.max_tar = mib << 20;
			break;
		case 'q':
			quiet = 1;
			break;
		default:
			return 2;
		}
	}
	if (argc - optind != 2) {
		imgtool_error("usage: imgtool build [-l LEVEL] [-j THREADS] "
			      "[-t TMPDIR] [-m MAX_LAYER_MIB] [-q] SRC "
			      "oci:DIR[:TAG]");
		return 2;
	}
	if (!quiet && isatty(STDERR_FILENO))
		opts.progress = show_progress;

	r = builder_build_image(argv[optind], argv[optind + 1], &opts, &stats,
				err, sizeof(err));
	if (opts.progress)
		fputc('\n', stderr);
	if (r < 0) {
		imgtool_error("build failed: %s", err[0] ? err : "error");
		return 1;
	}
	if (!quiet)
		print_summary(&stats);
	return 0;
}
