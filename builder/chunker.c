/* SPDX-License-Identifier: MIT */
/*
 * chunker.c - where the chunk boundaries of a layer fall.
 *
 * A file's data starts a chunk so that reading it fetches its own bytes
 * only; files under BUILDER_SMALL_FILE share chunks of up to about
 * BUILDER_SMALL_GROUP bytes, since a frame per tiny file would cost
 * compression ratio and index space.  Large files are cut where a gear
 * hash of their content says so (bounded by a minimum and a maximum), so
 * that a file shared by two images, or changed in one place, still yields
 * mostly the same chunks.
 */
#include <errno.h>
#include <stdlib.h>

#include "builder_internal.h"

#define BUILDER_SMALL_FILE (64u << 10)
#define BUILDER_SMALL_GROUP (256u << 10)
#define CDC_MIN (512u << 10)
#define CDC_MAX (2u << 20)
/* Cut where the top 19 bits of the hash are zero: 512 KiB on average
 * past the minimum. */
#define CDC_MASK (((uint64_t)1 << 19) - 1) << 45

struct plan {
	uint64_t *ends;
	uint32_t n, cap;
	uint64_t start; /* start of the chunk being filled */
};

static uint64_t gear[256];

/* Fills the gear table from a fixed seed: boundaries must be the same in
 * every build, on every machine. */
static void gear_init(void)
{
	uint64_t x = 0x9e3779b97f4a7c15ull;

	if (gear[0])
		return;
	for (int i = 0; i < 256; i++) {
		uint64_t z;

		x += 0x9e3779b97f4a7c15ull;
		z = x;
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
		z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
		gear[i] = z ^ (z >> 31);
	}
}

static int cut(struct plan *p, uint64_t end)
{
	if (end <= p->start)
		return 0;
	/* A chunk never exceeds INDEX_CHUNK_MAX, even a run of headers. */
	while (end - p->start > INDEX_CHUNK_MAX) {
		int err = cut(p, p->start + CDC_MAX);

		if (err < 0)
			return err;
	}
	if (p->n == p->cap) {
		uint32_t cap = p->cap ? p->cap * 2 : 1024;
		uint64_t *e = realloc(p->ends, cap * sizeof(*e));

		if (!e)
			return -ENOMEM;
		p->ends = e;
		p->cap = cap;
	}
	p->ends[p->n++] = end;
	p->start = end;
	return 0;
}

/* Next content-defined cut in data[0..len), or len. */
static uint64_t cdc_next(const uint8_t *data, uint64_t len)
{
	uint64_t h = 0, i, max = len < CDC_MAX ? len : CDC_MAX;

	if (len <= CDC_MIN)
		return len;
	for (i = CDC_MIN - 64; i < CDC_MIN; i++)
		h = (h << 1) + gear[data[i]];
	for (; i < max; i++) {
		h = (h << 1) + gear[data[i]];
		if (!(h & CDC_MASK))
			return i + 1;
	}
	return max;
}

static int plan_file(struct plan *p, const struct builder_tar *tar,
		     const struct builder_span *s)
{
	uint64_t pos = s->off, end = s->off + s->len;
	int err;

	if (s->len < BUILDER_SMALL_FILE &&
	    s->off - p->start < BUILDER_SMALL_GROUP)
		return 0;
	err = cut(p, s->off);
	if (err < 0)
		return err;
	if (s->len < BUILDER_SMALL_FILE)
		return 0;
	/* Cut inside the file; the last piece runs on into what follows
	 * until the next cut. */
	while (end - pos > CDC_MAX) {
		pos += cdc_next(tar->data + pos, end - pos);
		err = cut(p, pos);
		if (err < 0)
			return err;
	}
	if (end - pos > CDC_MIN) {
		uint64_t n = cdc_next(tar->data + pos, end - pos);

		if (n < end - pos)
			return cut(p, pos + n);
	}
	return 0;
}

int builder_chunk_plan(const struct builder_tar *tar,
		       const struct builder_span *spans, uint32_t n_spans,
		       uint64_t **ret_ends, uint32_t *ret_n_chunks)
{
	struct plan p = { 0 };
	int err = 0;

	gear_init();
	for (uint32_t i = 0; i < n_spans && err == 0; i++)
		err = plan_file(&p, tar, &spans[i]);
	if (err == 0)
		err = cut(&p, tar->size);
	if (err < 0) {
		free(p.ends);
		return err;
	}
	*ret_ends = p.ends;
	*ret_n_chunks = p.n;
	return 0;
}
