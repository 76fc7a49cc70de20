/* SPDX-License-Identifier: MIT */
/*
 * builder.h - rewrite an image's layers into seekable zstd layers with an
 * index, and write the result as a new OCI image layout.
 */
#ifndef IMGFS_BUILDER_H
#define IMGFS_BUILDER_H

#include <stddef.h>
#include <stdint.h>

struct builder_progress {
	uint32_t layer; /* 0-based */
	uint32_t n_layers;
	const char *phase; /* "unpack", "scan", "compress" */
	uint64_t done; /* bytes of the layer's tar handled in this phase */
	uint64_t total;
};

typedef void (*builder_progress_fn)(void *ctx,
				    const struct builder_progress *progress);

#define BUILDER_TAR_MAX ((uint64_t)256 << 30)

struct builder_options {
	int level; /* zstd level, 0: 3 */
	unsigned int threads; /* compression threads, 0: one per core */
	const char *tmpdir; /* scratch space, NULL: beside the output */
	/* Largest tar a layer may decompress to, 0: BUILDER_TAR_MAX.  OCI
	 * declares no uncompressed size, so this is what stops a small
	 * layer from filling the scratch disk. */
	uint64_t max_tar;
	builder_progress_fn progress; /* may be NULL */
	void *progress_ctx;
};

struct builder_layer_stats {
	uint64_t tar_size;
	uint64_t blob_size; /* whole output blob */
	uint64_t data_size; /* the data frames alone */
	uint64_t index_size;
	uint32_t entries;
	uint32_t files;
	uint32_t chunks;
};

struct builder_stats {
	uint32_t layers;
	struct builder_layer_stats total;
	double seconds;
};

/*
 * Converts one layer: reads @src (a tar, plain or compressed with gzip or
 * zstd), checks its DiffID against @diff_id when not NULL, and writes the
 * seekable blob into the OCI layout @dst_dir's blobs.  Returns the new
 * blob's digest ("sha256:<hex>", 72 bytes with NUL), its locator, its
 * statistics and a copy of its index in *ret_index (*ret_index_size
 * bytes, taken by the caller, who frees it).
 */
struct index_locator;
int builder_layer_convert(const char *src, const char *diff_id,
			  const char *dst_dir, const struct builder_options *opts,
			  uint32_t layer, uint32_t n_layers, char ret_digest[72],
			  struct index_locator *ret_locator,
			  struct builder_layer_stats *ret_stats,
			  void **ret_index, size_t *ret_index_size, char *err,
			  size_t err_size);

/*
 * Builds the image: @src is "oci:DIR[:TAG]" or "docker-archive:FILE",
 * @dst "oci:DIR[:TAG]" (created; the tag defaults to the source's, or
 * "latest").  Errors name what failed where in @err.
 */
int builder_build_image(const char *src, const char *dst,
			const struct builder_options *opts,
			struct builder_stats *ret_stats, char *err,
			size_t err_size);

/*
 * Puts a startup profile into the image @ref ("oci:DIR[:TAG]", a layout on
 * local disk): the config gets the label INDEX_PROFILE_LABEL holding the
 * @n entries, and the tag points at a new manifest naming the new config
 * (layers unchanged).  The new manifest's digest goes to @ret_digest.
 */
struct index_profile_entry;
int builder_profile_attach(const char *ref,
			   const struct index_profile_entry *entries,
			   uint32_t n, char ret_digest[72], char *err,
			   size_t err_size);

/* Removes @dir and everything below it, not crossing into mounts and
 * not following symlinks; stops at the first entry it cannot remove.
 * 0 or -errno. */
int builder_remove_tree(const char *dir);

#endif
