/* SPDX-License-Identifier: MIT */
/*
 * imgtool.h - the verbs of imgtool, one file each.
 */
#ifndef IMGFS_IMGTOOL_H
#define IMGFS_IMGTOOL_H

/* Each verb takes the arguments after its name (argv[0] is the verb) and
 * returns the process exit status. */
int imgtool_build(int argc, char **argv);
int imgtool_index(int argc, char **argv);
int imgtool_mount(int argc, char **argv);
int imgtool_status(int argc, char **argv);
int imgtool_record(int argc, char **argv);

/* Prints "imgtool: MESSAGE" to stderr. */
void imgtool_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
