/* SPDX-License-Identifier: MIT */
/*
 * index_internal.h - on-disk records of the layer index and little-endian
 * helpers, shared by the files of index/ only.
 */
#ifndef IMGFS_INDEX_INTERNAL_H
#define IMGFS_INDEX_INTERNAL_H

#include <stdint.h>
#include <string.h>

#include "index.h"

/*
 * On-disk records.  All fields are little-endian and the records are read
 * with the get_le*() helpers below, never through these structs in place,
 * since the index may sit at any alignment inside a mapped blob.  The
 * structs document the layout and pin its sizes.
 */
struct index_disk_header {
	char magic[8];
	uint32_t version;
	uint32_t header_size;
	uint64_t index_size;
	uint64_t tar_size;
	uint32_t entry_count;
	uint32_t chunk_count;
	uint32_t xattr_count;
	uint32_t sparse_count;
	uint64_t entries_off;
	uint64_t chunks_off;
	uint64_t xattrs_off;
	uint64_t sparse_off;
	uint64_t strings_off;
	uint64_t strings_size;
	uint8_t reserved[32];
};
_Static_assert(sizeof(struct index_disk_header) == 128, "header size");

struct index_disk_entry {
	uint64_t data_off;
	uint64_t size;
	int64_t mtime_sec;
	uint32_t mtime_nsec;
	uint32_t mode;
	uint32_t uid;
	uint32_t gid;
	uint8_t kind;
	uint8_t pad[3];
	uint32_t flags;
	uint32_t dev_major;
	uint32_t dev_minor;
	uint32_t name_off;
	uint32_t name_len;
	uint32_t link_off;
	uint32_t link_len;
	uint32_t xattr_first;
	uint32_t xattr_count;
	uint32_t chunk_first;
	uint32_t chunk_count;
	uint32_t sparse_first;
	uint32_t sparse_count;
};
_Static_assert(sizeof(struct index_disk_entry) == 96, "entry size");

struct index_disk_chunk {
	uint64_t tar_off;
	uint64_t blob_off;
	uint32_t tar_len;
	uint32_t blob_len;
	uint8_t sha256[32];
	uint64_t reserved;
};
_Static_assert(sizeof(struct index_disk_chunk) == 64, "chunk size");

struct index_disk_xattr {
	uint32_t name_off;
	uint32_t name_len;
	uint32_t value_off;
	uint32_t value_len;
};
_Static_assert(sizeof(struct index_disk_xattr) == 16, "xattr size");

struct index_disk_sparse {
	uint64_t offset;
	uint64_t length;
};
_Static_assert(sizeof(struct index_disk_sparse) == 16, "sparse size");

/* Field offsets of the records, for the decoder and encoder. */
#define HDR_VERSION 8
#define HDR_HEADER_SIZE 12
#define HDR_INDEX_SIZE 16
#define HDR_TAR_SIZE 24
#define HDR_ENTRY_COUNT 32
#define HDR_CHUNK_COUNT 36
#define HDR_XATTR_COUNT 40
#define HDR_SPARSE_COUNT 44
#define HDR_ENTRIES_OFF 48
#define HDR_CHUNKS_OFF 56
#define HDR_XATTRS_OFF 64
#define HDR_SPARSE_OFF 72
#define HDR_STRINGS_OFF 80
#define HDR_STRINGS_SIZE 88
#define HDR_RESERVED 96

#define ENT_DATA_OFF 0
#define ENT_SIZE 8
#define ENT_MTIME_SEC 16
#define ENT_MTIME_NSEC 24
#define ENT_MODE 28
#define ENT_UID 32
#define ENT_GID 36
#define ENT_KIND 40
#define ENT_FLAGS 44
#define ENT_DEV_MAJOR 48
#define ENT_DEV_MINOR 52
#define ENT_NAME_OFF 56
#define ENT_NAME_LEN 60
#define ENT_LINK_OFF 64
#define ENT_LINK_LEN 68
#define ENT_XATTR_FIRST 72
#define ENT_XATTR_COUNT 76
#define ENT_CHUNK_FIRST 80
#define ENT_CHUNK_COUNT 84
#define ENT_SPARSE_FIRST 88
#define ENT_SPARSE_COUNT 92

#define CHK_TAR_OFF 0
#define CHK_BLOB_OFF 8
#define CHK_TAR_LEN 16
#define CHK_BLOB_LEN 20
#define CHK_SHA256 24

static inline uint32_t get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static inline uint64_t get_le64(const uint8_t *p)
{
	return (uint64_t)get_le32(p) | (uint64_t)get_le32(p + 4) << 32;
}

static inline void put_le32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static inline void put_le64(uint8_t *p, uint64_t v)
{
	put_le32(p, (uint32_t)v);
	put_le32(p + 4, (uint32_t)(v >> 32));
}

#endif
