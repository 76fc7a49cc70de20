/* SPDX-License-Identifier: MIT */
/*
 * reader.c - validate a layer index once, then decode its records on
 * demand straight from the caller's buffer.
 *
 * Everything in an index is untrusted: open() checks each count against
 * the space it claims, each offset against the section it points into,
 * each string for its terminating NUL, and that the chunks tile the tar
 * and the blob without gaps, before any accessor may run.  Accessors then
 * need no checks of their own.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "index.h"
#include "index_internal.h"

struct index_reader {
	const uint8_t *data; /* borrowed from the caller */
	size_t size;
	uint64_t tar_size;
	uint32_t entry_count;
	uint32_t chunk_count;
	uint32_t xattr_count;
	uint32_t sparse_count;
	const uint8_t *entries;
	const uint8_t *chunks;
	const uint8_t *xattrs;
	const uint8_t *sparse;
	const char *strings;
	uint64_t strings_size;
};

/* Checks that @count records of @rec_size at @off fit after the header. */
static bool section_fits(uint64_t size, uint64_t off, uint64_t count,
			 uint64_t rec_size)
{
	uint64_t bytes;

	if (__builtin_mul_overflow(count, rec_size, &bytes))
		return false;
	if (off < sizeof(struct index_disk_header) || off > size)
		return false;
	return bytes <= size - off;
}

/* A string reference is valid when it and its NUL lie in the string
 * section and no NUL hides inside it. */
static bool string_ok(const struct index_reader *r, uint32_t off,
		      uint32_t len)
{
	if ((uint64_t)off + len + 1 > r->strings_size)
		return false;
	if (r->strings[off + len] != '\0')
		return false;
	return memchr(r->strings + off, '\0', len) == NULL;
}

/* A normalised path: components separated by single slashes, none empty,
 * "." or "..".  The empty path is the root. */
static bool path_ok(const char *p, uint32_t len)
{
	uint32_t start = 0;

	if (len == 0)
		return true;
	for (uint32_t i = 0; i <= len; i++) {
		if (i < len && p[i] != '/')
			continue;
		uint32_t n = i - start;

		if (n == 0)
			return false;
		if (n == 1 && p[start] == '.')
			return false;
		if (n == 2 && p[start] == '.' && p[start + 1] == '.')
			return false;
		start = i + 1;
	}
	return true;
}

static bool range_ok(uint32_t first, uint32_t count, uint32_t total)
{
	return (uint64_t)first + count <= total;
}

static int validate_header(struct index_reader *r, const char **what)
{
	const uint8_t *h = r->data;

	if (r->size < sizeof(struct index_disk_header) ||
	    memcmp(h, INDEX_MAGIC, 8) != 0) {
		*what = "bad magic or truncated header";
		return -EBADMSG;
	}
	if (get_le32(h + HDR_VERSION) != INDEX_VERSION) {
		*what = "unsupported index version";
		return -EPROTONOSUPPORT;
	}
	if (get_le32(h + HDR_HEADER_SIZE) != sizeof(struct index_disk_header)) {
		*what = "bad header size";
		return -EBADMSG;
	}
	if (get_le64(h + HDR_INDEX_SIZE) != r->size) {
		*what = "index size does not match its header (truncated?)";
		return -EBADMSG;
	}
	for (unsigned int i = HDR_RESERVED; i < 128; i++) {
		if (h[i] != 0) {
			*what = "reserved header bytes are not zero";
			return -EBADMSG;
		}
	}
	return 0;
}

static int validate_sections(struct index_reader *r, const char **what)
{
	const uint8_t *h = r->data;
	uint64_t eo = get_le64(h + HDR_ENTRIES_OFF);
	uint64_t co = get_le64(h + HDR_CHUNKS_OFF);
	uint64_t xo = get_le64(h + HDR_XATTRS_OFF);
	uint64_t so = get_le64(h + HDR_SPARSE_OFF);
	uint64_t to = get_le64(h + HDR_STRINGS_OFF);

	r->tar_size = get_le64(h + HDR_TAR_SIZE);
	r->entry_count = get_le32(h + HDR_ENTRY_COUNT);
	r->chunk_count = get_le32(h + HDR_CHUNK_COUNT);
	r->xattr_count = get_le32(h + HDR_XATTR_COUNT);
	r->sparse_count = get_le32(h + HDR_SPARSE_COUNT);
	r->strings_size = get_le64(h + HDR_STRINGS_SIZE);

	if (!section_fits(r->size, eo, r->entry_count,
			  sizeof(struct index_disk_entry)) ||
	    !section_fits(r->size, co, r->chunk_count,
			  sizeof(struct index_disk_chunk)) ||
	    !section_fits(r->size, xo, r->xattr_count,
			  sizeof(struct index_disk_xattr)) ||
	    !section_fits(r->size, so, r->sparse_count,
			  sizeof(struct index_disk_sparse)) ||
	    !section_fits(r->size, to, r->strings_size, 1)) {
		*what = "section offset or count past the end of the index";
		return -EBADMSG;
	}
	if (r->strings_size > UINT32_MAX) {
		*what = "string section over 4 GiB";
		return -EBADMSG;
	}
	r->entries = r->data + eo;
	r->chunks = r->data + co;
	r->xattrs = r->data + xo;
	r->sparse = r->data + so;
	r->strings = (const char *)r->data + to;
	return 0;
}

static int validate_chunks(struct index_reader *r, const char **what)
{
	uint64_t tar_end = 0, blob_end = 0;

	if (r->tar_size > 0 && r->chunk_count == 0) {
		*what = "tar has bytes but the index has no chunks";
		return -EBADMSG;
	}
	for (uint32_t i = 0; i < r->chunk_count; i++) {
		const uint8_t *c = r->chunks + (uint64_t)i * 64;
		uint32_t tl = get_le32(c + CHK_TAR_LEN);
		uint32_t bl = get_le32(c + CHK_BLOB_LEN);

		if (get_le64(c + CHK_TAR_OFF) != tar_end ||
		    get_le64(c + CHK_BLOB_OFF) != blob_end) {
			*what = "chunks do not tile the tar and the blob";
			return -EBADMSG;
		}
		if (tl == 0 || tl > INDEX_CHUNK_MAX || bl == 0 ||
		    bl > tl + (tl >> 7) + 4096) {
			*what = "chunk length out of range";
			return -EBADMSG;
		}
		tar_end += tl;
		blob_end += bl;
	}
	if (tar_end != r->tar_size) {
		*what = "chunks do not cover the tar";
		return -EBADMSG;
	}
	return 0;
}

static int validate_xattrs(struct index_reader *r, const char **what)
{
	for (uint32_t i = 0; i < r->xattr_count; i++) {
		const uint8_t *x = r->xattrs + (uint64_t)i * 16;
		uint32_t nlen = get_le32(x + 4);

		if (nlen == 0 || !string_ok(r, get_le32(x), nlen) ||
		    (uint64_t)get_le32(x + 8) + get_le32(x + 12) + 1 >
			    r->strings_size ||
		    r->strings[get_le32(x + 8) + (uint64_t)get_le32(x + 12)]) {
			*what = "xattr name or value out of range";
			return -EBADMSG;
		}
	}
	return 0;
}

/* Sum of a sparse file's segments, checked to be ordered and in size. */
static int sparse_stored(const struct index_reader *r, uint32_t first,
			 uint32_t count, uint64_t size, uint64_t *ret_stored)
{
	uint64_t stored = 0, end = 0;

	for (uint32_t i = first; i < first + count; i++) {
		const uint8_t *s = r->sparse + (uint64_t)i * 16;
		uint64_t off = get_le64(s), len = get_le64(s + 8);

		if (off < end || len > size || off > size - len)
			return -EBADMSG;
		end = off + len;
		stored += len;
	}
	*ret_stored = stored;
	return 0;
}

/* The file's chunk range must be exactly the chunks its data touches. */
static bool file_chunks_ok(const struct index_reader *r,
			   const struct index_entry *e, uint64_t stored)
{
	struct index_chunk first, last;

	if (stored == 0)
		return e->chunk_count == 0;
	if (e->data_off > r->tar_size || stored > r->tar_size - e->data_off)
		return false;
	if (e->chunk_count == 0 ||
	    !range_ok(e->chunk_first, e->chunk_count, r->chunk_count))
		return false;
	index_reader_chunk(r, e->chunk_first, &first);
	index_reader_chunk(r, e->chunk_first + e->chunk_count - 1, &last);
	if (first.tar_off > e->data_off ||
	    first.tar_off + first.tar_len <= e->data_off)
		return false;
	return last.tar_off < e->data_off + stored &&
	       last.tar_off + last.tar_len >= e->data_off + stored;
}

/*
 * @next_sparse is the first sparse record no earlier file used: each
 * sparse file's segments must start there, as the writer puts them.
 * Segments shared by many entries would make validation (and every
 * read) cost entries times segments, quadratic in the index's size.
 */
static int validate_entry(struct index_reader *r, uint32_t i,
			  uint32_t *next_sparse, const char **what)
{
	const uint8_t *d = r->entries + (uint64_t)i * 96;
	struct index_entry e;
	uint64_t stored;

	if (d[ENT_KIND] < INDEX_KIND_FILE || d[ENT_KIND] > INDEX_KIND_OPAQUE) {
		*what = "unknown entry kind";
		return -EBADMSG;
	}
	if (!string_ok(r, get_le32(d + ENT_NAME_OFF),
		       get_le32(d + ENT_NAME_LEN)) ||
	    !string_ok(r, get_le32(d + ENT_LINK_OFF),
		       get_le32(d + ENT_LINK_LEN))) {
		*what = "entry name or link out of range";
		return -EBADMSG;
	}
	index_reader_entry(r, i, &e);
	if (!path_ok(e.name, e.name_len) ||
	    (e.name_len == 0 && e.kind != INDEX_KIND_DIR &&
	     e.kind != INDEX_KIND_OPAQUE)) {
		*what = "entry name is not a normalised path";
		return -EBADMSG;
	}
	if (e.kind == INDEX_KIND_HARDLINK &&
	    (e.link_len == 0 || !path_ok(e.link, e.link_len))) {
		*what = "hard link target is not a normalised path";
		return -EBADMSG;
	}
	if ((e.mode & ~07777u) || e.mtime_nsec >= 1000000000u ||
	    (e.flags & ~INDEX_ENTRY_SPARSE)) {
		*what = "bad mode, flags or mtime";
		return -EBADMSG;
	}
	if (!range_ok(e.xattr_first, e.xattr_count, r->xattr_count) ||
	    !range_ok(e.sparse_first, e.sparse_count, r->sparse_count)) {
		*what = "xattr or sparse range out of bounds";
		return -EBADMSG;
	}
	if (e.kind != INDEX_KIND_FILE) {
		if (e.size || e.chunk_count || e.sparse_count || e.flags) {
			*what = "data on an entry that is not a file";
			return -EBADMSG;
		}
		return 0;
	}
	stored = e.size;
	if (!(e.flags & INDEX_ENTRY_SPARSE) && e.sparse_count) {
		*what = "sparse segments on a file not marked sparse";
		return -EBADMSG;
	}
	if (e.sparse_count && e.sparse_first != *next_sparse) {
		*what = "sparse segments shared or out of entry order";
		return -EBADMSG;
	}
	*next_sparse += e.sparse_count;
	if ((e.flags & INDEX_ENTRY_SPARSE) &&
	    sparse_stored(r, e.sparse_first, e.sparse_count, e.size,
			  &stored) < 0) {
		*what = "sparse segments out of order or past the file size";
		return -EBADMSG;
	}
	if (!file_chunks_ok(r, &e, stored)) {
		*what = "file data or its chunk range out of bounds";
		return -EBADMSG;
	}
	return 0;
}

int index_reader_open(const void *data, size_t size,
		      struct index_reader **ret_reader, const char **ret_what)
{
	struct index_reader *r;
	const char *what = NULL;
	int err;

	r = calloc(1, sizeof(*r));
	if (!r) {
		what = "out of memory";
		err = -ENOMEM;
		goto out;
	}
	r->data = data;
	r->size = size;

	err = validate_header(r, &what);
	if (err < 0)
		goto err_free;
	err = validate_sections(r, &what);
	if (err < 0)
		goto err_free;
	err = validate_chunks(r, &what);
	if (err < 0)
		goto err_free;
	err = validate_xattrs(r, &what);
	if (err < 0)
		goto err_free;
	for (uint32_t i = 0, next_sparse = 0; i < r->entry_count; i++) {
		err = validate_entry(r, i, &next_sparse, &what);
		if (err < 0)
			goto err_free;
	}

	*ret_reader = r;
	goto out;

err_free:
	free(r);
out:
	if (ret_what)
		*ret_what = what;
	return err;
}

void index_reader_free(struct index_reader *reader)
{
	free(reader);
}

uint64_t index_reader_tar_size(const struct index_reader *reader)
{
	return reader->tar_size;
}

uint32_t index_reader_entry_count(const struct index_reader *reader)
{
	return reader->entry_count;
}

uint32_t index_reader_chunk_count(const struct index_reader *reader)
{
	return reader->chunk_count;
}

void index_reader_entry(const struct index_reader *reader, uint32_t i,
			struct index_entry *ret_entry)
{
	const uint8_t *d = reader->entries + (uint64_t)i * 96;
	struct index_entry *e = ret_entry;

	e->kind = (enum index_kind)d[ENT_KIND];
	e->flags = get_le32(d + ENT_FLAGS);
	e->name = reader->strings + get_le32(d + ENT_NAME_OFF);
	e->name_len = get_le32(d + ENT_NAME_LEN);
	e->link = reader->strings + get_le32(d + ENT_LINK_OFF);
	e->link_len = get_le32(d + ENT_LINK_LEN);
	e->mode = get_le32(d + ENT_MODE);
	e->uid = get_le32(d + ENT_UID);
	e->gid = get_le32(d + ENT_GID);
	e->dev_major = get_le32(d + ENT_DEV_MAJOR);
	e->dev_minor = get_le32(d + ENT_DEV_MINOR);
	e->size = get_le64(d + ENT_SIZE);
	e->mtime_sec = (int64_t)get_le64(d + ENT_MTIME_SEC);
	e->mtime_nsec = get_le32(d + ENT_MTIME_NSEC);
	e->data_off = get_le64(d + ENT_DATA_OFF);
	e->chunk_first = get_le32(d + ENT_CHUNK_FIRST);
	e->chunk_count = get_le32(d + ENT_CHUNK_COUNT);
	e->xattr_first = get_le32(d + ENT_XATTR_FIRST);
	e->xattr_count = get_le32(d + ENT_XATTR_COUNT);
	e->sparse_first = get_le32(d + ENT_SPARSE_FIRST);
	e->sparse_count = get_le32(d + ENT_SPARSE_COUNT);
}

void index_reader_chunk(const struct index_reader *reader, uint32_t i,
			struct index_chunk *ret_chunk)
{
	const uint8_t *c = reader->chunks + (uint64_t)i * 64;

	ret_chunk->tar_off = get_le64(c + CHK_TAR_OFF);
	ret_chunk->blob_off = get_le64(c + CHK_BLOB_OFF);
	ret_chunk->tar_len = get_le32(c + CHK_TAR_LEN);
	ret_chunk->blob_len = get_le32(c + CHK_BLOB_LEN);
	ret_chunk->sha256 = c + CHK_SHA256;
}

void index_reader_xattr(const struct index_reader *reader, uint32_t i,
			struct index_xattr *ret_xattr)
{
	const uint8_t *x = reader->xattrs + (uint64_t)i * 16;

	ret_xattr->name = reader->strings + get_le32(x);
	ret_xattr->name_len = get_le32(x + 4);
	ret_xattr->value =
		(const uint8_t *)reader->strings + get_le32(x + 8);
	ret_xattr->value_len = get_le32(x + 12);
}

void index_reader_sparse(const struct index_reader *reader, uint32_t i,
			 struct index_sparse *ret_sparse)
{
	const uint8_t *s = reader->sparse + (uint64_t)i * 16;

	ret_sparse->offset = get_le64(s);
	ret_sparse->length = get_le64(s + 8);
}

int index_reader_find_chunk(const struct index_reader *reader,
			    uint64_t tar_off, uint32_t *ret_chunk)
{
	uint32_t lo = 0, hi = reader->chunk_count;

	if (tar_off >= reader->tar_size)
		return -ERANGE;
	/* Chunks tile the tar in order: find the last one starting at or
	 * before tar_off. */
	while (hi - lo > 1) {
		uint32_t mid = lo + (hi - lo) / 2;
		const uint8_t *c = reader->chunks + (uint64_t)mid * 64;

		if (get_le64(c + CHK_TAR_OFF) <= tar_off)
			lo = mid;
		else
			hi = mid;
	}
	*ret_chunk = lo;
	return 0;
}

uint64_t index_entry_stored_size(const struct index_reader *reader,
				 const struct index_entry *entry)
{
	uint64_t stored = 0;

	if (!(entry->flags & INDEX_ENTRY_SPARSE))
		return entry->size;
	for (uint32_t i = 0; i < entry->sparse_count; i++) {
		struct index_sparse s;

		index_reader_sparse(reader, entry->sparse_first + i, &s);
		stored += s.length;
	}
	return stored;
}

const char *index_kind_name(enum index_kind kind)
{
	switch (kind) {
	case INDEX_KIND_FILE:
		return "file";
	case INDEX_KIND_DIR:
		return "dir";
	case INDEX_KIND_SYMLINK:
		return "symlink";
	case INDEX_KIND_HARDLINK:
		return "hardlink";
	case INDEX_KIND_CHAR:
		return "char";
	case INDEX_KIND_BLOCK:
		return "block";
	case INDEX_KIND_FIFO:
		return "fifo";
	case INDEX_KIND_WHITEOUT:
		return "whiteout";
	case INDEX_KIND_OPAQUE:
		return "opaque";
	}
	return "unknown";
}
