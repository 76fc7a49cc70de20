/* SPDX-License-Identifier: MIT */
/*
 * fuzz_index.c - the layer index decoder and the blob trailer parser.
 *
 * The input is taken three ways: as a whole index (index_reader_open),
 * as the tail of a blob (index_blob_tail_parse), and as a locator frame.
 * An index that opens is then read through every accessor and merged
 * into a tree, once alone and once over itself, since the daemon does
 * both with what a blob holds; what the reader promises (accessors need
 * no checks once open succeeds) is checked here.
 */
#include <errno.h>
#include <string.h>

#include "fuzz.h"
#include "index/index.h"
#include "index/tree.h"

static void walk_entries(const struct index_reader *r)
{
	uint32_t n_chunks = index_reader_chunk_count(r);

	for (uint32_t i = 0; i < index_reader_entry_count(r); i++) {
		struct index_entry e;
		uint64_t stored;

		index_reader_entry(r, i, &e);
		FUZZ_CHECK(e.name[e.name_len] == '\0');
		FUZZ_CHECK(e.link[e.link_len] == '\0');
		for (uint32_t k = 0; k < e.xattr_count; k++) {
			struct index_xattr x;

			index_reader_xattr(r, e.xattr_first + k, &x);
			FUZZ_CHECK(x.name[x.name_len] == '\0');
			FUZZ_CHECK(x.value[x.value_len] == '\0');
		}
		stored = index_entry_stored_size(r, &e);
		FUZZ_CHECK(stored <= e.size || e.kind != INDEX_KIND_FILE);
		if (e.kind == INDEX_KIND_FILE && stored)
			FUZZ_CHECK((uint64_t)e.chunk_first + e.chunk_count <=
				   n_chunks);
	}
}

/* find_chunk must name the chunk that holds the offset. */
static void check_find(const struct index_reader *r, uint64_t off)
{
	struct index_chunk c;
	uint32_t no;

	if (index_reader_find_chunk(r, off, &no) < 0) {
		FUZZ_CHECK(off >= index_reader_tar_size(r));
		return;
	}
	FUZZ_CHECK(no < index_reader_chunk_count(r));
	index_reader_chunk(r, no, &c);
	FUZZ_CHECK(c.tar_off <= off && off - c.tar_off < c.tar_len);
}

static void walk_chunks(const struct index_reader *r)
{
	uint64_t tar_size = index_reader_tar_size(r);

	for (uint32_t i = 0; i < index_reader_chunk_count(r); i++) {
		struct index_chunk c;

		index_reader_chunk(r, i, &c);
		check_find(r, c.tar_off);
		check_find(r, c.tar_off + c.tar_len - 1);
	}
	check_find(r, tar_size);
	check_find(r, tar_size / 2);
}

/* Visits the tree breadth first; every child must be found again by name
 * and have attributes. */
static void walk_tree(const struct index_tree *t)
{
	uint64_t n = index_tree_inode_count(t);

	for (uint64_t ino = 1; ino <= n; ino++) {
		struct index_tree_attr a;
		uint32_t count;

		FUZZ_CHECK(index_tree_attr(t, ino, &a) == 0);
		if (a.kind != INDEX_KIND_DIR)
			continue;
		FUZZ_CHECK(index_tree_dir_size(t, ino, &count) == 0);
		for (uint32_t pos = 0; pos < count; pos++) {
			const char *name;
			uint64_t child, again;

			FUZZ_CHECK(index_tree_dir_child(t, ino, pos, &name,
							&child) == 0);
			FUZZ_CHECK(child >= 1 && child <= n);
			FUZZ_CHECK(index_tree_lookup(t, ino, name, strlen(name),
						     &again) == 0);
			FUZZ_CHECK(again == child);
		}
	}
}

static void merge(const struct index_reader *r, uint32_t n_layers)
{
	const struct index_reader *layers[2] = { r, r };
	struct index_tree *t;
	struct index_tree_error e;

	if (index_tree_build(layers, n_layers, &t, &e) < 0)
		return;
	walk_tree(t);
	index_tree_free(t);
}

static void tail(const uint8_t *data, size_t size)
{
	struct index_locator loc;
	uint64_t need, blob_size;
	int r;

	/* The first byte stretches the blob beyond the tail we hold, so that
	 * both "read more" and offsets before the tail are reached. */
	blob_size = size + (size ? (uint64_t)data[0] << 12 : 0);
	r = index_blob_tail_parse(data, size, blob_size, &loc, &need);
	if (r == 0)
		FUZZ_CHECK(loc.offset <= blob_size &&
			   loc.size <= blob_size - loc.offset);
	else if (r == -EAGAIN)
		FUZZ_CHECK(need > size && need <= blob_size);
	index_locator_decode(data, size, &loc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct index_reader *r;
	const char *what;

	tail(data, size);
	if (index_reader_open(data, size, &r, &what) < 0) {
		FUZZ_CHECK(what != NULL);
		return 0;
	}
	walk_entries(r);
	walk_chunks(r);
	merge(r, 1);
	merge(r, 2);
	index_reader_free(r);
	return 0;
}
