/* SPDX-License-Identifier: MIT */
/*
 * scan.c - read a layer tar's entries with libarchive and describe each
 * one in the index.
 *
 * The tar is handed to libarchive as one memory block, so the data blocks
 * it returns point into that block: their position there is the data's
 * offset in the tar, with no bookkeeping of header sizes that differ
 * between tar dialects.  A block that does not point into the tar, or
 * data that is not stored back to back, is refused rather than guessed.
 */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "builder_internal.h"

#define DEV_MAJOR_MAX 4095u
#define DEV_MINOR_MAX 1048575u

struct scan {
	const struct builder_tar *tar;
	struct index_writer *writer;
	struct builder_span *spans;
	uint32_t n_spans, cap_spans;
	struct index_sparse *sparse;
	uint32_t n_sparse, cap_sparse;
	struct index_xattr *xattrs;
	uint32_t cap_xattrs;
	char *name; /* normalised path of the current entry */
	char *link;
	struct builder_layer_stats *stats;
	char *err;
	size_t err_size;
};

/*
 * Normalises a tar path into @out (at least strlen(in)+1 bytes): drops
 * leading "/" and "./", empty and "." components and a trailing slash.
 * Returns -EPERM for a ".." component: a layer may not reach outside the
 * image root.
 */
static int normalise(const char *in, char *out, uint32_t *ret_len)
{
	size_t o = 0;
	const char *p = in;

	while (*p) {
		const char *slash = strchr(p, '/');
		size_t n = slash ? (size_t)(slash - p) : strlen(p);

		if (n == 2 && p[0] == '.' && p[1] == '.')
			return -EPERM;
		if (n > 0 && !(n == 1 && p[0] == '.')) {
			if (o)
				out[o++] = '/';
			memcpy(out + o, p, n);
			o += n;
		}
		p += n;
		if (*p == '/')
			p++;
	}
	out[o] = '\0';
	if (o > UINT32_MAX)
		return -ENAMETOOLONG;
	*ret_len = (uint32_t)o;
	return 0;
}

static int grow(void **arr, uint32_t *cap, uint32_t need, size_t elem)
{
	uint32_t n = *cap ? *cap : 64;
	void *p;

	if (need <= *cap)
		return 0;
	while (n < need)
		n *= 2;
	p = realloc(*arr, (size_t)n * elem);
	if (!p)
		return -ENOMEM;
	*arr = p;
	*cap = n;
	return 0;
}

/* Sets the kind, and for whiteouts rewrites the name to the path they
 * remove (or the directory an opaque marker applies to). */
static int classify(struct archive_entry *ae, struct index_entry *e,
		    char *name)
{
	char *base = strrchr(name, '/');

	base = base ? base + 1 : name;
	if (strncmp(base, ".wh.", 4) == 0) {
		if (strcmp(base, ".wh..wh..opq") == 0) {
			e->kind = INDEX_KIND_OPAQUE;
			base[base == name ? 0 : -1] = '\0';
		} else {
			e->kind = INDEX_KIND_WHITEOUT;
			memmove(base, base + 4, strlen(base + 4) + 1);
			if (!*base || strcmp(base, "..") == 0 ||
			    strcmp(base, ".") == 0)
				return -EPERM;
		}
		e->name_len = (uint32_t)strlen(name);
		return 0;
	}
	if (archive_entry_hardlink(ae)) {
		e->kind = INDEX_KIND_HARDLINK;
		return 0;
	}
	switch (archive_entry_filetype(ae)) {
	case AE_IFREG:
		e->kind = INDEX_KIND_FILE;
		return 0;
	case AE_IFDIR:
		e->kind = INDEX_KIND_DIR;
		return 0;
	case AE_IFLNK:
		e->kind = INDEX_KIND_SYMLINK;
		return 0;
	case AE_IFCHR:
		e->kind = INDEX_KIND_CHAR;
		return 0;
	case AE_IFBLK:
		e->kind = INDEX_KIND_BLOCK;
		return 0;
	case AE_IFIFO:
		e->kind = INDEX_KIND_FIFO;
		return 0;
	}
	return -EOPNOTSUPP;
}

static int collect_xattrs(struct scan *s, struct archive_entry *ae,
			  uint32_t *ret_n)
{
	uint32_t n = 0;
	const char *name;
	const void *value;
	size_t size;

	archive_entry_xattr_reset(ae);
	while (archive_entry_xattr_next(ae, &name, &value, &size) ==
	       ARCHIVE_OK) {
		int err = grow((void **)&s->xattrs, &s->cap_xattrs, n + 1,
			       sizeof(*s->xattrs));

		if (err < 0)
			return err;
		if (size > UINT32_MAX || strlen(name) > UINT32_MAX)
			return -EFBIG;
		s->xattrs[n++] = (struct index_xattr){
			name, (uint32_t)strlen(name), value, (uint32_t)size
		};
	}
	*ret_n = n;
	return 0;
}

/*
 * Appends the data block at logical offset @off of a sparse file of
 * @size bytes to its segments, merging it with the previous one when they
 * touch.  The sparse map is the tar's word: libarchive hands its blocks
 * over as the map says, even past the file's size or backwards, which the
 * index may not hold (the reader refuses it).
 */
static int sparse_add(struct scan *s, uint64_t size, la_int64_t off,
		      size_t len)
{
	struct index_sparse *seg = s->n_sparse ?
					   &s->sparse[s->n_sparse - 1] : NULL;
	uint64_t end = seg ? seg->offset + seg->length : 0;
	int err;

	if (off < 0 || (uint64_t)off < end || len > size ||
	    (uint64_t)off > size - len)
		return -EBADMSG;
	if (seg && end == (uint64_t)off) {
		seg->length += len;
		return 0;
	}
	err = grow((void **)&s->sparse, &s->cap_sparse, s->n_sparse + 1,
		   sizeof(*s->sparse));
	if (err < 0)
		return err;
	s->sparse[s->n_sparse++] = (struct index_sparse){ (uint64_t)off, len };
	return 0;
}

/*
 * Reads the entry's data blocks to find where its bytes sit in the tar.
 * Sets e->data_off and, for a sparse file, the segments in s->sparse.
 */
static int locate_data(struct scan *s, struct archive *a,
		       struct index_entry *e, bool sparse,
		       uint64_t *ret_stored)
{
	const uint8_t *base = s->tar->data;
	uint64_t next = 0, stored = 0;
	const void *buf;
	size_t len;
	la_int64_t off;
	int r;

	s->n_sparse = 0;
	while ((r = archive_read_data_block(a, &buf, &len, &off)) == ARCHIVE_OK) {
		const uint8_t *p = buf;

		if (len == 0)
			continue;
		if (p < base || p + len > base + s->tar->size)
			return -EBADMSG;
		if (stored == 0)
			e->data_off = (uint64_t)(p - base);
		else if ((uint64_t)(p - base) != next)
			return -EBADMSG;
		next = (uint64_t)(p - base) + len;
		if (sparse) {
			int err = sparse_add(s, e->size, off, len);

			if (err < 0)
				return err;
		} else if ((uint64_t)off != stored) {
			return -EBADMSG;
		}
		stored += len;
	}
	if (r != ARCHIVE_EOF)
		return -EIO;
	if (!sparse && stored != e->size)
		return -EBADMSG;
	*ret_stored = stored;
	return 0;
}

static int add_span(struct scan *s, uint64_t off, uint64_t len)
{
	int err;

	if (len == 0)
		return 0;
	err = grow((void **)&s->spans, &s->cap_spans, s->n_spans + 1,
		   sizeof(*s->spans));
	if (err < 0)
		return err;
	s->spans[s->n_spans++] = (struct builder_span){ off, len };
	return 0;
}

static int fill_metadata(struct archive_entry *ae, struct index_entry *e)
{
	la_int64_t uid = archive_entry_uid(ae), gid = archive_entry_gid(ae);
	long nsec;

	if (uid < 0 || uid > UINT32_MAX || gid < 0 || gid > UINT32_MAX)
		return -ERANGE;
	e->uid = (uint32_t)uid;
	e->gid = (uint32_t)gid;
	e->mode = archive_entry_perm(ae) & 07777;
	e->mtime_sec = archive_entry_mtime(ae);
	nsec = archive_entry_mtime_is_set(ae) ? archive_entry_mtime_nsec(ae) : 0;
	if (nsec < 0 || nsec >= 1000000000)
		return -ERANGE;
	/* libarchive reads a PAX time "-S.F" as (-S, F), but it means
	 * -(S + F): the fraction counts towards the past as well. */
	if (e->mtime_sec < 0 && nsec > 0) {
		e->mtime_sec -= 1;
		nsec = 1000000000 - nsec;
	}
	e->mtime_nsec = (uint32_t)nsec;
	return 0;
}

/*
 * Linux keeps 12 bits of major and 20 of minor (a FUSE reply carries 32
 * bits in all); a device number past that would show as another device,
 * so it is refused rather than cut.
 */
static int fill_device(struct archive_entry *ae, struct index_entry *e)
{
	dev_t major = archive_entry_rdevmajor(ae);
	dev_t minor = archive_entry_rdevminor(ae);

	if (e->kind != INDEX_KIND_CHAR && e->kind != INDEX_KIND_BLOCK)
		return 0;
	if (major > DEV_MAJOR_MAX || minor > DEV_MINOR_MAX)
		return -ERANGE;
	e->dev_major = (uint32_t)major;
	e->dev_minor = (uint32_t)minor;
	return 0;
}

/* Names the entry's link target, normalised for a hard link. */
static int fill_link(struct scan *s, struct archive_entry *ae,
		     struct index_entry *e)
{
	const char *t = e->kind == INDEX_KIND_HARDLINK ?
				archive_entry_hardlink(ae) :
				archive_entry_symlink(ae);
	int err;

	if (e->kind != INDEX_KIND_HARDLINK && e->kind != INDEX_KIND_SYMLINK)
		return 0;
	if (!t)
		return -EBADMSG;
	free(s->link);
	s->link = malloc(strlen(t) + 1);
	if (!s->link)
		return -ENOMEM;
	if (e->kind == INDEX_KIND_SYMLINK) {
		strcpy(s->link, t);
		e->link_len = (uint32_t)strlen(t);
	} else {
		err = normalise(t, s->link, &e->link_len);
		if (err < 0)
			return err;
		if (e->link_len == 0)
			return -EPERM;
	}
	e->link = s->link;
	return 0;
}

static int scan_entry(struct scan *s, struct archive *a,
		      struct archive_entry *ae, const char **what)
{
	struct index_entry e = { 0 };
	const char *path = archive_entry_pathname(ae);
	uint32_t n_xattrs = 0;
	uint64_t stored = 0;
	bool sparse;
	int err;

	*what = "unreadable path";
	if (!path)
		return -EBADMSG;
	free(s->name);
	s->name = malloc(strlen(path) + 1);
	if (!s->name)
		return -ENOMEM;
	*what = "path climbs out of the image root";
	err = normalise(path, s->name, &e.name_len);
	if (err < 0)
		return err;
	*what = "unsupported entry type (socket?) or bad whiteout";
	err = classify(ae, &e, s->name);
	if (err < 0)
		return err;
	e.name = s->name;
	if (e.name_len == 0 && e.kind != INDEX_KIND_DIR &&
	    e.kind != INDEX_KIND_OPAQUE)
		return e.kind == INDEX_KIND_WHITEOUT ? -EPERM : -EINVAL;
	*what = "owner or mtime out of range";
	err = fill_metadata(ae, &e);
	if (err < 0)
		return err;
	*what = "device number past 4095:1048575, more than Linux can hold";
	err = fill_device(ae, &e);
	if (err < 0)
		return err;
	*what = "bad link target";
	err = fill_link(s, ae, &e);
	if (err < 0)
		return err;
	*what = "bad extended attributes";
	err = collect_xattrs(s, ae, &n_xattrs);
	if (err < 0)
		return err;

	s->n_sparse = 0;
	sparse = e.kind == INDEX_KIND_FILE && archive_entry_sparse_count(ae) > 0;
	if (e.kind == INDEX_KIND_FILE) {
		*what = "negative file size";
		if (archive_entry_size(ae) < 0)
			return -EBADMSG;
		e.size = (uint64_t)archive_entry_size(ae);
		*what = "cannot locate the entry's data in the tar";
		err = locate_data(s, a, &e, sparse, &stored);
		if (err < 0)
			return err;
		if (sparse)
			e.flags |= INDEX_ENTRY_SPARSE;
		err = add_span(s, e.data_off, stored);
		if (err < 0)
			return err;
		s->stats->files++;
	}
	*what = "cannot add the entry to the index";
	return index_writer_add_entry(s->writer, &e, s->xattrs, n_xattrs,
				      s->sparse, s->n_sparse);
}

static void scan_free(struct scan *s)
{
	free(s->sparse);
	free(s->xattrs);
	free(s->name);
	free(s->link);
}

int builder_scan_tar(const struct builder_tar *tar,
		     struct index_writer *writer, struct builder_span **ret_spans,
		     uint32_t *ret_n_spans, struct builder_layer_stats *stats,
		     char *err, size_t err_size)
{
	struct scan s = { .tar = tar, .writer = writer, .stats = stats,
			  .err = err, .err_size = err_size };
	struct archive_entry *ae;
	struct archive *a;
	const char *what = NULL;
	int r, ret = 0;

	a = archive_read_new();
	if (!a)
		return -ENOMEM;
	archive_read_support_format_tar(a);
	archive_read_support_format_gnutar(a);
	/* A layer may be a tar of no bytes at all (nothing changed). */
	archive_read_support_format_empty(a);
	if (archive_read_open_memory(a, tar->data, tar->size) != ARCHIVE_OK) {
		ret = builder_err(err, err_size, -EBADMSG, "not a tar: %s",
				  archive_error_string(a));
		goto out;
	}
	while ((r = archive_read_next_header(a, &ae)) != ARCHIVE_EOF) {
		/* ARCHIVE_RETRY means libarchive skipped a damaged header
		 * (bad checksum) to look for the next one: for a layer that
		 * is corruption, never something to step over. */
		if (r != ARCHIVE_OK && r != ARCHIVE_WARN) {
			ret = builder_err(err, err_size, -EBADMSG,
					  "bad tar header after entry %u: %s",
					  stats->entries,
					  archive_error_string(a));
			goto out;
		}
		ret = scan_entry(&s, a, ae, &what);
		if (ret < 0) {
			const char *p = archive_entry_pathname(ae);

			builder_err(err, err_size, ret,
				    "tar entry %u '%s' at offset %jd: %s",
				    stats->entries, p ? p : "?",
				    (intmax_t)archive_read_header_position(a),
				    what);
			goto out;
		}
		stats->entries++;
	}
	*ret_spans = s.spans;
	*ret_n_spans = s.n_spans;
	s.spans = NULL;
out:
	free(s.spans);
	scan_free(&s);
	archive_read_free(a);
	return ret;
}
