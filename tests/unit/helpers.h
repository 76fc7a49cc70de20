/* SPDX-License-Identifier: MIT */
/*
 * helpers.h - tiny test helpers: exit 0 pass, 77 skip, 1 fail.
 */
#ifndef IMGFS_TEST_HELPERS_H
#define IMGFS_TEST_HELPERS_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "index/index.h"

#define T_PASS 0
#define T_SKIP 77
#define T_FAIL 1

#define CHECK(cond)                                                        \
	do {                                                               \
		if (!(cond)) {                                             \
			fprintf(stderr, "%s:%d: check failed: %s\n",       \
				__FILE__, __LINE__, #cond);                \
			exit(T_FAIL);                                      \
		}                                                          \
	} while (0)

/* Adds an entry with the given kind, path and link; other fields zero
 * except what the caller sets through *e afterwards. */
static inline void t_add(struct index_writer *w, enum index_kind kind,
			 const char *name, const char *link, uint64_t data_off,
			 uint64_t size)
{
	struct index_entry e = { 0 };

	e.kind = kind;
	e.name = name;
	e.name_len = (uint32_t)strlen(name);
	e.link = link;
	e.link_len = link ? (uint32_t)strlen(link) : 0;
	e.mode = kind == INDEX_KIND_DIR ? 0755 : 0644;
	e.data_off = data_off;
	e.size = size;
	e.mtime_sec = 1700000000;
	e.mtime_nsec = 123456789;
	CHECK(index_writer_add_entry(w, &e, NULL, 0, NULL, 0) == 0);
}

/* Adds chunks of @len bytes each tiling [0, tar_size). */
static inline void t_chunks(struct index_writer *w, uint64_t tar_size,
			    uint32_t len)
{
	static const uint8_t zero[32];
	uint64_t off = 0;

	while (off < tar_size) {
		struct index_chunk c = { 0 };

		c.tar_off = off;
		c.tar_len = (uint32_t)(tar_size - off < len ? tar_size - off : len);
		c.blob_off = off / 2;
		c.blob_len = c.tar_len / 2;
		c.sha256 = zero;
		CHECK(index_writer_add_chunk(w, &c) == 0);
		off += c.tar_len;
	}
}

#endif
