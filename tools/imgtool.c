/* SPDX-License-Identifier: MIT */
/*
 * imgtool.c - the command line: dispatch to one verb.
 */
#include <locale.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "imgtool.h"

static const char usage[] =
	"usage: imgtool VERB [ARGS]\n"
	"\n"
	"verbs:\n"
	"  build [-l LEVEL] [-j THREADS] [-m MAX_LAYER_MIB] SRC DST\n"
	"        convert an image (oci:DIR[:TAG] or docker-archive:FILE)\n"
	"        into seekable zstd layers with an index, as oci:DIR[:TAG]\n"
	"  index show BLOB|oci:DIR[:TAG]\n"
	"        print the entries as JSON lines (summary on stderr)\n"
	"  index verify BLOB|oci:DIR[:TAG]\n"
	"        decompress and check every chunk against its hash\n"
	"  mount [-f] [-d] [-o OPTIONS] SOURCE MOUNTPOINT [SOURCE MOUNTPOINT]...\n"
	"        mount the image read-only, fetching chunks on first use;\n"
	"        SOURCE is oci:DIR[:TAG], docker://HOST/REPO[:TAG|@DIGEST]\n"
	"        or http(s)://HOST/PATH[:TAG] (options: see man imgtool);\n"
	"        -o supervise keeps the mount across daemon restarts\n"
	"  record [-o OPTIONS] oci:DIR[:TAG] -- COMMAND [ARGS]\n"
	"        run COMMAND in the image and attach the chunks it read\n"
	"        first to the image, as its startup profile\n"
	"  status MOUNTPOINT\n"
	"        print a mounted image's counters\n"
	"  version\n";

void imgtool_error(const char *fmt, ...)
{
	va_list ap;

	fputs("imgtool: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

int main(int argc, char **argv)
{
	/* Tar names are bytes; a UTF-8 locale lets libarchive pass PAX
	 * names through unchanged. */
	if (!setlocale(LC_CTYPE, "C.UTF-8"))
		setlocale(LC_CTYPE, "");
	if (argc < 2 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "--help") == 0) {
		fputs(usage, argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	if (strcmp(argv[1], "build") == 0)
		return imgtool_build(argc - 1, argv + 1);
	if (strcmp(argv[1], "index") == 0)
		return imgtool_index(argc - 1, argv + 1);
	if (strcmp(argv[1], "mount") == 0)
		return imgtool_mount(argc - 1, argv + 1);
	if (strcmp(argv[1], "status") == 0)
		return imgtool_status(argc - 1, argv + 1);
	if (strcmp(argv[1], "record") == 0)
		return imgtool_record(argc - 1, argv + 1);
	if (strcmp(argv[1], "version") == 0 ||
	    strcmp(argv[1], "--version") == 0) {
		printf("imgtool %s\n", IMGFS_VERSION);
		return 0;
	}
	imgtool_error("unknown verb '%s'", argv[1]);
	fputs(usage, stderr);
	return 2;
}
