/* SPDX-License-Identifier: MIT */
/*
 * profile.c - attaching a startup profile to a built image.
 *
 * The profile goes into the image config as a label, so it travels with
 * the image through every registry and copy tool (the config is a blob
 * the manifest pins) while the layer blobs, shared with other images,
 * stay as they are.  Only the config and the manifest are written anew;
 * the old ones stay in the layout as unreferenced blobs.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "builder_internal.h"
#include "index/image.h"

/* Reads and parses a JSON blob of the layout. */
static int profile_load_json(const char *path, struct json_object **ret,
			     char *err, size_t err_size)
{
	char *data;
	int r;

	r = index_read_small_file(path, 16u << 20, &data, NULL);
	if (r < 0)
		return builder_err(err, err_size, r, "cannot read '%s': %s",
				   path, strerror(-r));
	*ret = json_tokener_parse(data);
	free(data);
	if (!*ret || !json_object_is_type(*ret, json_type_object)) {
		json_object_put(*ret);
		return builder_err(err, err_size, -EINVAL,
				   "'%s' is not a JSON object", path);
	}
	return 0;
}

/* Returns @o's member @key, adding an empty object there if it has none
 * (or has something else). */
static struct json_object *profile_object_at(struct json_object *o,
					     const char *key)
{
	struct json_object *v;

	if (json_object_object_get_ex(o, key, &v) &&
	    json_object_is_type(v, json_type_object))
		return v;
	v = json_object_new_object();
	json_object_object_add(o, key, v);
	return v;
}

/* Writes the config with the label; fills @digest and *ret_size. */
static int profile_write_config(const struct index_image *img,
				const char *label, char digest[72],
				size_t *ret_size, char *err, size_t err_size)
{
	struct json_object *config, *labels;
	const char *text;
	int r;

	r = profile_load_json(img->config_path, &config, err, err_size);
	if (r < 0)
		return r;
	labels = profile_object_at(profile_object_at(config, "config"),
				   "Labels");
	json_object_object_add(labels, INDEX_PROFILE_LABEL,
			       json_object_new_string(label));
	text = builder_json_text(config);
	*ret_size = strlen(text);
	r = builder_write_blob(img->dir, text, *ret_size, digest);
	json_object_put(config);
	if (r < 0)
		return builder_err(err, err_size, r, "cannot write config: %s",
				   strerror(-r));
	return 0;
}

static int profile_write_manifest(const struct index_image *img,
				  const char *config_digest,
				  size_t config_size, char ret_digest[72],
				  char *err, size_t err_size)
{
	struct json_object *manifest, *desc;
	const char *text;
	char *path;
	int r;

	if (asprintf(&path, "%s/blobs/sha256/%s", img->dir,
		     img->manifest_digest + 7) < 0)
		return -ENOMEM;
	r = profile_load_json(path, &manifest, err, err_size);
	free(path);
	if (r < 0)
		return r;
	desc = profile_object_at(manifest, "config");
	json_object_object_add(desc, "digest",
			       json_object_new_string(config_digest));
	json_object_object_add(desc, "size",
			       json_object_new_int64((int64_t)config_size));
	text = builder_json_text(manifest);
	r = builder_write_blob(img->dir, text, strlen(text), ret_digest);
	if (r == 0)
		r = builder_write_index_json(img->dir,
					     img->tag ? img->tag : "latest",
					     ret_digest, strlen(text));
	json_object_put(manifest);
	if (r < 0)
		return builder_err(err, err_size, r,
				   "cannot write manifest: %s", strerror(-r));
	return 0;
}

int builder_profile_attach(const char *ref,
			   const struct index_profile_entry *entries,
			   uint32_t n, char ret_digest[72], char *err,
			   size_t err_size)
{
	struct index_image *img = NULL;
	char config_digest[72], *label = NULL;
	size_t config_size;
	int r;

	r = index_image_open(ref, &img, err, err_size);
	if (r < 0)
		return r;
	for (uint32_t i = 0; i < n; i++) {
		if (entries[i].layer >= img->n_layers) {
			r = builder_err(err, err_size, -EINVAL,
				  "profile entry %u names layer %u of %u", i,
				  entries[i].layer, img->n_layers);
			goto out;
		}
	}
	r = index_profile_encode(entries, n, &label);
	if (r < 0) {
		builder_err(err, err_size, r, "cannot encode the profile: %s",
			    strerror(-r));
		goto out;
	}
	r = profile_write_config(img, label, config_digest, &config_size, err,
				 err_size);
	if (r >= 0)
		r = profile_write_manifest(img, config_digest, config_size,
					   ret_digest, err, err_size);
out:
	free(label);
	index_image_free(img);
	return r;
}
