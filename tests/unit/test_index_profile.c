/* SPDX-License-Identifier: MIT */
/*
 * test_index_profile.c - the startup profile label: what is encoded
 * decodes to the same entries, and every malformed value (bad base64, bad
 * magic or version, a count that disagrees with the length, a layer past
 * the image's) is refused with -EINVAL.
 */
#include "helpers.h"
#include "index/image.h"

/* Decodes base64 @text for a 3-layer image; returns the errno. */
static int decode(const char *text)
{
	struct index_profile_entry *e = NULL;
	uint32_t n = 0;
	int r = index_profile_decode(text, 3, &e, &n);

	free(e);
	return r;
}

int main(void)
{
	struct index_profile_entry in[3] = { { 2, 7 }, { 0, 0 }, { 1, 40000 } };
	struct index_profile_entry *out = NULL;
	char *text, *bad;
	uint32_t n = 0;

	CHECK(index_profile_encode(in, 3, &text) == 0);
	CHECK(index_profile_decode(text, 3, &out, &n) == 0);
	CHECK(n == 3);
	CHECK(memcmp(in, out, sizeof(in)) == 0);
	free(out);
	/* Layer 2 is past a two-layer image. */
	CHECK(index_profile_decode(text, 2, &out, &n) == -EINVAL);

	/* An empty profile is valid. */
	free(text);
	CHECK(index_profile_encode(in, 0, &text) == 0);
	CHECK(decode(text) == 0);

	/* Bad magic: "XMGFSPRF". */
	bad = strdup(text);
	bad[0] = 'W';
	CHECK(decode(bad) == -EINVAL);
	free(bad);
	CHECK(decode("") == -EINVAL);
	CHECK(decode("not base64!") == -EINVAL);
	CHECK(decode("SU1HRlNQUkY=") == -EINVAL); /* magic alone, truncated */
	/* Header with version 2. */
	CHECK(decode("SU1HRlNQUkYCAAAAAAAAAA==") == -EINVAL);
	/* Version 1, count 1, no record. */
	CHECK(decode("SU1HRlNQUkYBAAAAAQAAAA==") == -EINVAL);
	/* Version 1, count 0: valid. */
	CHECK(decode("SU1HRlNQUkYBAAAAAAAAAA==") == 0);
	free(text);
	return T_PASS;
}
