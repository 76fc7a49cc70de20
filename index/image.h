/* SPDX-License-Identifier: MIT */
/*
 * image.h - reading an OCI image layout (index.json, manifest, config) and
 * mapping the index of each of its layer blobs.
 *
 * Errors come back as a negative errno plus a message in the caller's
 * buffer (@err, @err_size; both may be NULL/0) naming what failed where.
 */
#ifndef IMGFS_IMAGE_H
#define IMGFS_IMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "index.h"

#define INDEX_MEDIA_LAYER_ZSTD "application/vnd.oci.image.layer.v1.tar+zstd"
#define INDEX_MEDIA_LAYER_GZIP "application/vnd.oci.image.layer.v1.tar+gzip"
#define INDEX_MEDIA_LAYER_TAR "application/vnd.oci.image.layer.v1.tar"
#define INDEX_MEDIA_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define INDEX_MEDIA_INDEX "application/vnd.oci.image.index.v1+json"
#define INDEX_MEDIA_CONFIG "application/vnd.oci.image.config.v1+json"

struct index_image_layer {
	char *digest; /* "sha256:<hex>" of the blob */
	char *media_type;
	uint64_t size;
	char *diff_id; /* from the config, NULL if the config lacks it */
	char *path; /* the blob's file in the layout */
	int has_locator; /* the descriptor's annotations gave the index */
	struct index_locator locator;
};

/* The config label that carries the startup profile (FORMAT.md, 5). */
#define INDEX_PROFILE_LABEL "org.imgfs.profile.v1"
/* Longest label value accepted: about 6 million chunks. */
#define INDEX_PROFILE_TEXT_MAX (64u << 20)

/* One chunk of the startup profile, in the order it was first read. */
struct index_profile_entry {
	uint32_t layer; /* position in the manifest, below n_layers */
	uint32_t chunk; /* chunk number in that layer's index (unchecked) */
};

/*
 * Decodes a profile label's value (base64 of a 16-byte header and 8-byte
 * records) for an image of @n_layers layers.  *ret_entries is malloc'd
 * (the caller frees it).  Returns -EINVAL for a malformed value, -ENOMEM.
 */
int index_profile_decode(const char *text, uint32_t n_layers,
			 struct index_profile_entry **ret_entries,
			 uint32_t *ret_count);
/* Encodes @count entries as a label value; *ret_text is malloc'd. */
int index_profile_encode(const struct index_profile_entry *entries,
			 uint32_t count, char **ret_text);

/* An image read from a layout.  Owns every string it points to. */
struct index_image {
	char *dir;
	char *tag; /* NULL when the layout's only manifest was taken */
	char *manifest_digest;
	char *config_digest;
	char *config_path;
	uint64_t config_size;
	uint32_t n_layers;
	struct index_image_layer *layers;
	struct index_profile_entry *profile; /* NULL: the image has none */
	uint32_t n_profile;
};

/*
 * Opens the image named by @ref: "oci:DIR", "oci:DIR:TAG" or a plain DIR.
 * Without a tag the layout must hold exactly one manifest (or one tagged
 * "latest").  Checks that every blob named exists; reads the config for
 * the DiffIDs.  Returns -ENOENT, -EINVAL (malformed JSON or layout),
 * -ENOMEM.
 */
int index_image_open(const char *ref, struct index_image **ret_image,
		     char *err, size_t err_size);
void index_image_free(struct index_image *image);

/*
 * Where the image's JSON documents come from: a layout on disk, or a
 * server (remote.h).  get() returns the blob @digest (a manifest when
 * @manifest, else a config) as a malloc'd buffer of *ret_size bytes with a
 * NUL after them, already checked against @digest.
 */
struct index_docs {
	int (*get)(struct index_docs *docs, const char *digest, bool manifest,
		   char **ret_data, size_t *ret_size, char *err,
		   size_t err_size);
};

/*
 * Fills @img (zeroed, with ->tag set or NULL) from its top document @top:
 * a layout's index.json when @layout_index (the manifest is picked by
 * tag), else a registry's answer for a tag or digest (a manifest, or an
 * index from which linux/amd64 is picked).  @what names @top in errors.
 * Sets no paths: blobs are the caller's business.
 */
int index_image_from_docs(struct index_image *img, struct index_docs *docs,
			  const char *top, size_t top_size, const char *what,
			  bool layout_index, char *err, size_t err_size);

/* 0 when @data hashes to @digest ("sha256:<hex>"), -EBADMSG when not,
 * -EINVAL for a malformed digest. */
int index_digest_check(const char *digest, const void *data, size_t size);

/* The index of one layer blob, mapped from its file and validated. */
struct index_layer_map {
	void *map; /* the mmap'd region (page aligned), or a heap buffer */
	size_t map_size; /* 0: map is a heap buffer */
	const uint8_t *data; /* the raw index inside map */
	size_t size;
	struct index_locator locator;
	struct index_reader *reader;
};

/*
 * Maps the index of the blob at @path: from @locator when given (checked
 * against the blob's own trailer), else found from the blob's tail.  The
 * index's SHA-256 is checked before it is used.  Returns -EBADMSG for a
 * blob that is not a seekable layer with an index or whose index does not
 * match its digest.
 */
int index_layer_map_open(const char *path,
			 const struct index_locator *locator,
			 struct index_layer_map **ret_map, char *err,
			 size_t err_size);
void index_layer_map_free(struct index_layer_map *map);

/*
 * The same for an index fetched into memory: @data (malloc'd, taken over
 * even on failure) holds the @locator->size raw index bytes of blob
 * @name.  Checks them against the locator's SHA-256 and validates them.
 */
int index_layer_map_from_memory(void *data, const struct index_locator *locator,
				const char *name,
				struct index_layer_map **ret_map, char *err,
				size_t err_size);

/* Reads a whole small file (JSON) into a NUL-terminated malloc'd buffer;
 * refuses files over @max bytes with -EFBIG. */
int index_read_small_file(const char *path, size_t max, char **ret_data,
			  size_t *ret_size);

#endif
