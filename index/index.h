/* SPDX-License-Identifier: MIT */
/*
 * index.h - the layer index of a seekable zstd layer blob, and the blob's
 * trailer (index frame, locator frame, seek table).
 *
 * The byte layout is documented in index/FORMAT.md; change both together.
 *
 * Every function that can fail returns 0 (or a count) on success and a
 * negative errno on failure.  Nothing here prints, exits or allocates per
 * entry: a reader decodes fields on demand from the caller's buffer.
 */
#ifndef IMGFS_INDEX_H
#define IMGFS_INDEX_H

#include <stddef.h>
#include <stdint.h>

#define INDEX_MAGIC "IMGFSIDX"
#define INDEX_VERSION 1

/* Largest uncompressed chunk a valid index may declare: a bound on the
 * memory a single chunk can make a reader allocate. */
#define INDEX_CHUNK_MAX (16u << 20)

/* Skippable frame magics (zstd reserves 0x184D2A50..0x184D2A5F). */
#define INDEX_FRAME_MAGIC_INDEX 0x184D2A5Au
#define INDEX_FRAME_MAGIC_LOCATOR 0x184D2A5Bu
#define INDEX_FRAME_MAGIC_SEEKTABLE 0x184D2A5Eu
#define INDEX_SEEKABLE_FOOTER_MAGIC 0x8F92EAB1u

#define INDEX_SKIPPABLE_HEADER_SIZE 8
#define INDEX_LOCATOR_PAYLOAD_SIZE 64
#define INDEX_LOCATOR_FRAME_SIZE \
	(INDEX_SKIPPABLE_HEADER_SIZE + INDEX_LOCATOR_PAYLOAD_SIZE)
#define INDEX_SEEKTABLE_FOOTER_SIZE 9
#define INDEX_SEEKTABLE_ENTRY_SIZE 8
/* Most frames a blob may have.  zstd's seekable format allows 2^27; ours
 * stops at 2^23 (a 64 MiB seek table, and an index of at least 512 MiB
 * for the chunks), so that a blob's tail cannot make a reader allocate
 * more than that to find its locator. */
#define INDEX_SEEKTABLE_MAX_FRAMES (1u << 23)

/* Manifest annotations on a layer descriptor. */
#define INDEX_ANNOTATION_OFFSET "org.imgfs.index.offset"
#define INDEX_ANNOTATION_LENGTH "org.imgfs.index.length"
#define INDEX_ANNOTATION_DIGEST "org.imgfs.index.digest"

enum index_kind {
	INDEX_KIND_FILE = 1,
	INDEX_KIND_DIR = 2,
	INDEX_KIND_SYMLINK = 3,
	INDEX_KIND_HARDLINK = 4,
	INDEX_KIND_CHAR = 5,
	INDEX_KIND_BLOCK = 6,
	INDEX_KIND_FIFO = 7,
	INDEX_KIND_WHITEOUT = 8,
	INDEX_KIND_OPAQUE = 9,
};

/* Entry flags. */
#define INDEX_ENTRY_SPARSE 0x1u

/*
 * One tar entry, decoded.  Strings point into the index buffer, are
 * NUL-terminated, and live as long as that buffer.
 *
 * name: the normalised path ("" for the root, no leading "/" or "./", no
 * "." or ".." components).  For a whiteout it is the path that is removed,
 * for an opaque marker the directory that is made opaque.
 * link: symlink target, or the normalised path a hard link points to.
 */
struct index_entry {
	enum index_kind kind;
	uint32_t flags;
	const char *name;
	uint32_t name_len;
	const char *link;
	uint32_t link_len;
	uint32_t mode; /* permission bits with setuid/setgid/sticky */
	uint32_t uid;
	uint32_t gid;
	uint32_t dev_major;
	uint32_t dev_minor;
	uint64_t size; /* file size (logical size for a sparse file) */
	int64_t mtime_sec;
	uint32_t mtime_nsec;
	uint64_t data_off; /* offset of the file's data in the tar */
	uint32_t chunk_first; /* chunks covering [data_off, + stored bytes) */
	uint32_t chunk_count;
	uint32_t xattr_first;
	uint32_t xattr_count;
	uint32_t sparse_first;
	uint32_t sparse_count;
};

/* One chunk: an independent zstd frame of the blob. */
struct index_chunk {
	uint64_t tar_off;
	uint64_t blob_off;
	uint32_t tar_len;
	uint32_t blob_len;
	const uint8_t *sha256; /* 32 bytes in the index buffer */
};

struct index_xattr {
	const char *name; /* NUL-terminated */
	uint32_t name_len;
	const uint8_t *value; /* binary; a NUL follows value_len bytes */
	uint32_t value_len;
};

/* A data segment of a sparse file: logical [offset, offset + length).
 * Segments are stored back to back in the tar from data_off on. */
struct index_sparse {
	uint64_t offset;
	uint64_t length;
};

/* ---- reader ---- */

struct index_reader;

/*
 * Validates the whole index in @data (every offset, count, string and
 * chunk range) and returns a reader over it.  @data is borrowed and must
 * outlive the reader; it need not be aligned.  Returns -EBADMSG for a bad
 * magic or malformed content, -EPROTONOSUPPORT for an unknown version,
 * -ENOMEM.  *ret_what, when not NULL, receives a static string naming the
 * first check that failed.
 */
int index_reader_open(const void *data, size_t size,
		      struct index_reader **ret_reader, const char **ret_what);
void index_reader_free(struct index_reader *reader);

uint64_t index_reader_tar_size(const struct index_reader *reader);
uint32_t index_reader_entry_count(const struct index_reader *reader);
uint32_t index_reader_chunk_count(const struct index_reader *reader);

/* Accessors: the index was validated at open, so for an in-range @i these
 * cannot fail.  An out-of-range @i is a programmer error. */
void index_reader_entry(const struct index_reader *reader, uint32_t i,
			struct index_entry *ret_entry);
void index_reader_chunk(const struct index_reader *reader, uint32_t i,
			struct index_chunk *ret_chunk);
void index_reader_xattr(const struct index_reader *reader, uint32_t i,
			struct index_xattr *ret_xattr);
void index_reader_sparse(const struct index_reader *reader, uint32_t i,
			 struct index_sparse *ret_sparse);

/* Index of the chunk holding tar offset @tar_off, or -ERANGE past the end. */
int index_reader_find_chunk(const struct index_reader *reader,
			    uint64_t tar_off, uint32_t *ret_chunk);

/* Bytes of @entry stored in the tar (size, or the sum of sparse segments). */
uint64_t index_entry_stored_size(const struct index_reader *reader,
				 const struct index_entry *entry);

const char *index_kind_name(enum index_kind kind);

/* ---- writer ---- */

struct index_writer;

int index_writer_new(struct index_writer **ret_writer);
void index_writer_free(struct index_writer *writer);

/*
 * Appends an entry.  Strings, xattrs and sparse segments are copied.  The
 * entry's chunk_first/chunk_count and xattr/sparse positions are ignored:
 * finish() computes them.  Entries are kept in the order added.
 */
int index_writer_add_entry(struct index_writer *writer,
			   const struct index_entry *entry,
			   const struct index_xattr *xattrs, uint32_t n_xattrs,
			   const struct index_sparse *sparse,
			   uint32_t n_sparse);

/* Appends the next chunk; chunks must tile the tar from offset 0 and the
 * blob from offset 0, in order.  The hash is copied. */
int index_writer_add_chunk(struct index_writer *writer,
			   const struct index_chunk *chunk);

/*
 * Encodes the index.  On success *ret_data is a malloc'd buffer the caller
 * frees; it passes index_reader_open().  The writer stays valid for free().
 */
int index_writer_finish(struct index_writer *writer, uint64_t tar_size,
			void **ret_data, size_t *ret_size);

/* ---- blob trailer ---- */

/* Where the index is: @offset and @size of the raw index bytes in the blob
 * (inside a skippable frame), and their SHA-256. */
struct index_locator {
	uint64_t offset;
	uint64_t size;
	uint8_t sha256[32];
};

void index_locator_encode(const struct index_locator *locator,
			  uint8_t out[INDEX_LOCATOR_FRAME_SIZE]);
int index_locator_decode(const uint8_t *frame, size_t size,
			 struct index_locator *ret_locator);

/* Size of a seek table frame listing @n_frames frames (no checksums). */
uint64_t index_seektable_frame_size(uint32_t n_frames);

/* Writes the seek table frame for @n_frames frames into @out, which holds
 * index_seektable_frame_size(n_frames) bytes. */
int index_seektable_encode(const uint32_t *blob_sizes,
			   const uint32_t *tar_sizes, uint32_t n_frames,
			   uint8_t *out, size_t out_size);

/*
 * Finds the locator from the tail of a blob.  @tail holds the last
 * @tail_size bytes of a blob of @blob_size bytes.  Returns 0 and fills
 * *ret_locator; -EAGAIN with *ret_need set when the tail is too short to
 * hold the seek table and the locator (read that many bytes and call
 * again); -EBADMSG when the tail is not a valid trailer.
 */
int index_blob_tail_parse(const uint8_t *tail, size_t tail_size,
			  uint64_t blob_size, struct index_locator *ret_locator,
			  uint64_t *ret_need);

/* Says why index_blob_tail_parse() (or reading the tail) failed with
 * @r, for a message: a static string. */
const char *index_blob_tail_error(int r);

/* Formats a message into @err (@err_size bytes; NULL/0 for none) and
 * returns @code: the library's way of saying what failed where. */
int index_seterr(char *err, size_t err_size, int code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Renders a 32-byte hash as 64 lowercase hex digits plus NUL. */
void index_hex(const uint8_t *hash, size_t len, char *out);
/* Parses "sha256:<64 hex>" into @out; -EINVAL if malformed. */
int index_digest_parse(const char *digest, uint8_t out[32]);
/* 0 when @digest names @sha256, -EBADMSG when another, -EINVAL when it
 * is malformed. */
int index_digest_equal(const char *digest, const uint8_t sha256[32]);

#endif
