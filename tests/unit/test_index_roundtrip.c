/* SPDX-License-Identifier: MIT */
/*
 * test_index_roundtrip.c - what the writer encodes, the reader gives back:
 * every field, xattrs with binary values, sparse segments and the chunk
 * ranges the writer computes for each file.
 */
#include "helpers.h"

int main(void)
{
	struct index_writer *w;
	struct index_reader *r;
	struct index_entry e = { 0 }, got;
	struct index_chunk c;
	struct index_xattr x[2] = {
		{ "security.capability", 19, (const uint8_t *)"\x01\x00\x02", 3 },
		{ "user.empty", 10, (const uint8_t *)"", 0 },
	};
	struct index_sparse sp[2] = { { 4096, 100 }, { 1 << 20, 50 } };
	struct index_xattr gx;
	struct index_sparse gs;
	const char *what;
	void *data;
	size_t size;
	uint32_t k;

	CHECK(index_writer_new(&w) == 0);
	t_add(w, INDEX_KIND_DIR, "", NULL, 0, 0);
	e.kind = INDEX_KIND_FILE;
	e.name = "usr/bin/su";
	e.name_len = 10;
	e.mode = 04755;
	e.uid = 4000000000u;
	e.gid = 7;
	e.size = 300000;
	e.data_off = 512;
	e.mtime_sec = -5;
	e.mtime_nsec = 999999999;
	CHECK(index_writer_add_entry(w, &e, x, 2, NULL, 0) == 0);
	e.name = "sparse";
	e.name_len = 6;
	e.flags = INDEX_ENTRY_SPARSE;
	e.size = 2 << 20;
	e.data_off = 300000 + 1024;
	CHECK(index_writer_add_entry(w, &e, NULL, 0, sp, 2) == 0);
	t_add(w, INDEX_KIND_HARDLINK, "su2", "usr/bin/su", 0, 0);
	t_add(w, INDEX_KIND_SYMLINK, "lnk", "../../x y", 0, 0);
	t_chunks(w, 400000, 65536);
	CHECK(index_writer_finish(w, 400000, &data, &size) == 0);
	CHECK(index_reader_open(data, size, &r, &what) == 0);

	CHECK(index_reader_entry_count(r) == 5);
	CHECK(index_reader_tar_size(r) == 400000);
	index_reader_entry(r, 1, &got);
	CHECK(got.kind == INDEX_KIND_FILE && got.mode == 04755);
	CHECK(strcmp(got.name, "usr/bin/su") == 0 && got.uid == 4000000000u);
	CHECK(got.mtime_sec == -5 && got.mtime_nsec == 999999999);
	CHECK(got.chunk_first == 0 && got.chunk_count == 5);
	CHECK(got.xattr_count == 2);
	index_reader_xattr(r, got.xattr_first, &gx);
	CHECK(gx.value_len == 3 && memcmp(gx.value, "\x01\x00\x02", 3) == 0);
	CHECK(strcmp(gx.name, "security.capability") == 0);
	index_reader_entry(r, 2, &got);
	CHECK(got.flags & INDEX_ENTRY_SPARSE);
	CHECK(index_entry_stored_size(r, &got) == 150);
	CHECK(got.sparse_count == 2);
	index_reader_sparse(r, got.sparse_first + 1, &gs);
	CHECK(gs.offset == 1 << 20 && gs.length == 50);
	CHECK(got.chunk_first == 4 && got.chunk_count == 1);
	index_reader_entry(r, 3, &got);
	CHECK(got.kind == INDEX_KIND_HARDLINK);
	CHECK(strcmp(got.link, "usr/bin/su") == 0);
	CHECK(index_reader_find_chunk(r, 65536, &k) == 0 && k == 1);
	CHECK(index_reader_find_chunk(r, 65535, &k) == 0 && k == 0);
	CHECK(index_reader_find_chunk(r, 400000, &k) == -ERANGE);
	index_reader_chunk(r, 6, &c);
	CHECK(c.tar_off == 6 * 65536 && c.tar_len == 400000 - 6 * 65536);

	index_reader_free(r);
	free(data);
	index_writer_free(w);
	return T_PASS;
}
