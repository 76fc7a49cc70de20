/* SPDX-License-Identifier: MIT */
/*
 * cmd_index.c - imgtool index show / verify.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/sha.h>
#include <zstd.h>

#include "imgtool.h"
#include "index/image.h"
#include "index/index.h"

/* The layers named on the command line: one blob, or an image's. */
struct target {
	struct index_image *image; /* NULL for a lone blob */
	uint32_t n;
	const char **paths;
	const char **names; /* digest, or the blob's path */
	struct index_layer_map **maps;
};

static void target_free(struct target *t)
{
	for (uint32_t i = 0; t->maps && i < t->n; i++)
		index_layer_map_free(t->maps[i]);
	free(t->maps);
	free(t->paths);
	free(t->names);
	index_image_free(t->image);
}

static int target_open(struct target *t, const char *arg)
{
	char err[1024] = "";
	struct stat st;
	int r;

	if (strncmp(arg, "oci:", 4) == 0 ||
	    (stat(arg, &st) == 0 && S_ISDIR(st.st_mode))) {
		r = index_image_open(arg, &t->image, err, sizeof(err));
		if (r < 0) {
			imgtool_error("%s", err);
			return r;
		}
		t->n = t->image->n_layers;
	} else {
		t->n = 1;
	}
	t->paths = calloc(t->n ? t->n : 1, sizeof(char *));
	t->names = calloc(t->n ? t->n : 1, sizeof(char *));
	t->maps = calloc(t->n ? t->n : 1, sizeof(*t->maps));
	if (!t->paths || !t->names || !t->maps)
		return -ENOMEM;
	for (uint32_t i = 0; i < t->n; i++) {
		const struct index_locator *loc = NULL;

		t->paths[i] = t->image ? t->image->layers[i].path : arg;
		t->names[i] = t->image ? t->image->layers[i].digest : arg;
		if (t->image && t->image->layers[i].has_locator)
			loc = &t->image->layers[i].locator;
		r = index_layer_map_open(t->paths[i], loc, &t->maps[i], err,
					 sizeof(err));
		if (r < 0) {
			imgtool_error("layer %u: %s", i, err);
			return r;
		}
	}
	return 0;
}

/* Length of the valid UTF-8 sequence at @s (of @len bytes left) that
 * starts with a byte of 0x80 or above, or 0 when it is not one. */
static size_t utf8_seq(const unsigned char *s, size_t len)
{
	unsigned char lo = 0x80, hi = 0xbf;
	size_t n;

	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		n = 2;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		n = 3;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		n = 4;
	else
		return 0;
	/* Overlong forms, UTF-16 surrogates and code points past U+10FFFF
	 * are excluded through the range of the second byte. */
	if (s[0] == 0xe0)
		lo = 0xa0;
	else if (s[0] == 0xed)
		hi = 0x9f;
	else if (s[0] == 0xf0)
		lo = 0x90;
	else if (s[0] == 0xf4)
		hi = 0x8f;
	if (len < n || s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	return n;
}

/* Writes @len bytes of @s as a JSON string.  Valid UTF-8 passes through;
 * each byte that is not part of it (names are bytes, not text) becomes
 * \udcXX, the lone surrogate Python's "surrogateescape" decoding gives,
 * so the line stays JSON and the bytes can be recovered. */
static void json_string(FILE *f, const char *s, size_t len)
{
	const unsigned char *u = (const unsigned char *)s;

	fputc('"', f);
	for (size_t i = 0; i < len; i++) {
		size_t n;

		if (u[i] == '"' || u[i] == '\\')
			fprintf(f, "\\%c", u[i]);
		else if (u[i] < 0x20 || u[i] == 0x7f)
			fprintf(f, "\\u%04x", u[i]);
		else if (u[i] < 0x80)
			fputc(u[i], f);
		else if ((n = utf8_seq(u + i, len - i)) > 0) {
			fwrite(u + i, 1, n, f);
			i += n - 1;
		} else
			fprintf(f, "\\udc%02x", u[i]);
	}
	fputc('"', f);
}

static void show_entry(const struct index_reader *r, uint32_t layer,
		       uint32_t i)
{
	struct index_entry e;

	index_reader_entry(r, i, &e);
	printf("{\"layer\":%u,\"path\":", layer);
	json_string(stdout, e.name, e.name_len);
	printf(",\"type\":\"%s\",\"mode\":\"%04o\",\"uid\":%u,\"gid\":%u",
	       index_kind_name(e.kind), e.mode, e.uid, e.gid);
	printf(",\"size\":%" PRIu64 ",\"mtime\":\"%" PRId64 ".%09u\"", e.size,
	       e.mtime_sec, e.mtime_nsec);
	if (e.link_len) {
		printf(",\"link\":");
		json_string(stdout, e.link, e.link_len);
	}
	if (e.kind == INDEX_KIND_CHAR || e.kind == INDEX_KIND_BLOCK)
		printf(",\"devmajor\":%u,\"devminor\":%u", e.dev_major,
		       e.dev_minor);
	if (e.kind == INDEX_KIND_FILE)
		printf(",\"data_offset\":%" PRIu64 ",\"chunks\":[%u,%u]",
		       e.data_off, e.chunk_first, e.chunk_count);
	if (e.flags & INDEX_ENTRY_SPARSE)
		printf(",\"sparse_segments\":%u", e.sparse_count);
	if (e.xattr_count) {
		printf(",\"xattrs\":{");
		for (uint32_t k = 0; k < e.xattr_count; k++) {
			struct index_xattr x;

			index_reader_xattr(r, e.xattr_first + k, &x);
			json_string(stdout, x.name, x.name_len);
			printf(":\"");
			for (uint32_t b = 0; b < x.value_len; b++)
				printf("%02x", x.value[b]);
			printf("\"%s", k + 1 < e.xattr_count ? "," : "");
		}
		printf("}");
	}
	printf("}\n");
}

static int index_show(const char *arg)
{
	struct target t = { 0 };
	int r = target_open(&t, arg);

	if (r < 0)
		goto out;
	for (uint32_t l = 0; l < t.n; l++) {
		const struct index_reader *rd = t.maps[l]->reader;
		uint32_t n = index_reader_entry_count(rd), counts[10] = { 0 };

		for (uint32_t i = 0; i < n; i++) {
			struct index_entry e;

			show_entry(rd, l, i);
			index_reader_entry(rd, i, &e);
			counts[e.kind]++;
		}
		fprintf(stderr,
			"layer %u %s: %u entries (%u files, %u dirs, %u symlinks, "
			"%u hard links, %u whiteouts, %u opaque), %u chunks, "
			"tar %" PRIu64 " bytes, index %zu bytes\n",
			l, t.names[l], n, counts[INDEX_KIND_FILE],
			counts[INDEX_KIND_DIR], counts[INDEX_KIND_SYMLINK],
			counts[INDEX_KIND_HARDLINK], counts[INDEX_KIND_WHITEOUT],
			counts[INDEX_KIND_OPAQUE], index_reader_chunk_count(rd),
			index_reader_tar_size(rd), t.maps[l]->size);
	}
out:
	target_free(&t);
	return r < 0 ? 1 : 0;
}

static int pread_full(int fd, void *buf, size_t len, uint64_t off)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = pread(fd, (char *)buf + got, len - got,
				  (off_t)(off + got));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		got += (size_t)n;
	}
	return 0;
}

/* Checks one chunk; returns a static reason on failure, NULL if good. */
static const char *verify_chunk(int fd, const struct index_chunk *c,
				uint8_t *cbuf, uint8_t *dbuf, ZSTD_DCtx *dctx)
{
	uint8_t sha[32];
	size_t n;

	if (pread_full(fd, cbuf, c->blob_len, c->blob_off) < 0)
		return "cannot read the frame from the blob";
	if (ZSTD_getFrameContentSize(cbuf, c->blob_len) != c->tar_len)
		return "frame does not declare the chunk's size";
	n = ZSTD_decompressDCtx(dctx, dbuf, c->tar_len, cbuf, c->blob_len);
	if (ZSTD_isError(n))
		return ZSTD_getErrorName(n);
	if (n != c->tar_len)
		return "frame decompresses to a different size";
	SHA256(dbuf, n, sha);
	if (memcmp(sha, c->sha256, 32) != 0)
		return "SHA-256 mismatch";
	return NULL;
}

/* SHA-256 of the whole file @fd into @out.  -errno. */
static int hash_file(int fd, uint8_t *buf, size_t size, uint8_t out[32])
{
	EVP_MD_CTX *sha = EVP_MD_CTX_new();
	uint64_t off = 0;
	ssize_t n;

	if (!sha)
		return -ENOMEM;
	EVP_DigestInit_ex(sha, EVP_sha256(), NULL);
	while ((n = pread(fd, buf, size, (off_t)off)) > 0) {
		EVP_DigestUpdate(sha, buf, (size_t)n);
		off += (uint64_t)n;
	}
	EVP_DigestFinal_ex(sha, out, NULL);
	EVP_MD_CTX_free(sha);
	return n < 0 ? -errno : 0;
}

static int verify_layer(const struct target *t, uint32_t l, uint8_t *cbuf,
			uint8_t *dbuf, ZSTD_DCtx *dctx)
{
	const struct index_reader *rd = t->maps[l]->reader;
	const struct index_image_layer *desc =
		t->image ? &t->image->layers[l] : NULL;
	uint32_t n = index_reader_chunk_count(rd);
	int fd = open(t->paths[l], O_RDONLY | O_CLOEXEC);
	EVP_MD_CTX *tar_sha = EVP_MD_CTX_new();
	uint8_t sha[32];
	char hex[65];
	int status = 1;

	if (fd < 0) {
		imgtool_error("cannot open '%s': %s", t->paths[l],
			      strerror(errno));
		EVP_MD_CTX_free(tar_sha);
		return 1;
	}
	if (!tar_sha)
		goto out;
	EVP_DigestInit_ex(tar_sha, EVP_sha256(), NULL);
	/* The chunks cover the tar in order: their bytes hash to the
	 * layer's DiffID. */
	for (uint32_t i = 0; i < n; i++) {
		struct index_chunk c;
		const char *why;

		index_reader_chunk(rd, i, &c);
		why = verify_chunk(fd, &c, cbuf, dbuf, dctx);
		if (why) {
			imgtool_error("layer %u %s: chunk %u (blob offset %" PRIu64
				      ", tar offset %" PRIu64 "): %s",
				      l, t->names[l], i, c.blob_off, c.tar_off,
				      why);
			goto out;
		}
		EVP_DigestUpdate(tar_sha, dbuf, c.tar_len);
	}
	EVP_DigestFinal_ex(tar_sha, sha, NULL);
	if (desc && desc->diff_id && index_digest_equal(desc->diff_id, sha)) {
		index_hex(sha, 32, hex);
		imgtool_error("layer %u %s: the chunks make a tar of sha256:%s, "
			      "the config's DiffID %u is %s (layers out of "
			      "order, or not this image's)", l, t->names[l],
			      hex, l, desc->diff_id);
		goto out;
	}
	if (desc) {
		if (hash_file(fd, cbuf, INDEX_CHUNK_MAX, sha) < 0) {
			imgtool_error("cannot read '%s': %s", t->paths[l],
				      strerror(errno));
			goto out;
		}
		if (index_digest_equal(desc->digest, sha)) {
			index_hex(sha, 32, hex);
			imgtool_error("layer %u %s: the blob's bytes hash to "
				      "sha256:%s, not to its name", l,
				      t->names[l], hex);
			goto out;
		}
	}
	status = 0;
out:
	EVP_MD_CTX_free(tar_sha);
	close(fd);
	if (status)
		return status;
	printf("layer %u %s: %u chunks, %" PRIu64 " bytes: ok\n", l,
	       t->names[l], n, index_reader_tar_size(rd));
	return 0;
}

static int index_verify(const char *arg)
{
	struct target t = { 0 };
	uint8_t *cbuf = malloc(INDEX_CHUNK_MAX + (INDEX_CHUNK_MAX >> 7) + 4096);
	uint8_t *dbuf = malloc(INDEX_CHUNK_MAX);
	ZSTD_DCtx *dctx = ZSTD_createDCtx();
	int status = 1;

	if (!cbuf || !dbuf || !dctx || target_open(&t, arg) < 0)
		goto out;
	status = 0;
	for (uint32_t l = 0; l < t.n && status == 0; l++)
		status = verify_layer(&t, l, cbuf, dbuf, dctx);
out:
	target_free(&t);
	ZSTD_freeDCtx(dctx);
	free(cbuf);
	free(dbuf);
	return status;
}

int imgtool_index(int argc, char **argv)
{
	if (argc != 3 || (strcmp(argv[1], "show") != 0 &&
			  strcmp(argv[1], "verify") != 0)) {
		imgtool_error("usage: imgtool index show|verify BLOB|oci:DIR[:TAG]");
		return 2;
	}
	if (strcmp(argv[1], "show") == 0)
		return index_show(argv[2]);
	return index_verify(argv[2]);
}
