/* SPDX-License-Identifier: MIT */
/*
 * blob.c - the trailer of a seekable layer blob: the locator frame that
 * says where the index is, and the zstd seek table that ends the blob.
 */
#include <errno.h>
#include <string.h>

#include "index.h"
#include "index_internal.h"

#define LOCATOR_MAGIC "IMGFSLOC"
#define LOCATOR_VERSION 1
#define LOCATOR_VERSION_TEXT "1" /* for messages; change both */

void index_locator_encode(const struct index_locator *locator,
			  uint8_t out[INDEX_LOCATOR_FRAME_SIZE])
{
	uint8_t *p = out + INDEX_SKIPPABLE_HEADER_SIZE;

	memset(out, 0, INDEX_LOCATOR_FRAME_SIZE);
	put_le32(out, INDEX_FRAME_MAGIC_LOCATOR);
	put_le32(out + 4, INDEX_LOCATOR_PAYLOAD_SIZE);
	memcpy(p, LOCATOR_MAGIC, 8);
	put_le32(p + 8, LOCATOR_VERSION);
	put_le64(p + 16, locator->offset);
	put_le64(p + 24, locator->size);
	memcpy(p + 32, locator->sha256, 32);
}

int index_locator_decode(const uint8_t *frame, size_t size,
			 struct index_locator *ret_locator)
{
	const uint8_t *p = frame + INDEX_SKIPPABLE_HEADER_SIZE;

	if (size < INDEX_LOCATOR_FRAME_SIZE ||
	    get_le32(frame) != INDEX_FRAME_MAGIC_LOCATOR ||
	    get_le32(frame + 4) != INDEX_LOCATOR_PAYLOAD_SIZE ||
	    memcmp(p, LOCATOR_MAGIC, 8) != 0)
		return -EBADMSG;
	if (get_le32(p + 8) != LOCATOR_VERSION)
		return -EPROTONOSUPPORT;
	ret_locator->offset = get_le64(p + 16);
	ret_locator->size = get_le64(p + 24);
	memcpy(ret_locator->sha256, p + 32, 32);
	return 0;
}

const char *index_blob_tail_error(int r)
{
	switch (r) {
	case -EBADMSG:
		return "no valid trailer";
	case -EPROTONOSUPPORT:
		return "its locator has a format version this build does not "
		       "read (it reads version " LOCATOR_VERSION_TEXT ")";
	default:
		return strerror(-r);
	}
}

uint64_t index_seektable_frame_size(uint32_t n_frames)
{
	return INDEX_SKIPPABLE_HEADER_SIZE +
	       (uint64_t)n_frames * INDEX_SEEKTABLE_ENTRY_SIZE +
	       INDEX_SEEKTABLE_FOOTER_SIZE;
}

int index_seektable_encode(const uint32_t *blob_sizes,
			   const uint32_t *tar_sizes, uint32_t n_frames,
			   uint8_t *out, size_t out_size)
{
	uint64_t size = index_seektable_frame_size(n_frames);
	uint8_t *p = out;

	if (n_frames > INDEX_SEEKTABLE_MAX_FRAMES || out_size < size)
		return -EINVAL;
	put_le32(p, INDEX_FRAME_MAGIC_SEEKTABLE);
	put_le32(p + 4, (uint32_t)(size - INDEX_SKIPPABLE_HEADER_SIZE));
	p += INDEX_SKIPPABLE_HEADER_SIZE;
	for (uint32_t i = 0; i < n_frames; i++) {
		put_le32(p, blob_sizes[i]);
		put_le32(p + 4, tar_sizes[i]);
		p += INDEX_SEEKTABLE_ENTRY_SIZE;
	}
	put_le32(p, n_frames);
	p[4] = 0; /* descriptor: no checksums */
	put_le32(p + 5, INDEX_SEEKABLE_FOOTER_MAGIC);
	return 0;
}

int index_blob_tail_parse(const uint8_t *tail, size_t tail_size,
			  uint64_t blob_size, struct index_locator *ret_locator,
			  uint64_t *ret_need)
{
	const uint8_t *foot, *st, *loc;
	uint64_t st_size, need;
	uint32_t n_frames, entry_size;
	uint8_t desc;
	int err;

	if (tail_size > blob_size)
		return -EINVAL;
	if (tail_size < INDEX_SEEKTABLE_FOOTER_SIZE) {
		*ret_need = INDEX_SEEKTABLE_FOOTER_SIZE + INDEX_LOCATOR_FRAME_SIZE;
		return blob_size < *ret_need ? -EBADMSG : -EAGAIN;
	}
	foot = tail + tail_size - INDEX_SEEKTABLE_FOOTER_SIZE;
	if (get_le32(foot + 5) != INDEX_SEEKABLE_FOOTER_MAGIC)
		return -EBADMSG;
	n_frames = get_le32(foot);
	desc = foot[4];
	if ((desc & 0x7c) || n_frames > INDEX_SEEKTABLE_MAX_FRAMES)
		return -EBADMSG;
	entry_size = (desc & 0x80) ? 12 : 8;
	st_size = INDEX_SKIPPABLE_HEADER_SIZE + (uint64_t)n_frames * entry_size +
		  INDEX_SEEKTABLE_FOOTER_SIZE;
	need = st_size + INDEX_LOCATOR_FRAME_SIZE;
	if (need > blob_size)
		return -EBADMSG;
	if (tail_size < need) {
		*ret_need = need;
		return -EAGAIN;
	}
	st = tail + tail_size - st_size;
	if (get_le32(st) != INDEX_FRAME_MAGIC_SEEKTABLE ||
	    get_le32(st + 4) != st_size - INDEX_SKIPPABLE_HEADER_SIZE)
		return -EBADMSG;
	loc = st - INDEX_LOCATOR_FRAME_SIZE;
	err = index_locator_decode(loc, INDEX_LOCATOR_FRAME_SIZE, ret_locator);
	if (err < 0)
		return err;
	if (ret_locator->offset > blob_size - need ||
	    ret_locator->size > blob_size - need - ret_locator->offset)
		return -EBADMSG;
	return 0;
}

void index_hex(const uint8_t *hash, size_t len, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < len; i++) {
		out[2 * i] = digits[hash[i] >> 4];
		out[2 * i + 1] = digits[hash[i] & 15];
	}
	out[2 * len] = '\0';
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

int index_digest_parse(const char *digest, uint8_t out[32])
{
	if (strncmp(digest, "sha256:", 7) != 0 || strlen(digest) != 7 + 64)
		return -EINVAL;
	for (int i = 0; i < 32; i++) {
		int hi = hexval(digest[7 + 2 * i]);
		int lo = hexval(digest[8 + 2 * i]);

		if (hi < 0 || lo < 0)
			return -EINVAL;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

int index_digest_equal(const char *digest, const uint8_t sha256[32])
{
	uint8_t want[32];

	if (index_digest_parse(digest, want) < 0)
		return -EINVAL;
	return memcmp(want, sha256, 32) == 0 ? 0 : -EBADMSG;
}
