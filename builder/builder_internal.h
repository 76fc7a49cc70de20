/* SPDX-License-Identifier: MIT */
/*
 * builder_internal.h - shared between the files of builder/ only.
 */
#ifndef IMGFS_BUILDER_INTERNAL_H
#define IMGFS_BUILDER_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "builder.h"
#include "index/index.h"

/* A regular file's data in the tar, as the chunker needs it. */
struct builder_span {
	uint64_t off;
	uint64_t len;
};

/* The uncompressed tar of a layer, mapped. */
struct builder_tar {
	const uint8_t *data;
	uint64_t size;
};

/*
 * Scans the tar with libarchive and adds one index entry per tar entry to
 * @writer; collects each regular file's data span in *ret_spans (malloc'd,
 * in tar order).  Refuses entries that would escape the image root.
 */
int builder_scan_tar(const struct builder_tar *tar,
		     struct index_writer *writer, struct builder_span **ret_spans,
		     uint32_t *ret_n_spans, struct builder_layer_stats *stats,
		     char *err, size_t err_size);

/*
 * Cuts the tar into chunk boundaries: every file of at least
 * BUILDER_SMALL_FILE bytes starts a chunk, smaller ones share one, and
 * large files are split at content-defined points.  *ret_ends receives the
 * end offset of each chunk (malloc'd), the last one being tar->size.
 */
int builder_chunk_plan(const struct builder_tar *tar,
		       const struct builder_span *spans, uint32_t n_spans,
		       uint64_t **ret_ends, uint32_t *ret_n_chunks);

struct json_object;

/* Writes @data as a blob of the layout @dir; its digest goes to
 * @ret_digest ("sha256:<hex>").  -errno. */
int builder_write_blob(const char *dir, const void *data, size_t len,
		       char ret_digest[72]);
/* Adds the manifest @digest of @size bytes to @dir's index.json under
 * @tag, replacing the one that had that tag.  -errno. */
int builder_write_index_json(const char *dir, const char *tag,
			     const char *digest, size_t size);
/* @o as compact JSON; the text belongs to @o. */
const char *builder_json_text(struct json_object *o);

/* The index library's message helper, under the builder's name. */
#define builder_err index_seterr

#endif
