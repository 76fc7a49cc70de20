/* SPDX-License-Identifier: MIT */
/*
 * fuzz_image.c - the manifest, index and config parser
 * (index_image_from_docs) and the startup profile codec.
 *
 * Input: one flag byte, then documents separated by NUL bytes (JSON text
 * holds none).  The first document is the top one (a layout's index.json
 * or a registry's answer, by flag); each get() of the parser is served
 * the next document whatever digest it asks for, as a server that lies
 * would; with no documents left it fails like a missing blob.  With the
 * profile flag the first document is decoded as a profile label instead.
 */
#include <errno.h>
#include <string.h>

#include "fuzz.h"
#include "index/image.h"

#define FLAG_LAYOUT 0x01 /* top is index.json */
#define FLAG_TAG 0x02 /* ask for tag "latest" */
#define FLAG_PROFILE 0x04 /* decode the top document as a profile */

struct fuzz_docs {
	struct index_docs docs; /* first: the parser's handle */
	const uint8_t *next;
	const uint8_t *end;
};

/* The next NUL-separated document in *@p, advancing past it. */
static size_t take_doc(const uint8_t **p, const uint8_t *end)
{
	const uint8_t *nul = memchr(*p, '\0', (size_t)(end - *p));
	size_t n = (size_t)((nul ? nul : end) - *p);

	*p += n + (nul != NULL);
	return n;
}

static int fuzz_get(struct index_docs *docs, const char *digest,
		    bool manifest, char **ret_data, size_t *ret_size,
		    char *err, size_t err_size)
{
	struct fuzz_docs *fd = (struct fuzz_docs *)docs;
	const uint8_t *start = fd->next;
	size_t n;
	char *buf;

	if (fd->next >= fd->end)
		return index_seterr(err, err_size, -ENOENT, "no document %s",
				    digest);
	n = take_doc(&fd->next, fd->end);
	buf = malloc(n + 1);
	if (!buf)
		return -ENOMEM;
	memcpy(buf, start, n);
	buf[n] = '\0';
	*ret_data = buf;
	*ret_size = n;
	return 0;
}

static void check_image(const struct index_image *img)
{
	uint8_t raw[32];

	FUZZ_CHECK(img->manifest_digest && img->config_digest);
	for (uint32_t i = 0; i < img->n_layers; i++)
		FUZZ_CHECK(index_digest_parse(img->layers[i].digest, raw) == 0);
	for (uint32_t i = 0; i < img->n_profile; i++)
		FUZZ_CHECK(img->profile[i].layer < img->n_layers);
}

/* Decodes @text, and checks that what decodes encodes back the same. */
static void profile(const char *text, uint32_t n_layers)
{
	struct index_profile_entry *e, *again;
	uint32_t n, n_again;
	char *out;

	if (index_profile_decode(text, n_layers, &e, &n) < 0)
		return;
	for (uint32_t i = 0; i < n; i++)
		FUZZ_CHECK(e[i].layer < n_layers);
	FUZZ_CHECK(index_profile_encode(e, n, &out) == 0);
	FUZZ_CHECK(index_profile_decode(out, n_layers, &again, &n_again) == 0);
	FUZZ_CHECK(n_again == n && memcmp(e, again, n * sizeof(*e)) == 0);
	free(again);
	free(out);
	free(e);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_docs fd = { .docs.get = fuzz_get };
	const uint8_t *p = data + 1;
	struct index_image *img;
	char err[256], *top;
	size_t top_size;
	uint8_t flags;

	if (size == 0)
		return 0;
	flags = data[0];
	top_size = take_doc(&p, data + size);
	top = malloc(top_size + 1);
	if (!top)
		return 0;
	memcpy(top, data + 1, top_size);
	top[top_size] = '\0';
	if (flags & FLAG_PROFILE) {
		profile(top, flags >> 4);
		goto out_free_top;
	}
	img = calloc(1, sizeof(*img));
	if (!img)
		goto out_free_top;
	fd.next = p;
	fd.end = data + size;
	img->tag = flags & FLAG_TAG ? strdup("latest") : NULL;
	if (index_image_from_docs(img, &fd.docs, top, top_size, "top",
				  flags & FLAG_LAYOUT, err, sizeof(err)) == 0)
		check_image(img);
	index_image_free(img);

out_free_top:
	free(top);
	return 0;
}
