/* SPDX-License-Identifier: MIT */
/*
 * profile.c - the startup profile: the chunks a program touched first,
 * in order, carried by the image config (FORMAT.md, section 5).
 *
 * The bytes come from a config whose digest the manifest pins, but they
 * are still checked like any other input: the count must match the
 * length, and every layer number must name a layer of the image.  Chunk
 * numbers are checked by the daemon against each layer's index.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "index_internal.h"
#include "image.h"

#define PROFILE_MAGIC "IMGFSPRF"
#define PROFILE_VERSION 1
#define PROFILE_HEADER 16
#define PROFILE_RECORD 8

int index_profile_decode(const char *text, uint32_t n_layers,
			 struct index_profile_entry **ret_entries,
			 uint32_t *ret_count)
{
	size_t len = strlen(text), raw_size;
	struct index_profile_entry *e = NULL;
	uint32_t count, version;
	unsigned char *raw;
	int n, r = -EINVAL;

	if (len == 0 || len % 4 || len > INDEX_PROFILE_TEXT_MAX)
		return -EINVAL;
	raw = malloc(len / 4 * 3 + 1);
	if (!raw)
		return -ENOMEM;
	n = EVP_DecodeBlock(raw, (const unsigned char *)text, (int)len);
	if (n < 0)
		goto out;
	/* EVP_DecodeBlock counts the padding as bytes. */
	raw_size = (size_t)n - (text[len - 1] == '=') - (text[len - 2] == '=');
	if (raw_size < PROFILE_HEADER || memcmp(raw, PROFILE_MAGIC, 8) != 0)
		goto out;
	version = get_le32(raw + 8);
	count = get_le32(raw + 12);
	if (version != PROFILE_VERSION ||
	    (raw_size - PROFILE_HEADER) / PROFILE_RECORD != count ||
	    (raw_size - PROFILE_HEADER) % PROFILE_RECORD)
		goto out;
	e = calloc(count ? count : 1, sizeof(*e));
	if (!e) {
		r = -ENOMEM;
		goto out;
	}
	for (uint32_t i = 0; i < count; i++) {
		const unsigned char *p = raw + PROFILE_HEADER + i * PROFILE_RECORD;

		e[i].layer = get_le32(p);
		e[i].chunk = get_le32(p + 4);
		if (e[i].layer >= n_layers)
			goto out;
	}
	*ret_entries = e;
	*ret_count = count;
	e = NULL;
	r = 0;
out:
	free(e);
	free(raw);
	return r;
}

int index_profile_encode(const struct index_profile_entry *entries,
			 uint32_t count, char **ret_text)
{
	size_t raw_size = PROFILE_HEADER + (size_t)count * PROFILE_RECORD;
	unsigned char *raw;
	char *text;

	if (raw_size / 4 * 3 > INDEX_PROFILE_TEXT_MAX)
		return -E2BIG;
	raw = malloc(raw_size);
	text = malloc(raw_size / 3 * 4 + 5);
	if (!raw || !text) {
		free(raw);
		free(text);
		return -ENOMEM;
	}
	memcpy(raw, PROFILE_MAGIC, 8);
	put_le32(raw + 8, PROFILE_VERSION);
	put_le32(raw + 12, count);
	for (uint32_t i = 0; i < count; i++) {
		unsigned char *p = raw + PROFILE_HEADER + i * PROFILE_RECORD;

		put_le32(p, entries[i].layer);
		put_le32(p + 4, entries[i].chunk);
	}
	EVP_EncodeBlock((unsigned char *)text, raw, (int)raw_size);
	free(raw);
	*ret_text = text;
	return 0;
}
