/* SPDX-License-Identifier: MIT */
/*
 * fuzz_tar.c - the layer reader: builder_scan_tar() on a tar in memory,
 * then the chunk plan, then the index the builder would write.
 *
 * The builder must refuse a tar or describe it with an index that its
 * own reader accepts: a layer that builds but cannot be mounted is a bug
 * of the builder, whatever the tar held.  Frames are not compressed here
 * (each chunk is given its tar length as blob length), which the reader
 * accepts as well.
 */
#include <string.h>

#include "builder/builder_internal.h"
#include "fuzz.h"

/* Adds one chunk per planned range and encodes the index. */
static void encode(const struct builder_tar *tar, struct index_writer *w,
		   const uint64_t *ends, uint32_t n_chunks)
{
	static const uint8_t zero_hash[32];
	struct index_reader *r;
	const char *what = NULL;
	uint64_t start = 0;
	size_t index_size;
	void *index;

	for (uint32_t i = 0; i < n_chunks; i++) {
		struct index_chunk c = {
			.tar_off = start,
			.blob_off = start,
			.tar_len = (uint32_t)(ends[i] - start),
			.blob_len = (uint32_t)(ends[i] - start),
			.sha256 = zero_hash,
		};

		FUZZ_CHECK(ends[i] > start &&
			   ends[i] - start <= INDEX_CHUNK_MAX);
		FUZZ_CHECK(index_writer_add_chunk(w, &c) == 0);
		start = ends[i];
	}
	FUZZ_CHECK(start == tar->size);
	FUZZ_CHECK(index_writer_finish(w, tar->size, &index, &index_size) == 0);
	if (index_reader_open(index, index_size, &r, &what) < 0) {
		fprintf(stderr, "built index refused: %s\n", what);
		abort();
	}
	index_reader_free(r);
	free(index);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct builder_tar tar = { .data = data, .size = size };
	struct builder_layer_stats stats = { 0 };
	struct builder_span *spans = NULL;
	struct index_writer *w;
	uint64_t *ends = NULL;
	uint32_t n_spans = 0, n_chunks = 0;
	char err[256];

	if (index_writer_new(&w) < 0)
		return 0;
	if (builder_scan_tar(&tar, w, &spans, &n_spans, &stats, err,
			     sizeof(err)) < 0)
		goto out;
	for (uint32_t i = 0; i < n_spans; i++)
		FUZZ_CHECK(spans[i].off <= size &&
			   spans[i].len <= size - spans[i].off);
	if (builder_chunk_plan(&tar, spans, n_spans, &ends, &n_chunks) < 0)
		goto out;
	encode(&tar, w, ends, n_chunks);

out:
	free(ends);
	free(spans);
	index_writer_free(w);
	return 0;
}
