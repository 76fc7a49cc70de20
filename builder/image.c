/* SPDX-License-Identifier: MIT */
/*
 * image.c - read the source image (OCI layout or docker-archive), convert
 * its layers and write the new OCI layout.
 *
 * The config blob is copied unchanged: converted layers decompress to the
 * very same tars, so the DiffIDs it lists stay true.
 */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>
#include <openssl/sha.h>

#include "builder_internal.h"
#include "index/image.h"
#include "index/tree.h"

#define DOCKER_MANIFEST_MAX (1u << 20)

/* The source, whatever its format: layer files and the config. */
struct source {
	uint32_t n_layers;
	char **layer_paths;
	char **diff_ids; /* entries may be NULL */
	char *config_path;
	char *tag; /* may be NULL */
	char *tmpdir; /* extracted docker-archive, removed at the end */
	uint32_t n_tmp; /* files "0".."n_tmp-1" extracted there */
	struct index_image *oci;
};

static void source_free(struct source *s)
{
	for (uint32_t i = 0; i < s->n_layers; i++) {
		if (s->layer_paths)
			free(s->layer_paths[i]);
		if (s->diff_ids)
			free(s->diff_ids[i]);
	}
	free(s->layer_paths);
	free(s->diff_ids);
	free(s->config_path);
	free(s->tag);
	for (uint32_t i = 0; s->tmpdir && i < s->n_tmp; i++) {
		char *p;

		if (asprintf(&p, "%s/%u", s->tmpdir, i) >= 0) {
			unlink(p);
			free(p);
		}
	}
	if (s->tmpdir)
		rmdir(s->tmpdir);
	free(s->tmpdir);
	index_image_free(s->oci);
}

static int source_alloc(struct source *s, uint32_t n)
{
	s->n_layers = n;
	s->layer_paths = calloc(n ? n : 1, sizeof(char *));
	s->diff_ids = calloc(n ? n : 1, sizeof(char *));
	return s->layer_paths && s->diff_ids ? 0 : -ENOMEM;
}

static int source_open_oci(struct source *s, const char *ref, char *err,
			   size_t err_size)
{
	int r = index_image_open(ref, &s->oci, err, err_size);

	if (r < 0)
		return r;
	r = source_alloc(s, s->oci->n_layers);
	if (r < 0)
		return r;
	for (uint32_t i = 0; i < s->n_layers; i++) {
		s->layer_paths[i] = strdup(s->oci->layers[i].path);
		if (!s->layer_paths[i])
			return -ENOMEM;
		if (s->oci->layers[i].diff_id) {
			s->diff_ids[i] = strdup(s->oci->layers[i].diff_id);
			if (!s->diff_ids[i])
				return -ENOMEM;
		}
	}
	s->config_path = strdup(s->oci->config_path);
	if (s->oci->tag)
		s->tag = strdup(s->oci->tag);
	return s->config_path ? 0 : -ENOMEM;
}

/* Extracts the regular files of a docker-archive into s->tmpdir under
 * numbered names, remembering which archive path each came from. */
static int docker_extract(struct source *s, const char *file, char ***names,
			  uint32_t *n_names, char *err, size_t err_size)
{
	struct archive *a = archive_read_new();
	struct archive_entry *ae;
	int r, ret = 0;

	archive_read_support_format_tar(a);
	archive_read_support_format_gnutar(a);
	if (archive_read_open_filename(a, file, 1 << 20) != ARCHIVE_OK) {
		ret = builder_err(err, err_size, -EINVAL,
				  "cannot read docker-archive '%s': %s", file,
				  archive_error_string(a));
		goto out;
	}
	while ((r = archive_read_next_header(a, &ae)) == ARCHIVE_OK) {
		char *out, **grown;
		int fd;

		if (archive_entry_filetype(ae) != AE_IFREG)
			continue;
		grown = realloc(*names, (*n_names + 1) * sizeof(char *));
		if (!grown) {
			ret = -ENOMEM;
			goto out;
		}
		*names = grown;
		(*names)[*n_names] = strdup(archive_entry_pathname(ae));
		if (!(*names)[*n_names] ||
		    asprintf(&out, "%s/%u", s->tmpdir, *n_names) < 0) {
			ret = -ENOMEM;
			goto out;
		}
		(*n_names)++;
		s->n_tmp = *n_names;
		fd = open(out, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		free(out);
		if (fd < 0 || archive_read_data_into_fd(a, fd) != ARCHIVE_OK) {
			ret = builder_err(err, err_size, -EIO,
					  "cannot extract '%s' from '%s'",
					  archive_entry_pathname(ae), file);
			if (fd >= 0)
				close(fd);
			goto out;
		}
		close(fd);
	}
	if (r != ARCHIVE_EOF)
		ret = builder_err(err, err_size, -EBADMSG,
				  "corrupt docker-archive '%s': %s", file,
				  archive_error_string(a));
out:
	archive_read_free(a);
	return ret;
}

/* The extracted copy of archive member @name, or NULL. */
static char *docker_member(const struct source *s, char **names, uint32_t n,
			   const char *name)
{
	char *p;

	if (strncmp(name, "./", 2) == 0)
		name += 2;
	for (uint32_t i = 0; i < n; i++) {
		const char *m = names[i];

		if (strncmp(m, "./", 2) == 0)
			m += 2;
		if (strcmp(m, name) == 0)
			return asprintf(&p, "%s/%u", s->tmpdir, i) < 0 ? NULL : p;
	}
	return NULL;
}

static int docker_config_ids(struct source *s, char *err, size_t err_size)
{
	struct json_object *cfg, *rootfs, *ids;
	char *data;
	int r = index_read_small_file(s->config_path, 16u << 20, &data, NULL);

	if (r < 0)
		return builder_err(err, err_size, r, "cannot read image config");
	cfg = json_tokener_parse(data);
	free(data);
	if (json_object_object_get_ex(cfg, "rootfs", &rootfs) &&
	    json_object_object_get_ex(rootfs, "diff_ids", &ids) &&
	    json_object_is_type(ids, json_type_array) &&
	    json_object_array_length(ids) == s->n_layers) {
		for (uint32_t i = 0; i < s->n_layers; i++) {
			const char *v = json_object_get_string(
				json_object_array_get_idx(ids, i));

			s->diff_ids[i] = v ? strdup(v) : NULL;
		}
	} else {
		r = builder_err(err, err_size, -EINVAL,
				"image config lacks %u diff_ids", s->n_layers);
	}
	json_object_put(cfg);
	return r;
}

static int docker_manifest(struct source *s, char **names, uint32_t n,
			   char *err, size_t err_size)
{
	struct json_object *root = NULL, *m, *layers, *cfg, *tags;
	char *path = docker_member(s, names, n, "manifest.json"), *data = NULL;
	int r = -EINVAL;

	if (!path || index_read_small_file(path, DOCKER_MANIFEST_MAX, &data,
					   NULL) < 0)
		goto out;
	root = json_tokener_parse(data);
	m = json_object_is_type(root, json_type_array) &&
			    json_object_array_length(root) > 0 ?
		    json_object_array_get_idx(root, 0) :
		    NULL;
	if (!m || !json_object_object_get_ex(m, "Layers", &layers) ||
	    !json_object_is_type(layers, json_type_array) ||
	    !json_object_object_get_ex(m, "Config", &cfg) ||
	    !json_object_is_type(cfg, json_type_string))
		goto out;
	r = source_alloc(s, (uint32_t)json_object_array_length(layers));
	if (r < 0)
		goto out;
	r = -EINVAL;
	s->config_path = docker_member(s, names, n, json_object_get_string(cfg));
	if (!s->config_path)
		goto out;
	for (uint32_t i = 0; i < s->n_layers; i++) {
		const char *l = json_object_get_string(
			json_object_array_get_idx(layers, i));

		s->layer_paths[i] = l ? docker_member(s, names, n, l) : NULL;
		if (!s->layer_paths[i])
			goto out;
	}
	if (json_object_object_get_ex(m, "RepoTags", &tags) &&
	    json_object_is_type(tags, json_type_array) &&
	    json_object_array_length(tags) > 0) {
		const char *t = json_object_get_string(
			json_object_array_get_idx(tags, 0));
		const char *colon = t ? strrchr(t, ':') : NULL;

		if (colon && !strchr(colon, '/'))
			s->tag = strdup(colon + 1);
	}
	r = docker_config_ids(s, err, err_size);
out:
	if (r == -EINVAL && (!err || !*err))
		builder_err(err, err_size, r,
			    "docker-archive has no usable manifest.json");
	json_object_put(root);
	free(data);
	free(path);
	return r;
}

static int source_open_docker(struct source *s, const char *file,
			      const char *tmp, char *err, size_t err_size)
{
	char **names = NULL;
	uint32_t n = 0;
	int r;

	if (asprintf(&s->tmpdir, "%s/.imgtool-src-XXXXXX", tmp) < 0) {
		s->tmpdir = NULL;
		return -ENOMEM;
	}
	if (!mkdtemp(s->tmpdir)) {
		r = builder_err(err, err_size, -errno, "cannot create '%s': %s",
				s->tmpdir, strerror(errno));
		free(s->tmpdir);
		s->tmpdir = NULL;
		return r;
	}
	if (err && err_size)
		err[0] = '\0';
	r = docker_extract(s, file, &names, &n, err, err_size);
	if (r == 0)
		r = docker_manifest(s, names, n, err, err_size);
	for (uint32_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return r;
}

/* ---- the destination layout ---- */

static int write_file(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	const char *p = data;
	int err = 0;

	if (fd < 0)
		return -errno;
	while (len && err == 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno != EINTR)
			err = -errno;
		if (n > 0) {
			p += n;
			len -= (size_t)n;
		}
	}
	if (close(fd) < 0 && err == 0)
		err = -errno;
	return err;
}

int builder_write_blob(const char *dir, const void *data, size_t len,
		      char ret_digest[72])
{
	uint8_t d[32];
	char *path;
	int err;

	SHA256(data, len, d);
	memcpy(ret_digest, "sha256:", 7);
	index_hex(d, 32, ret_digest + 7);
	if (asprintf(&path, "%s/blobs/sha256/%s", dir, ret_digest + 7) < 0)
		return -ENOMEM;
	err = write_file(path, data, len);
	free(path);
	return err;
}

static int mkdir_p(const char *dir)
{
	char *p = strdup(dir);
	int err = 0;

	if (!p)
		return -ENOMEM;
	for (char *s = p + 1; *s && err == 0; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(p, 0755) < 0 && errno != EEXIST)
			err = -errno;
		*s = '/';
	}
	if (err == 0 && mkdir(p, 0755) < 0 && errno != EEXIST)
		err = -errno;
	free(p);
	return err;
}

static int prepare_dst(const char *dir, char *err, size_t err_size)
{
	static const char layout[] = "{\"imageLayoutVersion\":\"1.0.0\"}";
	char *blobs, *path;
	int r;

	if (asprintf(&blobs, "%s/blobs/sha256", dir) < 0)
		return -ENOMEM;
	r = mkdir_p(blobs);
	free(blobs);
	if (r < 0)
		return builder_err(err, err_size, r, "cannot create '%s': %s",
				   dir, strerror(-r));
	if (asprintf(&path, "%s/oci-layout", dir) < 0)
		return -ENOMEM;
	r = write_file(path, layout, sizeof(layout) - 1);
	free(path);
	return r < 0 ? builder_err(err, err_size, r, "cannot write '%s': %s",
				   dir, strerror(-r)) :
		       0;
}

static struct json_object *descriptor(const char *media, const char *digest,
				      uint64_t size)
{
	struct json_object *d = json_object_new_object();

	json_object_object_add(d, "mediaType", json_object_new_string(media));
	json_object_object_add(d, "digest", json_object_new_string(digest));
	json_object_object_add(d, "size", json_object_new_int64((int64_t)size));
	return d;
}

static void annotate(struct json_object *d, const struct index_locator *loc)
{
	struct json_object *ann = json_object_new_object();
	char buf[80];

	snprintf(buf, sizeof(buf), "%ju", (uintmax_t)loc->offset);
	json_object_object_add(ann, INDEX_ANNOTATION_OFFSET,
			       json_object_new_string(buf));
	snprintf(buf, sizeof(buf), "%ju", (uintmax_t)loc->size);
	json_object_object_add(ann, INDEX_ANNOTATION_LENGTH,
			       json_object_new_string(buf));
	memcpy(buf, "sha256:", 7);
	index_hex(loc->sha256, 32, buf + 7);
	json_object_object_add(ann, INDEX_ANNOTATION_DIGEST,
			       json_object_new_string(buf));
	json_object_object_add(d, "annotations", ann);
}

const char *builder_json_text(struct json_object *o)
{
	return json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
							 JSON_C_TO_STRING_NOSLASHESCAPE);
}

int builder_write_index_json(const char *dir, const char *tag,
			    const char *digest, size_t size)
{
	struct json_object *idx = json_object_new_object();
	struct json_object *list = json_object_new_array(), *d, *ann;
	char *path, *old = NULL;
	int r;

	if (asprintf(&path, "%s/index.json", dir) < 0)
		return -ENOMEM;
	if (index_read_small_file(path, 4u << 20, &old, NULL) == 0) {
		struct json_object *prev = json_tokener_parse(old), *ms;

		if (json_object_object_get_ex(prev, "manifests", &ms) &&
		    json_object_is_type(ms, json_type_array)) {
			for (size_t i = 0; i < json_object_array_length(ms); i++) {
				struct json_object *m = json_object_array_get_idx(ms, i), *a, *n;

				if (json_object_object_get_ex(m, "annotations", &a) &&
				    json_object_object_get_ex(a, "org.opencontainers.image.ref.name", &n) &&
				    strcmp(json_object_get_string(n), tag) == 0)
					continue;
				json_object_array_add(list, json_object_get(m));
			}
		}
		json_object_put(prev);
		free(old);
	}
	d = descriptor(INDEX_MEDIA_MANIFEST, digest, size);
	ann = json_object_new_object();
	json_object_object_add(ann, "org.opencontainers.image.ref.name",
			       json_object_new_string(tag));
	json_object_object_add(d, "annotations", ann);
	json_object_array_add(list, d);
	json_object_object_add(idx, "schemaVersion", json_object_new_int(2));
	json_object_object_add(idx, "mediaType",
			       json_object_new_string(INDEX_MEDIA_INDEX));
	json_object_object_add(idx, "manifests", list);
	r = write_file(path, builder_json_text(idx), strlen(builder_json_text(idx)));
	json_object_put(idx);
	free(path);
	return r;
}

static int copy_config(const char *dst, const char *config_path,
		       char ret_digest[72], size_t *ret_size)
{
	char *data;
	size_t size;
	int r = index_read_small_file(config_path, 16u << 20, &data, &size);

	if (r < 0)
		return r;
	r = builder_write_blob(dst, data, size, ret_digest);
	free(data);
	*ret_size = size;
	return r;
}

static void stats_add(struct builder_layer_stats *t,
		      const struct builder_layer_stats *l)
{
	t->tar_size += l->tar_size;
	t->blob_size += l->blob_size;
	t->data_size += l->data_size;
	t->index_size += l->index_size;
	t->entries += l->entries;
	t->files += l->files;
	t->chunks += l->chunks;
}

/* The layers' indexes, kept to check that the layers merge. */
struct built_indexes {
	void **data;
	size_t *size;
	struct index_reader **readers;
	uint32_t n;
};

static void built_indexes_free(struct built_indexes *x)
{
	for (uint32_t i = 0; i < x->n; i++) {
		index_reader_free(x->readers[i]);
		free(x->data[i]);
	}
	free(x->data);
	free(x->size);
	free(x->readers);
}

/*
 * Merges the converted layers as a mount will, so that an image whose
 * layers do not merge (a hard link to a missing path, an entry below a
 * symlink) is refused now, naming the entry, rather than at every mount.
 */
static int check_merge(const struct built_indexes *x, char *err,
		       size_t err_size)
{
	const struct index_reader *const *readers =
		(const struct index_reader *const *)x->readers;
	struct index_tree_error terr = { 0 };
	struct index_tree *tree = NULL;
	struct index_entry e;
	int r;

	for (uint32_t i = 0; i < x->n; i++) {
		r = index_reader_open(x->data[i], x->size[i], &x->readers[i],
				      NULL);
		if (r < 0)
			return builder_err(err, err_size, r,
					   "cannot read back the index of layer %u: %s",
					   i, strerror(-r));
	}
	r = index_tree_build(readers, x->n, &tree, &terr);
	index_tree_free(tree);
	if (r == -EINVAL && terr.what && terr.layer < x->n) {
		index_reader_entry(readers[terr.layer], terr.entry, &e);
		return builder_err(err, err_size, r,
				   "layer %u entry %u '%.*s' does not merge with the layers below: %s",
				   terr.layer, terr.entry, (int)e.name_len,
				   e.name, terr.what);
	}
	if (r < 0)
		return builder_err(err, err_size, r,
				   "cannot merge the layers: %s", strerror(-r));
	return 0;
}

/* Names the layer in a message about it that does not name its file
 * yet, as the daemon does: counted from 0 at the bottom, with its file
 * (a blob's digest): "layer 1 (9f2c...): tar entry ...". */
static void layer_err_prefix(char *err, size_t err_size, uint32_t i,
			     const char *path)
{
	const char *base = strrchr(path, '/');
	char *msg;

	if (!err || !err_size || strstr(err, path))
		return;
	msg = strdup(err);
	if (!msg)
		return;
	snprintf(err, err_size, "layer %u (%s): %s", i, base ? base + 1 : path,
		 msg);
	free(msg);
}

static int convert_layers(const struct source *s, const char *dst,
			  const struct builder_options *opts,
			  struct json_object *layers,
			  struct builder_stats *stats, char *err,
			  size_t err_size)
{
	struct built_indexes x = { 0 };
	int r = 0;

	x.data = calloc(s->n_layers + 1, sizeof(*x.data));
	x.size = calloc(s->n_layers + 1, sizeof(*x.size));
	x.readers = calloc(s->n_layers + 1, sizeof(*x.readers));
	if (!x.data || !x.size || !x.readers) {
		r = -ENOMEM;
		goto out;
	}
	for (uint32_t i = 0; i < s->n_layers; i++) {
		struct builder_layer_stats ls;
		struct index_locator loc;
		struct json_object *d;
		char digest[72];

		r = builder_layer_convert(s->layer_paths[i], s->diff_ids[i], dst,
					  opts, i, s->n_layers, digest, &loc,
					  &ls, &x.data[i], &x.size[i], err,
					  err_size);
		if (r < 0) {
			layer_err_prefix(err, err_size, i, s->layer_paths[i]);
			goto out;
		}
		x.n++;
		d = descriptor(INDEX_MEDIA_LAYER_ZSTD, digest, ls.blob_size);
		annotate(d, &loc);
		json_object_array_add(layers, d);
		stats_add(&stats->total, &ls);
		stats->layers++;
	}
	r = check_merge(&x, err, err_size);
out:
	built_indexes_free(&x);
	return r;
}

/* Splits "oci:DIR[:TAG]" for the destination. */
static int parse_dst(const char *dst, char **ret_dir, char **ret_tag)
{
	const char *s = dst, *colon;

	if (strncmp(s, "oci:", 4) != 0)
		return -EINVAL;
	s += 4;
	colon = strrchr(s, ':');
	if (colon && strchr(colon, '/'))
		colon = NULL;
	*ret_dir = colon ? strndup(s, (size_t)(colon - s)) : strdup(s);
	*ret_tag = colon && colon[1] ? strdup(colon + 1) : NULL;
	return *ret_dir && **ret_dir ? 0 : -EINVAL;
}

static int write_manifest(const char *dir, const char *tag,
			  const struct source *s, struct json_object *layers,
			  char *err, size_t err_size)
{
	struct json_object *m = json_object_new_object();
	char cdigest[72], mdigest[72];
	size_t csize;
	const char *text;
	int r;

	r = copy_config(dir, s->config_path, cdigest, &csize);
	if (r < 0) {
		json_object_put(layers);
		json_object_put(m);
		return builder_err(err, err_size, r, "cannot copy config: %s",
				   strerror(-r));
	}
	json_object_object_add(m, "schemaVersion", json_object_new_int(2));
	json_object_object_add(m, "mediaType",
			       json_object_new_string(INDEX_MEDIA_MANIFEST));
	json_object_object_add(m, "config",
			       descriptor(INDEX_MEDIA_CONFIG, cdigest, csize));
	json_object_object_add(m, "layers", layers);
	text = builder_json_text(m);
	r = builder_write_blob(dir, text, strlen(text), mdigest);
	if (r == 0)
		r = builder_write_index_json(dir, tag, mdigest, strlen(text));
	json_object_put(m);
	if (r < 0)
		return builder_err(err, err_size, r, "cannot write manifest: %s",
				   strerror(-r));
	return 0;
}

static int rm_entry(const char *path, const struct stat *st, int type,
		    struct FTW *ftw)
{
	(void)st;
	(void)type;
	(void)ftw;
	return remove(path) < 0 && errno != ENOENT ? -1 : 0;
}

int builder_remove_tree(const char *dir)
{
	return nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT) < 0 ?
		       -errno : 0;
}

int builder_build_image(const char *src, const char *dst,
			const struct builder_options *opts,
			struct builder_stats *ret_stats, char *err,
			size_t err_size)
{
	struct source s = { 0 };
	struct json_object *layers = NULL;
	struct timespec t0, t1;
	char *dir = NULL, *tag = NULL;
	bool made_dir = false;
	struct stat st;
	int r;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	memset(ret_stats, 0, sizeof(*ret_stats));
	r = parse_dst(dst, &dir, &tag);
	if (r < 0) {
		builder_err(err, err_size, r,
			    "destination must be oci:DIR[:TAG], not '%s'", dst);
		goto out;
	}
	/* A layout this build starts goes again if the build fails; one
	 * that was there keeps what it had (and any blob written). */
	made_dir = stat(dir, &st) < 0 && errno == ENOENT;
	r = prepare_dst(dir, err, err_size);
	if (r < 0)
		goto out;
	if (strncmp(src, "docker-archive:", 15) == 0)
		r = source_open_docker(&s, src + 15,
				       opts->tmpdir ? opts->tmpdir : dir, err,
				       err_size);
	else
		r = source_open_oci(&s, src, err, err_size);
	if (r < 0)
		goto out;

	layers = json_object_new_array();
	r = convert_layers(&s, dir, opts, layers, ret_stats, err, err_size);
	if (r < 0)
		goto out;
	r = write_manifest(dir, tag ? tag : s.tag ? s.tag : "latest", &s,
			   layers, err, err_size);
	layers = NULL; /* taken by write_manifest */
out:
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ret_stats->seconds = (double)(t1.tv_sec - t0.tv_sec) +
			     (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	json_object_put(layers);
	source_free(&s);
	if (r < 0 && made_dir)
		builder_remove_tree(dir);
	free(dir);
	free(tag);
	return r;
}
