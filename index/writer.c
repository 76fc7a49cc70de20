/* SPDX-License-Identifier: MIT */
/*
 * writer.c - build a layer index in memory and encode it.
 *
 * Records are kept in their on-disk form as they are added; finish() only
 * fills in each file's chunk range and lays the sections out after the
 * header.  Strings are stored NUL-terminated so that readers can hand
 * them to C APIs in place.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "index.h"
#include "index_internal.h"

struct growbuf {
	uint8_t *data;
	size_t len;
	size_t cap;
};

struct index_writer {
	struct growbuf entries;
	struct growbuf chunks;
	struct growbuf xattrs;
	struct growbuf sparse;
	struct growbuf strings;
	uint32_t n_entries;
	uint32_t n_chunks;
	uint32_t n_xattrs;
	uint32_t n_sparse;
	uint64_t tar_end; /* end of the last chunk added, in the tar */
	uint64_t blob_end; /* and in the blob */
};

/* Reserves @n zeroed bytes at the end of @b; returns them or NULL. */
static uint8_t *growbuf_append(struct growbuf *b, size_t n)
{
	if (n > SIZE_MAX - b->len)
		return NULL;
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		uint8_t *p;

		while (cap < b->len + n)
			cap *= 2;
		p = realloc(b->data, cap);
		if (!p)
			return NULL;
		b->data = p;
		b->cap = cap;
	}
	memset(b->data + b->len, 0, n);
	b->len += n;
	return b->data + b->len - n;
}

/* Copies @len bytes plus a NUL into the strings; returns the offset. */
static int add_string(struct index_writer *w, const void *s, uint32_t len,
		      uint32_t *ret_off)
{
	size_t off = w->strings.len;
	uint8_t *p;

	if (off + len + 1 > UINT32_MAX)
		return -EFBIG;
	p = growbuf_append(&w->strings, (size_t)len + 1);
	if (!p)
		return -ENOMEM;
	if (len)
		memcpy(p, s, len);
	*ret_off = (uint32_t)off;
	return 0;
}

int index_writer_new(struct index_writer **ret_writer)
{
	struct index_writer *w = calloc(1, sizeof(*w));
	uint32_t off;

	if (!w)
		return -ENOMEM;
	/* Offset 0 is the empty string, shared by every empty field. */
	if (add_string(w, "", 0, &off) < 0) {
		free(w);
		return -ENOMEM;
	}
	*ret_writer = w;
	return 0;
}

void index_writer_free(struct index_writer *writer)
{
	if (!writer)
		return;
	free(writer->entries.data);
	free(writer->chunks.data);
	free(writer->xattrs.data);
	free(writer->sparse.data);
	free(writer->strings.data);
	free(writer);
}

static int add_xattrs(struct index_writer *w, const struct index_xattr *x,
		      uint32_t n)
{
	for (uint32_t i = 0; i < n; i++) {
		uint32_t noff, voff;
		uint8_t *d;
		int err;

		err = add_string(w, x[i].name, x[i].name_len, &noff);
		if (err < 0)
			return err;
		err = add_string(w, x[i].value, x[i].value_len, &voff);
		if (err < 0)
			return err;
		d = growbuf_append(&w->xattrs, sizeof(struct index_disk_xattr));
		if (!d)
			return -ENOMEM;
		put_le32(d, noff);
		put_le32(d + 4, x[i].name_len);
		put_le32(d + 8, voff);
		put_le32(d + 12, x[i].value_len);
	}
	return 0;
}

static int add_sparse(struct index_writer *w, const struct index_sparse *s,
		      uint32_t n)
{
	for (uint32_t i = 0; i < n; i++) {
		uint8_t *d = growbuf_append(&w->sparse, 16);

		if (!d)
			return -ENOMEM;
		put_le64(d, s[i].offset);
		put_le64(d + 8, s[i].length);
	}
	return 0;
}

int index_writer_add_entry(struct index_writer *writer,
			   const struct index_entry *entry,
			   const struct index_xattr *xattrs, uint32_t n_xattrs,
			   const struct index_sparse *sparse,
			   uint32_t n_sparse)
{
	struct index_writer *w = writer;
	uint32_t name_off, link_off = 0;
	uint8_t *d;
	int err;

	if (w->n_entries == UINT32_MAX ||
	    (uint64_t)w->n_xattrs + n_xattrs > UINT32_MAX ||
	    (uint64_t)w->n_sparse + n_sparse > UINT32_MAX)
		return -EFBIG;
	err = add_string(w, entry->name, entry->name_len, &name_off);
	if (err < 0)
		return err;
	if (entry->link_len) {
		err = add_string(w, entry->link, entry->link_len, &link_off);
		if (err < 0)
			return err;
	}
	err = add_xattrs(w, xattrs, n_xattrs);
	if (err < 0)
		return err;
	err = add_sparse(w, sparse, n_sparse);
	if (err < 0)
		return err;

	d = growbuf_append(&w->entries, sizeof(struct index_disk_entry));
	if (!d)
		return -ENOMEM;
	put_le64(d + ENT_DATA_OFF, entry->data_off);
	put_le64(d + ENT_SIZE, entry->size);
	put_le64(d + ENT_MTIME_SEC, (uint64_t)entry->mtime_sec);
	put_le32(d + ENT_MTIME_NSEC, entry->mtime_nsec);
	put_le32(d + ENT_MODE, entry->mode);
	put_le32(d + ENT_UID, entry->uid);
	put_le32(d + ENT_GID, entry->gid);
	d[ENT_KIND] = (uint8_t)entry->kind;
	put_le32(d + ENT_FLAGS, entry->flags);
	put_le32(d + ENT_DEV_MAJOR, entry->dev_major);
	put_le32(d + ENT_DEV_MINOR, entry->dev_minor);
	put_le32(d + ENT_NAME_OFF, name_off);
	put_le32(d + ENT_NAME_LEN, entry->name_len);
	put_le32(d + ENT_LINK_OFF, link_off);
	put_le32(d + ENT_LINK_LEN, entry->link_len);
	put_le32(d + ENT_XATTR_FIRST, w->n_xattrs);
	put_le32(d + ENT_XATTR_COUNT, n_xattrs);
	put_le32(d + ENT_SPARSE_FIRST, n_sparse ? w->n_sparse : 0);
	put_le32(d + ENT_SPARSE_COUNT, n_sparse);
	w->n_xattrs += n_xattrs;
	w->n_sparse += n_sparse;
	w->n_entries++;
	return 0;
}

int index_writer_add_chunk(struct index_writer *writer,
			   const struct index_chunk *chunk)
{
	struct index_writer *w = writer;
	uint8_t *d;

	if (chunk->tar_off != w->tar_end || chunk->blob_off != w->blob_end ||
	    chunk->tar_len == 0 || chunk->tar_len > INDEX_CHUNK_MAX)
		return -EINVAL;
	if (w->n_chunks == UINT32_MAX)
		return -EFBIG;
	d = growbuf_append(&w->chunks, sizeof(struct index_disk_chunk));
	if (!d)
		return -ENOMEM;
	put_le64(d + CHK_TAR_OFF, chunk->tar_off);
	put_le64(d + CHK_BLOB_OFF, chunk->blob_off);
	put_le32(d + CHK_TAR_LEN, chunk->tar_len);
	put_le32(d + CHK_BLOB_LEN, chunk->blob_len);
	memcpy(d + CHK_SHA256, chunk->sha256, 32);
	w->tar_end += chunk->tar_len;
	w->blob_end += chunk->blob_len;
	w->n_chunks++;
	return 0;
}

/* First chunk whose end lies past @off (chunks are sorted, tiling). */
static uint32_t chunk_at(const struct index_writer *w, uint64_t off)
{
	uint32_t lo = 0, hi = w->n_chunks;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		const uint8_t *c = w->chunks.data + (size_t)mid * 64;

		if (get_le64(c + CHK_TAR_OFF) + get_le32(c + CHK_TAR_LEN) <= off)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Fills each file's chunk range from its data offset and stored size. */
static int assign_chunk_ranges(struct index_writer *w)
{
	for (uint32_t i = 0; i < w->n_entries; i++) {
		uint8_t *d = w->entries.data + (size_t)i * 96;
		uint64_t off = get_le64(d + ENT_DATA_OFF), stored;
		uint32_t first, last;

		if (d[ENT_KIND] != INDEX_KIND_FILE)
			continue;
		stored = get_le64(d + ENT_SIZE);
		if (get_le32(d + ENT_FLAGS) & INDEX_ENTRY_SPARSE) {
			uint32_t sf = get_le32(d + ENT_SPARSE_FIRST);
			uint32_t sc = get_le32(d + ENT_SPARSE_COUNT);

			stored = 0;
			for (uint32_t k = sf; k < sf + sc; k++)
				stored += get_le64(w->sparse.data +
						   (size_t)k * 16 + 8);
		}
		if (stored == 0)
			continue;
		if (off + stored > w->tar_end)
			return -EINVAL;
		first = chunk_at(w, off);
		last = chunk_at(w, off + stored - 1);
		put_le32(d + ENT_CHUNK_FIRST, first);
		put_le32(d + ENT_CHUNK_COUNT, last - first + 1);
	}
	return 0;
}

static uint64_t align8(uint64_t v)
{
	return (v + 7) & ~(uint64_t)7;
}

int index_writer_finish(struct index_writer *writer, uint64_t tar_size,
			void **ret_data, size_t *ret_size)
{
	struct index_writer *w = writer;
	uint64_t eo, co, xo, so, to, total;
	uint8_t *out, *h;
	int err;

	if (tar_size != w->tar_end)
		return -EINVAL;
	err = assign_chunk_ranges(w);
	if (err < 0)
		return err;

	eo = sizeof(struct index_disk_header);
	co = align8(eo + w->entries.len);
	xo = align8(co + w->chunks.len);
	so = align8(xo + w->xattrs.len);
	to = align8(so + w->sparse.len);
	total = to + w->strings.len;
	out = calloc(1, total);
	if (!out)
		return -ENOMEM;

	h = out;
	memcpy(h, INDEX_MAGIC, 8);
	put_le32(h + HDR_VERSION, INDEX_VERSION);
	put_le32(h + HDR_HEADER_SIZE, sizeof(struct index_disk_header));
	put_le64(h + HDR_INDEX_SIZE, total);
	put_le64(h + HDR_TAR_SIZE, tar_size);
	put_le32(h + HDR_ENTRY_COUNT, w->n_entries);
	put_le32(h + HDR_CHUNK_COUNT, w->n_chunks);
	put_le32(h + HDR_XATTR_COUNT, w->n_xattrs);
	put_le32(h + HDR_SPARSE_COUNT, w->n_sparse);
	put_le64(h + HDR_ENTRIES_OFF, eo);
	put_le64(h + HDR_CHUNKS_OFF, co);
	put_le64(h + HDR_XATTRS_OFF, xo);
	put_le64(h + HDR_SPARSE_OFF, so);
	put_le64(h + HDR_STRINGS_OFF, to);
	put_le64(h + HDR_STRINGS_SIZE, w->strings.len);
	if (w->entries.len)
		memcpy(out + eo, w->entries.data, w->entries.len);
	if (w->chunks.len)
		memcpy(out + co, w->chunks.data, w->chunks.len);
	if (w->xattrs.len)
		memcpy(out + xo, w->xattrs.data, w->xattrs.len);
	if (w->sparse.len)
		memcpy(out + so, w->sparse.data, w->sparse.len);
	memcpy(out + to, w->strings.data, w->strings.len);

	*ret_data = out;
	*ret_size = total;
	return 0;
}
