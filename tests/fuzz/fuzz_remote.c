/* SPDX-License-Identifier: MIT */
/*
 * fuzz_remote.c - the HTTP answer handling of fs/remote.c without a
 * network: status lines and headers (on_header), body bytes (on_body,
 * body_start) and the verdict on each try (classify), for range reads
 * and document reads, over several tries as xfer_run() makes them, and
 * the parameters of an authentication challenge (challenge_param).
 *
 * remote.c is compiled into this harness so that its static functions
 * are driven exactly as libcurl drives them; nothing of it is copied.
 *
 * Input: a flag byte, the read's offset and length (2 bytes each, little
 * endian), then records of [kind][n][n bytes]: an even kind is one header
 * line, an odd kind a piece of body, kind 0xff ends the try (libcurl
 * returns).  Each record is handed over in a buffer of exactly its size,
 * as libcurl does not promise a NUL after a header line.
 */
#include "fs/remote.c"

#include "fuzz.h"

#define FLAG_RANGE 0x01 /* a blob range read, else a document read */
#define FLAG_RECV_ERROR 0x02 /* each try ends with a connection error */
#define REC_END_TRY 0xff

struct fuzz_input {
	const uint8_t *p;
	const uint8_t *end;
};

/* Hands the next record to libcurl's callbacks; false at the end of a
 * try or of the input. */
static bool feed(struct xfer *x, struct fuzz_input *in, bool *ret_aborted)
{
	uint8_t kind, *buf;
	size_t n, done;

	if (in->end - in->p < 2) {
		in->p = in->end; /* a stray last byte ends the input */
		return false;
	}
	kind = in->p[0];
	n = in->p[1];
	in->p += 2;
	if (kind == REC_END_TRY)
		return false;
	if (n > (size_t)(in->end - in->p))
		n = (size_t)(in->end - in->p);
	buf = malloc(n ? n : 1);
	if (!buf)
		return false;
	memcpy(buf, in->p, n);
	in->p += n;
	if (kind & 1)
		done = on_body((char *)buf, 1, n, x);
	else
		done = on_header((char *)buf, 1, n, x);
	free(buf);
	if (done != n) {
		/* libcurl stops the transfer when a callback refuses bytes. */
		*ret_aborted = true;
		return false;
	}
	return true;
}

/* What auth_refresh() reads from a challenge, without asking anyone. */
static void challenge(const struct xfer *x)
{
	static const char *const keys[] = { "realm", "service", "scope" };
	char out[512];

	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (challenge_param(x->www_auth, keys[i], out, sizeof(out)))
			FUZZ_CHECK(strlen(out) < sizeof(out));
}

/* One try: records until it ends, then the verdict. */
static enum outcome try_once(struct xfer *x, struct fuzz_input *in,
			     uint8_t flags)
{
	bool aborted = false;
	char cause[256];
	CURLcode rc;
	int code;

	xfer_try_reset(x);
	while (feed(x, in, &aborted))
		;
	rc = CURLE_OK;
	if (aborted)
		rc = CURLE_WRITE_ERROR;
	else if (flags & FLAG_RECV_ERROR)
		rc = CURLE_RECV_ERROR;
	return classify(x, rc, cause, sizeof(cause), &code);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fs_remote rm = { .stall_ms = 10000 };
	struct fuzz_input in;
	struct xfer x = { .rm = &rm, .url = "http://fuzz/blob" };
	enum outcome out = OUT_RETRY;
	uint8_t flags;

	if (size < 5)
		return 0;
	in.p = data + 5;
	in.end = data + size;
	flags = data[0];
	x.is_range = flags & FLAG_RANGE;
	if (x.is_range) {
		x.off = (uint64_t)data[1] | (uint64_t)data[2] << 8;
		x.len = 1 + ((size_t)data[3] | (size_t)data[4] << 8) % 4096;
		x.dst = malloc(x.len);
		if (!x.dst)
			return 0;
	} else {
		x.doc_max = ((size_t)data[3] | (size_t)data[4] << 8) % 8192;
	}

	/* As xfer_run(): retry and authentication verdicts try again. */
	while (in.p < in.end && (out == OUT_RETRY || out == OUT_AUTH)) {
		out = try_once(&x, &in, flags);
		FUZZ_CHECK(x.got <= x.len && x.doc_len <= x.doc_max);
		FUZZ_CHECK(x.retry_after_s <= RETRY_AFTER_MAX_S);
		if (out == OUT_DONE && x.is_range)
			FUZZ_CHECK(x.got == x.len);
		if (out == OUT_DONE && !x.is_range)
			FUZZ_CHECK(x.status == 200);
		if (out == OUT_AUTH)
			challenge(&x);
	}
	free(x.dst);
	free(x.doc);
	return 0;
}
