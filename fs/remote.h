/* SPDX-License-Identifier: MIT */
/*
 * remote.h - images on HTTP servers: OCI registries through the
 * distribution API ("docker://HOST[:PORT]/REPO[:TAG|@DIGEST]") and OCI
 * image layouts served by a web server ("http://HOST/PATH[:TAG]",
 * "https://...").
 *
 * A struct fs_remote is one image's origin: its URLs, its credentials and
 * tokens, and the retry policy.  It is safe to use from many threads at
 * once; each thread keeps its own connection (a libcurl handle), so N
 * threads reading fetch over N connections in parallel.
 *
 * Blob reads ask for one byte range per request, never several: servers
 * that refuse multi-range requests need no special case.  A server that
 * ignores Range and answers 200 with the whole body is detected from the
 * status line, and the wanted slice is cut out of the stream, which is
 * dropped as soon as the slice is complete.
 */
#ifndef IMGFS_FS_REMOTE_H
#define IMGFS_FS_REMOTE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "index/image.h"

struct fs_remote_options {
	const char *authfile; /* docker-style config.json, NULL: none */
	unsigned int deadline_ms; /* one read, retries included; 0: 60 s */
	unsigned int stall_ms; /* no body byte this long: retry; 0: 10 s */
	bool insecure; /* docker://: plain http (default for loopback) */
	bool verbose; /* log every request to stderr */
};

/* Counters, updated with relaxed atomics. */
struct fs_remote_stats {
	_Atomic uint64_t requests; /* HTTP requests sent, retries included */
	_Atomic uint64_t bytes; /* body bytes received */
	_Atomic uint64_t retries; /* requests that were tries after a failure */
	_Atomic uint64_t range_ignored; /* 200 answers to a range request */
	_Atomic uint64_t auth_refreshes; /* tokens or credentials (re)sent */
	_Atomic uint64_t errors; /* reads that failed for good */
	_Atomic uint64_t latency_us; /* summed time of successful reads */
	_Atomic uint64_t reads; /* successful blob reads */
};

struct fs_remote;

/* True for the references this module opens. */
bool fs_remote_is_ref(const char *ref);

/*
 * Resolves @ref to an image: for a registry, the manifest of the tag or
 * digest (linux/amd64 from an index), for a served layout its index.json;
 * then the manifest and config, each checked against its digest.  The
 * image's layer paths are NULL: read blobs with fs_remote_blob_read().
 * Returns -EINVAL (bad reference), -ENOENT, -EACCES (credentials
 * refused), -EIO (server unreachable or misbehaving), -ENOMEM; @err
 * names what failed where.
 */
int fs_remote_open(const char *ref, const struct fs_remote_options *opts,
		struct fs_remote **ret_remote, struct index_image **ret_image,
		char *err, size_t err_size);
void fs_remote_free(struct fs_remote *remote);

/*
 * Reads exactly @len bytes at @off of blob @digest into @buf, retrying
 * with backoff on connection failures, resets, stalls, 429 and 5xx, and
 * resuming after what already arrived, until the deadline.  Returns 0,
 * -EIO (deadline passed, or the server answered wrongly; @err says how),
 * -ENOENT, -EACCES or -ENOMEM.  The bytes are not verified here: the
 * caller checks them against the index.
 */
int fs_remote_blob_read(struct fs_remote *remote, const char *digest,
		     uint64_t off, size_t len, void *buf, char *err,
		     size_t err_size);

/*
 * Maps the index of layer @layer of the image: one range request when
 * the descriptor's annotations give its place, else the blob's tail then
 * the index (two).  The index is checked against its digest.
 */
int fs_remote_layer_map_open(struct fs_remote *remote,
			  const struct index_image_layer *layer,
			  struct index_layer_map **ret_map, char *err,
			  size_t err_size);

const struct fs_remote_stats *fs_remote_stats(const struct fs_remote *remote);

#endif
