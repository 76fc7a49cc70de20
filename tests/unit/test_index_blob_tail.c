/* SPDX-License-Identifier: MIT */
/*
 * test_index_blob_tail.c - the blob trailer parser finds the locator in a
 * valid tail, asks for more bytes when the seek table is longer than the
 * tail it has, and refuses a footer counting more frames than a blob may
 * have before anyone sizes a buffer from it (it used to ask for up to
 * 1.5 GiB of tail from a 9-byte footer).
 */
#include "helpers.h"

#define N_FRAMES 3

/* A tail: locator frame, then a seek table of N_FRAMES frames. */
static size_t make_tail(uint8_t *out, const struct index_locator *loc)
{
	uint32_t sizes[N_FRAMES] = { 100, 200, INDEX_LOCATOR_FRAME_SIZE };
	uint32_t tars[N_FRAMES] = { 1000, 0, 0 };
	size_t st = (size_t)index_seektable_frame_size(N_FRAMES);

	index_locator_encode(loc, out);
	CHECK(index_seektable_encode(sizes, tars, N_FRAMES,
				     out + INDEX_LOCATOR_FRAME_SIZE, st) == 0);
	return INDEX_LOCATOR_FRAME_SIZE + st;
}

/* Rewrites the footer's frame count. */
static void set_frames(uint8_t *tail, size_t size, uint32_t n)
{
	uint8_t *foot = tail + size - INDEX_SEEKTABLE_FOOTER_SIZE;

	foot[0] = (uint8_t)n;
	foot[1] = (uint8_t)(n >> 8);
	foot[2] = (uint8_t)(n >> 16);
	foot[3] = (uint8_t)(n >> 24);
}

int main(void)
{
	struct index_locator loc = { .offset = 100, .size = 200 }, got;
	uint8_t tail[256];
	uint64_t need = 0, huge = (uint64_t)1 << 40;
	size_t n = make_tail(tail, &loc);

	CHECK(index_blob_tail_parse(tail, n, 1000, &got, &need) == 0);
	CHECK(got.offset == 100 && got.size == 200);

	/* Too short a tail: asks for the seek table and the locator. */
	CHECK(index_blob_tail_parse(tail + 20, n - 20, 1000, &got, &need) ==
	      -EAGAIN);
	CHECK(need == n);

	/* The most frames a blob may have: a 64 MiB seek table, asked for. */
	set_frames(tail, n, INDEX_SEEKTABLE_MAX_FRAMES);
	CHECK(index_blob_tail_parse(tail, n, huge, &got, &need) == -EAGAIN);
	CHECK(need == index_seektable_frame_size(INDEX_SEEKTABLE_MAX_FRAMES) +
			      INDEX_LOCATOR_FRAME_SIZE);
	CHECK(need < (65u << 20));

	/* One more, or the 2^26 zstd's format would allow: refused. */
	set_frames(tail, n, INDEX_SEEKTABLE_MAX_FRAMES + 1);
	CHECK(index_blob_tail_parse(tail, n, huge, &got, &need) == -EBADMSG);
	set_frames(tail, n, 1u << 26);
	CHECK(index_blob_tail_parse(tail, n, huge, &got, &need) == -EBADMSG);
	return T_PASS;
}
