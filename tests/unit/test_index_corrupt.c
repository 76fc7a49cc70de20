/* SPDX-License-Identifier: MIT */
/*
 * test_index_corrupt.c CASE - one corrupt index per case, each refused
 * with the right error and a reason, never read past its end.
 *
 * Each case starts from a valid index and damages one thing.  The index
 * is copied into a buffer of exactly its size, so an out-of-bounds read
 * shows up under the sanitizers.
 */
#include "helpers.h"
#include "index/index_internal.h"

static uint8_t *idx;
static size_t idx_size;

static void build(void)
{
	struct index_writer *w;
	struct index_entry e = { 0 };
	struct index_xattr x = { "user.a", 6, (const uint8_t *)"v", 1 };
	struct index_sparse seg = { 100, 200 };
	void *data;

	CHECK(index_writer_new(&w) == 0);
	t_add(w, INDEX_KIND_DIR, "", NULL, 0, 0);
	e.kind = INDEX_KIND_FILE;
	e.name = "etc/passwd";
	e.name_len = 10;
	e.size = 1000;
	e.data_off = 512;
	e.mode = 0644;
	CHECK(index_writer_add_entry(w, &e, &x, 1, NULL, 0) == 0);
	/* Two sparse files of one segment each, for sparse-shared. */
	e.flags = INDEX_ENTRY_SPARSE;
	e.name = "a.img";
	e.name_len = 5;
	e.data_off = 1536;
	CHECK(index_writer_add_entry(w, &e, NULL, 0, &seg, 1) == 0);
	e.name = "b.img";
	e.data_off = 2048;
	CHECK(index_writer_add_entry(w, &e, NULL, 0, &seg, 1) == 0);
	t_chunks(w, 4096, 1024);
	CHECK(index_writer_finish(w, 4096, &data, &idx_size) == 0);
	idx = malloc(idx_size);
	memcpy(idx, data, idx_size);
	free(data);
	index_writer_free(w);
}

static uint8_t *entry(uint32_t i)
{
	return idx + get_le64(idx + HDR_ENTRIES_OFF) + (size_t)i * 96;
}

static uint8_t *chunk(uint32_t i)
{
	return idx + get_le64(idx + HDR_CHUNKS_OFF) + (size_t)i * 64;
}

static int open_size(size_t size)
{
	struct index_reader *r = NULL;
	const char *what = NULL;
	uint8_t *copy = malloc(size ? size : 1);
	int err;

	memcpy(copy, idx, size);
	err = index_reader_open(copy, size, &r, &what);
	if (err < 0) {
		CHECK(what != NULL);
		fprintf(stderr, "refused: %s (%s)\n", what, strerror(-err));
	}
	index_reader_free(r);
	free(copy);
	return err;
}

static int damage(const char *c)
{
	if (!strcmp(c, "valid"))
		return 0;
	if (!strcmp(c, "bad-magic"))
		idx[0] ^= 0xff;
	else if (!strcmp(c, "bad-version"))
		put_le32(idx + HDR_VERSION, 2);
	else if (!strcmp(c, "truncated-header"))
		return open_size(100);
	else if (!strcmp(c, "truncated"))
		return open_size(idx_size - 1);
	else if (!strcmp(c, "empty"))
		return open_size(0);
	else if (!strcmp(c, "reserved-set"))
		idx[HDR_RESERVED + 5] = 1;
	else if (!strcmp(c, "entries-past-end"))
		put_le64(idx + HDR_ENTRIES_OFF, idx_size - 10);
	else if (!strcmp(c, "offset-huge"))
		put_le64(idx + HDR_CHUNKS_OFF, UINT64_MAX - 8);
	else if (!strcmp(c, "count-overflow"))
		put_le32(idx + HDR_ENTRY_COUNT, UINT32_MAX);
	else if (!strcmp(c, "strings-past-end"))
		put_le64(idx + HDR_STRINGS_SIZE, idx_size);
	else if (!strcmp(c, "name-past-strings"))
		put_le32(entry(1) + ENT_NAME_OFF, UINT32_MAX - 2);
	else if (!strcmp(c, "name-unterminated"))
		put_le32(entry(1) + ENT_NAME_LEN, 11);
	else if (!strcmp(c, "name-dotdot"))
		memcpy(idx + get_le64(idx + HDR_STRINGS_OFF) +
			       get_le32(entry(1) + ENT_NAME_OFF), "../passwd", 9);
	else if (!strcmp(c, "bad-kind"))
		entry(1)[ENT_KIND] = 42;
	else if (!strcmp(c, "bad-mode"))
		put_le32(entry(1) + ENT_MODE, 0100644);
	else if (!strcmp(c, "data-past-tar"))
		put_le64(entry(1) + ENT_DATA_OFF, 4000);
	else if (!strcmp(c, "chunk-range-wrong"))
		put_le32(entry(1) + ENT_CHUNK_COUNT, 3);
	else if (!strcmp(c, "chunk-range-overflow"))
		put_le32(entry(1) + ENT_CHUNK_FIRST, UINT32_MAX);
	else if (!strcmp(c, "xattr-range-overflow"))
		put_le32(entry(1) + ENT_XATTR_FIRST, UINT32_MAX);
	else if (!strcmp(c, "chunk-gap"))
		put_le64(chunk(2) + CHK_TAR_OFF, 2049);
	else if (!strcmp(c, "chunk-too-big"))
		put_le32(chunk(3) + CHK_TAR_LEN, INDEX_CHUNK_MAX + 1);
	else if (!strcmp(c, "chunk-blob-gap"))
		put_le64(chunk(1) + CHK_BLOB_OFF, 7);
	else if (!strcmp(c, "tar-size-mismatch"))
		put_le64(idx + HDR_TAR_SIZE, 8192);
	else if (!strcmp(c, "dir-with-data"))
		put_le64(entry(0) + ENT_SIZE, 10);
	else if (!strcmp(c, "sparse-shared"))
		put_le32(entry(3) + ENT_SPARSE_FIRST, 0); /* a.img's segment */
	else {
		fprintf(stderr, "unknown case %s\n", c);
		exit(T_FAIL);
	}
	return open_size(idx_size);
}

int main(int argc, char **argv)
{
	int err;

	if (argc != 2) {
		fprintf(stderr, "usage: test_index_corrupt CASE\n");
		return T_FAIL;
	}
	build();
	err = damage(argv[1]);
	if (!strcmp(argv[1], "valid"))
		CHECK(open_size(idx_size) == 0);
	else if (!strcmp(argv[1], "bad-version"))
		CHECK(err == -EPROTONOSUPPORT);
	else
		CHECK(err == -EBADMSG);
	free(idx);
	return T_PASS;
}
