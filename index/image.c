/* SPDX-License-Identifier: MIT */
/*
 * image.c - read an OCI image layout and map the indexes of its layers.
 *
 * The layout's JSON is untrusted: every field is type-checked, digests are
 * parsed strictly before they become file names (so none can climb out of
 * blobs/), and files are size-capped before they are read.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>
#include <openssl/sha.h>

#include "image.h"

#define JSON_MAX (4u << 20)
#define TAIL_READ (64u << 10)

int index_seterr(char *err, size_t err_size, int code, const char *fmt, ...)
{
	va_list ap;

	if (err && err_size) {
		va_start(ap, fmt);
		vsnprintf(err, err_size, fmt, ap);
		va_end(ap);
	}
	return code;
}

int index_read_small_file(const char *path, size_t max, char **ret_data,
			  size_t *ret_size)
{
	struct stat st;
	char *buf = NULL;
	size_t got = 0;
	int fd, err = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		err = -errno;
		goto out_close;
	}
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size > max) {
		err = S_ISREG(st.st_mode) ? -EFBIG : -EINVAL;
		goto out_close;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		err = -ENOMEM;
		goto out_close;
	}
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			err = n < 0 ? -errno : -EIO;
			free(buf);
			goto out_close;
		}
		got += (size_t)n;
	}
	buf[got] = '\0';
	*ret_data = buf;
	if (ret_size)
		*ret_size = got;
out_close:
	close(fd);
	return err;
}

/* Parses @size bytes of JSON named @what: one object, nothing after it
 * but white space. */
static int parse_json(const char *data, size_t size, const char *what,
		      struct json_object **ret, char *err, size_t err_size)
{
	struct json_tokener *tok;
	struct json_object *obj;
	size_t end;

	if (size > JSON_MAX)
		return index_seterr(err, err_size, -EFBIG, "%s is larger than %u bytes",
			      what, JSON_MAX);
	tok = json_tokener_new();
	if (!tok)
		return -ENOMEM;
	obj = json_tokener_parse_ex(tok, data, (int)size);
	end = obj ? json_tokener_get_parse_end(tok) : size;
	json_tokener_free(tok);
	while (end < size && strchr(" \t\r\n", data[end]) && data[end])
		end++;
	if (!obj || end != size ||
	    !json_object_is_type(obj, json_type_object)) {
		json_object_put(obj);
		return index_seterr(err, err_size, -EINVAL,
			      "%s is not a JSON object", what);
	}
	*ret = obj;
	return 0;
}

static const char *get_string(struct json_object *o, const char *key)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, key, &v) ||
	    !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

static struct json_object *get_typed(struct json_object *o, const char *key,
				     json_type type)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, key, &v) ||
	    !json_object_is_type(v, type))
		return NULL;
	return v;
}

/* "DIR/blobs/sha256/HEX" for a digest that parses; NULL otherwise. */
static char *blob_path(const char *dir, const char *digest)
{
	uint8_t raw[32];
	char *p;

	if (!digest || index_digest_parse(digest, raw) < 0)
		return NULL;
	if (asprintf(&p, "%s/blobs/sha256/%s", dir, digest + 7) < 0)
		return NULL;
	return p;
}

int index_digest_check(const char *digest, const void *data, size_t size)
{
	uint8_t got[32];

	SHA256(data, size, got);
	return index_digest_equal(digest, got);
}

/* Splits "oci:DIR[:TAG]" or "DIR" into a directory and an optional tag. */
static int parse_ref(const char *ref, char **ret_dir, char **ret_tag)
{
	const char *s = ref, *colon;

	if (strncmp(s, "oci:", 4) == 0)
		s += 4;
	/* "ftp://x" is no directory: a scheme this reader does not have. */
	else if (strstr(s, "://") > s &&
		 strspn(s, "abcdefghijklmnopqrstuvwxyz"
			   "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+-.") ==
			 (size_t)(strstr(s, "://") - s))
		return -EPROTONOSUPPORT;
	colon = strrchr(s, ':');
	/* A colon followed by a slash is part of the path, not a tag. */
	if (colon && strchr(colon, '/'))
		colon = NULL;
	*ret_dir = colon ? strndup(s, (size_t)(colon - s)) : strdup(s);
	*ret_tag = colon && colon[1] ? strdup(colon + 1) : NULL;
	if (!*ret_dir || (colon && colon[1] && !*ret_tag))
		return -ENOMEM;
	return **ret_dir ? 0 : -EINVAL;
}

static bool platform_is_default(struct json_object *desc)
{
	struct json_object *p = get_typed(desc, "platform", json_type_object);
	const char *os, *arch;

	if (!p)
		return true;
	os = get_string(p, "os");
	arch = get_string(p, "architecture");
	return (!os || strcmp(os, "linux") == 0) &&
	       (!arch || strcmp(arch, "amd64") == 0);
}

/* Picks the manifest descriptor named by @tag from index.json. */
static int pick_manifest(struct json_object *index, const char *tag,
			 struct json_object **ret, char *err, size_t err_size)
{
	struct json_object *m = get_typed(index, "manifests", json_type_array);
	struct json_object *only = NULL, *latest = NULL;
	size_t n = m ? json_object_array_length(m) : 0;

	for (size_t i = 0; i < n; i++) {
		struct json_object *d = json_object_array_get_idx(m, i);
		struct json_object *ann;
		const char *name = NULL;

		if (!json_object_is_type(d, json_type_object))
			continue;
		ann = get_typed(d, "annotations", json_type_object);
		if (ann)
			name = get_string(ann, "org.opencontainers.image.ref.name");
		if (tag && name && strcmp(name, tag) == 0) {
			*ret = d;
			return 0;
		}
		if (name && strcmp(name, "latest") == 0)
			latest = d;
		only = n == 1 ? d : only;
	}
	if (tag)
		return index_seterr(err, err_size, -ENOENT,
			      "no manifest tagged '%s' in index.json", tag);
	*ret = latest ? latest : only;
	if (!*ret)
		return index_seterr(err, err_size, -EINVAL,
			      "index.json holds %zu manifests: name a tag", n);
	return 0;
}

/* The linux/amd64 entry of an image index (OCI or Docker manifest list). */
static int pick_platform(struct json_object *list, struct json_object **ret,
			 char *err, size_t err_size)
{
	for (size_t i = 0; i < json_object_array_length(list); i++) {
		struct json_object *d = json_object_array_get_idx(list, i);

		if (json_object_is_type(d, json_type_object) &&
		    platform_is_default(d)) {
			*ret = d;
			return 0;
		}
	}
	return index_seterr(err, err_size, -ENOENT,
		      "no linux/amd64 manifest in image index");
}

/* Fetches document @digest through @docs and parses it. */
static int docs_load(struct index_docs *docs, const char *digest,
		     bool manifest, struct json_object **ret, char *err,
		     size_t err_size)
{
	char *data, what[96];
	size_t size;
	int r;

	r = docs->get(docs, digest, manifest, &data, &size, err, err_size);
	if (r < 0)
		return r;
	snprintf(what, sizeof(what), "%s %.80s",
		 manifest ? "manifest" : "config", digest);
	r = parse_json(data, size, what, ret, err, err_size);
	free(data);
	return r;
}

/*
 * Loads the manifest of @desc, descending one image index if needed.
 * @top, when not NULL, is the already-loaded document of @desc (a
 * registry's answer for a tag), so that it is not fetched again.
 */
static int load_manifest(struct index_docs *docs, struct json_object *desc,
			 struct json_object *top, const char *top_digest,
			 struct json_object **ret, char **ret_digest,
			 char *err, size_t err_size)
{
	struct json_object *holder = NULL; /* keeps @desc alive */
	int r;

	for (int depth = 0; depth < 2; depth++) {
		const char *digest = top ? top_digest : get_string(desc, "digest");
		struct json_object *obj, *list;
		uint8_t raw[32];

		if (!digest || index_digest_parse(digest, raw) < 0) {
			r = index_seterr(err, err_size, -EINVAL,
				   "bad manifest digest '%.80s'",
				   digest ? digest : "(none)");
			goto out;
		}
		if (top) {
			obj = json_object_get(top);
			top = NULL;
		} else {
			r = docs_load(docs, digest, true, &obj, err, err_size);
			if (r < 0)
				goto out;
		}
		list = get_typed(obj, "manifests", json_type_array);
		if (!list) {
			*ret = obj;
			*ret_digest = strdup(digest);
			r = *ret_digest ? 0 : -ENOMEM;
			goto out;
		}
		json_object_put(holder);
		holder = obj;
		r = pick_platform(list, &desc, err, err_size);
		if (r < 0)
			goto out;
	}
	r = index_seterr(err, err_size, -EINVAL, "image indexes nested too deep");
out:
	json_object_put(holder);
	return r;
}

/* Reads the descriptor's index annotations, if all three are there. */
static int layer_locator(struct json_object *desc,
			 struct index_image_layer *l)
{
	struct json_object *ann = get_typed(desc, "annotations",
					    json_type_object);
	const char *off, *len, *dig;
	char *end;

	if (!ann)
		return 0;
	off = get_string(ann, INDEX_ANNOTATION_OFFSET);
	len = get_string(ann, INDEX_ANNOTATION_LENGTH);
	dig = get_string(ann, INDEX_ANNOTATION_DIGEST);
	if (!off || !len || !dig)
		return 0;
	errno = 0;
	l->locator.offset = strtoull(off, &end, 10);
	if (errno || *end || !*off)
		return -EINVAL;
	l->locator.size = strtoull(len, &end, 10);
	if (errno || *end || !*len)
		return -EINVAL;
	if (index_digest_parse(dig, l->locator.sha256) < 0)
		return -EINVAL;
	l->has_locator = 1;
	return 0;
}

static int load_layer(struct index_image *img, struct json_object *desc,
		      uint32_t i, char *err, size_t err_size)
{
	struct index_image_layer *l = &img->layers[i];
	struct json_object *size = get_typed(desc, "size", json_type_int);
	const char *digest = get_string(desc, "digest");
	const char *media = get_string(desc, "mediaType");
	uint8_t raw[32];

	if (!digest)
		return index_seterr(err, err_size, -EINVAL,
				    "layer %u: no digest in the manifest", i);
	if (index_digest_parse(digest, raw) < 0)
		return index_seterr(err, err_size, -EINVAL,
				    "layer %u: bad digest '%.80s' in the "
				    "manifest (want sha256: and 64 hex digits)",
				    i, digest);
	if (!size || json_object_get_int64(size) < 0)
		return index_seterr(err, err_size, -EINVAL,
				    "layer %u: no size, or a negative one, in "
				    "the manifest", i);
	l->digest = strdup(digest);
	l->media_type = strdup(media ? media : "");
	if (!l->digest || !l->media_type)
		return -ENOMEM;
	l->size = (uint64_t)json_object_get_int64(size);
	if (layer_locator(desc, l) < 0)
		return index_seterr(err, err_size, -EINVAL,
			      "layer %u: malformed index annotations", i);
	return 0;
}

/* The startup profile in the config's labels, when there is one. */
static int load_profile(struct index_image *img, struct json_object *config,
			char *err, size_t err_size)
{
	struct json_object *c = get_typed(config, "config", json_type_object);
	struct json_object *labels = c ? get_typed(c, "Labels",
						   json_type_object) : NULL;
	const char *text = labels ? get_string(labels, INDEX_PROFILE_LABEL) :
				    NULL;
	int r;

	if (!text)
		return 0;
	r = index_profile_decode(text, img->n_layers, &img->profile,
				 &img->n_profile);
	if (r == -EINVAL)
		return index_seterr(err, err_size, r,
			      "config label %s is not a valid profile",
			      INDEX_PROFILE_LABEL);
	return r;
}

static int load_config(struct index_image *img, struct index_docs *docs,
		       struct json_object *manifest, char *err,
		       size_t err_size)
{
	struct json_object *cdesc, *config = NULL, *rootfs, *ids, *size;
	const char *digest;
	uint8_t raw[32];
	int r;

	cdesc = get_typed(manifest, "config", json_type_object);
	size = cdesc ? get_typed(cdesc, "size", json_type_int) : NULL;
	digest = cdesc ? get_string(cdesc, "digest") : NULL;
	if (!digest || index_digest_parse(digest, raw) < 0 || !size)
		return index_seterr(err, err_size, -EINVAL,
			      "manifest has no valid config descriptor");
	img->config_digest = strdup(digest);
	if (!img->config_digest)
		return -ENOMEM;
	img->config_size = (uint64_t)json_object_get_int64(size);
	r = docs_load(docs, digest, false, &config, err, err_size);
	if (r < 0)
		return r;
	rootfs = get_typed(config, "rootfs", json_type_object);
	ids = rootfs ? get_typed(rootfs, "diff_ids", json_type_array) : NULL;
	for (uint32_t i = 0; ids && i < img->n_layers &&
			     i < json_object_array_length(ids); i++) {
		struct json_object *v = json_object_array_get_idx(ids, i);

		if (!json_object_is_type(v, json_type_string))
			continue;
		img->layers[i].diff_id = strdup(json_object_get_string(v));
		if (!img->layers[i].diff_id) {
			r = -ENOMEM;
			break;
		}
	}
	if (r == 0 && (!ids || json_object_array_length(ids) != img->n_layers))
		r = index_seterr(err, err_size, -EINVAL,
			   "config has %zu diff_ids for %u layers",
			   ids ? json_object_array_length(ids) : 0,
			   img->n_layers);
	if (r == 0)
		r = load_profile(img, config, err, err_size);
	json_object_put(config);
	return r;
}

static int load_layers(struct index_image *img, struct index_docs *docs,
		       struct json_object *manifest, char *err,
		       size_t err_size)
{
	struct json_object *layers = get_typed(manifest, "layers",
					       json_type_array);
	size_t n = layers ? json_object_array_length(layers) : 0;
	int r;

	if (!layers || n > 1000)
		return index_seterr(err, err_size, -EINVAL,
			      "manifest has no layer list or too many layers");
	img->layers = calloc(n ? n : 1, sizeof(*img->layers));
	if (!img->layers)
		return -ENOMEM;
	img->n_layers = (uint32_t)n;
	for (uint32_t i = 0; i < n; i++) {
		struct json_object *d = json_object_array_get_idx(layers, i);

		if (!json_object_is_type(d, json_type_object))
			return index_seterr(err, err_size, -EINVAL,
				      "layer %u: descriptor is not an object", i);
		r = load_layer(img, d, i, err, err_size);
		if (r < 0)
			return r;
	}
	return load_config(img, docs, manifest, err, err_size);
}

int index_image_from_docs(struct index_image *img, struct index_docs *docs,
			  const char *top, size_t top_size, const char *what,
			  bool layout_index, char *err, size_t err_size)
{
	struct json_object *obj = NULL, *desc = NULL, *manifest = NULL;
	char top_digest[72], hex[65];
	uint8_t md[32];
	int r;

	r = parse_json(top, top_size, what, &obj, err, err_size);
	if (r < 0)
		return r;
	if (layout_index) {
		r = pick_manifest(obj, img->tag, &desc, err, err_size);
		if (r >= 0)
			r = load_manifest(docs, desc, NULL, NULL, &manifest,
					  &img->manifest_digest, err, err_size);
	} else {
		/* A registry's answer for a tag or digest: a manifest, or
		 * an index to pick from. */
		SHA256((const uint8_t *)top, top_size, md);
		index_hex(md, 32, hex);
		snprintf(top_digest, sizeof(top_digest), "sha256:%s", hex);
		r = load_manifest(docs, NULL, obj, top_digest, &manifest,
				  &img->manifest_digest, err, err_size);
	}
	if (r >= 0)
		r = load_layers(img, docs, manifest, err, err_size);
	json_object_put(manifest);
	json_object_put(obj);
	return r;
}

/* Documents of a layout on disk: blobs/sha256/HEX, checked against their
 * digest like any other source. */
struct layout_docs {
	struct index_docs docs;
	const char *dir;
};

static int layout_get(struct index_docs *docs, const char *digest,
		      bool manifest, char **ret_data, size_t *ret_size,
		      char *err, size_t err_size)
{
	struct layout_docs *l = (struct layout_docs *)docs;
	char *path = blob_path(l->dir, digest);
	int r;

	if (!path)
		return index_seterr(err, err_size, -EINVAL, "bad digest '%.80s'",
			      digest);
	r = index_read_small_file(path, JSON_MAX, ret_data, ret_size);
	if (r < 0) {
		index_seterr(err, err_size, r, "cannot read '%s': %s", path,
		       strerror(-r));
	} else if (index_digest_check(digest, *ret_data, *ret_size) < 0) {
		r = index_seterr(err, err_size, -EBADMSG,
			   "'%s' does not match its digest", path);
		free(*ret_data);
	}
	free(path);
	return r;
}

/* Local blobs must be there, with the size the manifest gives. */
static int check_local_blobs(struct index_image *img, char *err,
			     size_t err_size)
{
	struct stat st;

	img->config_path = blob_path(img->dir, img->config_digest);
	if (!img->config_path)
		return -ENOMEM;
	for (uint32_t i = 0; i < img->n_layers; i++) {
		struct index_image_layer *l = &img->layers[i];

		l->path = blob_path(img->dir, l->digest);
		if (!l->path)
			return -ENOMEM;
		if (stat(l->path, &st) < 0)
			return index_seterr(err, err_size, -errno,
				      "layer %u: blob '%s': %s", i, l->path,
				      strerror(errno));
		if ((uint64_t)st.st_size != l->size)
			return index_seterr(err, err_size, -EINVAL,
				      "layer %u: blob '%s' has %jd bytes, manifest says %ju",
				      i, l->path, (intmax_t)st.st_size,
				      (uintmax_t)l->size);
	}
	return 0;
}

int index_image_open(const char *ref, struct index_image **ret_image,
		     char *err, size_t err_size)
{
	struct layout_docs docs = { .docs.get = layout_get };
	struct index_image *img;
	char *path = NULL, *data = NULL, what[PATH_MAX + 8];
	size_t size;
	int r;

	img = calloc(1, sizeof(*img));
	if (!img)
		return -ENOMEM;
	r = parse_ref(ref, &img->dir, &img->tag);
	if (r == -EPROTONOSUPPORT) {
		index_seterr(err, err_size, r, "'%s' is a URL of a scheme "
			     "this tool does not read, not a layout", ref);
		goto err_free;
	}
	if (r < 0) {
		index_seterr(err, err_size, r, "bad image reference '%s'", ref);
		goto err_free;
	}
	docs.dir = img->dir;
	if (asprintf(&path, "%s/index.json", img->dir) < 0) {
		r = -ENOMEM;
		goto err_free;
	}
	r = index_read_small_file(path, JSON_MAX, &data, &size);
	if (r < 0) {
		index_seterr(err, err_size, r, "cannot read '%s': %s", path,
		       strerror(-r));
		goto err_free;
	}
	snprintf(what, sizeof(what), "'%s'", path);
	r = index_image_from_docs(img, &docs.docs, data, size, what, true,
				  err, err_size);
	if (r >= 0)
		r = check_local_blobs(img, err, err_size);
	if (r < 0)
		goto err_free;

	free(data);
	free(path);
	*ret_image = img;
	return 0;

err_free:
	free(data);
	free(path);
	index_image_free(img);
	return r;
}

void index_image_free(struct index_image *image)
{
	if (!image)
		return;
	for (uint32_t i = 0; image->layers && i < image->n_layers; i++) {
		free(image->layers[i].digest);
		free(image->layers[i].media_type);
		free(image->layers[i].diff_id);
		free(image->layers[i].path);
	}
	free(image->layers);
	free(image->dir);
	free(image->tag);
	free(image->manifest_digest);
	free(image->profile);
	free(image->config_digest);
	free(image->config_path);
	free(image);
}

/* ---- layer index mapping ---- */

static int pread_full(int fd, void *buf, size_t len, uint64_t off)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = pread(fd, (char *)buf + got, len - got,
				  (off_t)(off + got));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		got += (size_t)n;
	}
	return 0;
}

/* Reads the blob's trailer and finds its locator. */
static int read_locator(int fd, uint64_t blob_size,
			struct index_locator *ret, char *err, size_t err_size,
			const char *path)
{
	uint64_t want = blob_size < TAIL_READ ? blob_size : TAIL_READ, need;
	uint8_t *tail = NULL;
	int r;

	for (int tries = 0; tries < 2; tries++) {
		uint8_t *p = realloc(tail, want ? want : 1);

		if (!p) {
			r = -ENOMEM;
			break;
		}
		tail = p;
		r = pread_full(fd, tail, want, blob_size - want);
		if (r < 0)
			break;
		r = index_blob_tail_parse(tail, want, blob_size, ret, &need);
		if (r != -EAGAIN)
			break;
		want = need;
	}
	free(tail);
	if (r < 0)
		index_seterr(err, err_size, r,
		       "'%s' is not a seekable layer with an index (%s)", path,
		       index_blob_tail_error(r));
	return r;
}

static int map_index(int fd, struct index_layer_map *m, const char *path,
		     char *err, size_t err_size)
{
	long page = sysconf(_SC_PAGESIZE);
	uint64_t start = m->locator.offset & ~(uint64_t)(page - 1);
	uint8_t digest[32];
	const char *what = NULL;
	int r;

	m->map_size = (size_t)(m->locator.offset - start + m->locator.size);
	m->map = mmap(NULL, m->map_size, PROT_READ, MAP_SHARED, fd,
		      (off_t)start);
	if (m->map == MAP_FAILED) {
		m->map = NULL;
		return index_seterr(err, err_size, -errno, "cannot map index of '%s': %s",
			      path, strerror(errno));
	}
	m->data = (const uint8_t *)m->map + (m->locator.offset - start);
	m->size = (size_t)m->locator.size;
	SHA256(m->data, m->size, digest);
	if (memcmp(digest, m->locator.sha256, 32) != 0)
		return index_seterr(err, err_size, -EBADMSG,
			      "index of '%s' does not match its digest", path);
	r = index_reader_open(m->data, m->size, &m->reader, &what);
	if (r < 0)
		return index_seterr(err, err_size, r, "corrupt index in '%s': %s",
			      path, what);
	return 0;
}

int index_layer_map_open(const char *path,
			 const struct index_locator *locator,
			 struct index_layer_map **ret_map, char *err,
			 size_t err_size)
{
	struct index_layer_map *m;
	struct stat st;
	int fd, r;

	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		r = index_seterr(err, err_size, -errno, "cannot open '%s': %s", path,
			   strerror(errno));
		goto err_free;
	}
	if (fstat(fd, &st) < 0) {
		r = -errno;
		goto err_close;
	}
	r = read_locator(fd, (uint64_t)st.st_size, &m->locator, err, err_size,
			 path);
	if (r < 0)
		goto err_close;
	if (locator && memcmp(locator, &m->locator, sizeof(*locator)) != 0) {
		r = index_seterr(err, err_size, -EBADMSG,
			   "index annotations of '%s' disagree with its trailer",
			   path);
		goto err_close;
	}
	if (m->locator.size == 0 || m->locator.size > SIZE_MAX / 2) {
		r = index_seterr(err, err_size, -EBADMSG, "index of '%s' is empty",
			   path);
		goto err_close;
	}
	r = map_index(fd, m, path, err, err_size);
	if (r < 0)
		goto err_close;

	close(fd);
	*ret_map = m;
	return 0;

err_close:
	close(fd);
err_free:
	index_layer_map_free(m);
	return r;
}

int index_layer_map_from_memory(void *data, const struct index_locator *locator,
				const char *name,
				struct index_layer_map **ret_map, char *err,
				size_t err_size)
{
	struct index_layer_map *m;
	const char *what = NULL;
	uint8_t digest[32];
	int r;

	m = calloc(1, sizeof(*m));
	if (!m) {
		free(data);
		return -ENOMEM;
	}
	m->map = data;
	m->data = data;
	m->size = (size_t)locator->size;
	m->locator = *locator;
	SHA256(m->data, m->size, digest);
	if (memcmp(digest, locator->sha256, 32) != 0) {
		r = index_seterr(err, err_size, -EBADMSG,
			   "index of '%s' does not match its digest", name);
		goto err_free;
	}
	r = index_reader_open(m->data, m->size, &m->reader, &what);
	if (r < 0) {
		index_seterr(err, err_size, r, "corrupt index in '%s': %s", name,
		       what);
		goto err_free;
	}
	*ret_map = m;
	return 0;

err_free:
	index_layer_map_free(m);
	return r;
}

void index_layer_map_free(struct index_layer_map *map)
{
	if (!map)
		return;
	index_reader_free(map->reader);
	if (map->map && map->map_size)
		munmap(map->map, map->map_size);
	else
		free(map->map);
	free(map);
}
